"""Write ``samples/models/RECIPE.md`` from a finished ``scripts/train_samples.sh`` run.

    python -m nerveseg.training.recipe WORK --models samples/models

Reads ``WORK/commands.txt`` and ``WORK/timings.txt`` (written by the script), each run's
``config.yaml``, split lists and ``eval_*/metrics.json``, benchmarks both ONNX engines
with ONNX Runtime on 2 threads, and checks the targets (gate accuracy ≥ 0.95, nerve IoU
≥ 0.7 on the synthetic test split). Exit status 1 if a target is missed. No torch.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import yaml

TARGETS = {"gate accuracy": 0.95, "segmenter IoU": 0.7}


def bench(path: Path, threads: int = 2, runs: int = 50) -> dict:
    """Median and p90 ms per single frame at the engine's input size (5 warm-up runs excluded)."""
    from nerveseg.engines.loader import load_engine

    with load_engine(path, backend="onnxruntime", threads=threads) as engine:
        h, w = engine.input_size
        frame = np.random.default_rng(0).integers(0, 256, (1, h, w, 3), dtype=np.uint8)
        engine.warmup(5)
        times = []
        for _ in range(runs):
            started = time.perf_counter()
            engine.run(frame)
            times.append(1000 * (time.perf_counter() - started))
    return {"median_ms": float(np.median(times)), "p90_ms": float(np.percentile(times, 90)),
            "threads": threads, "runs": runs, "size": f"{w}×{h}"}


def _metrics(run: Path, name: str) -> dict:
    return json.loads((run / name / "metrics.json").read_text())


def _lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.is_file() else []


def _start(config: dict) -> str:
    """How a run began: from scratch, or fine-tuned from an engine (and the commit it came from)."""
    if not config.get("init"):
        return "from scratch (no pretrained weights)"
    revision = (config.get("init_from") or {}).get("revision")
    return f"fine-tuned from `{config['init']}`" + (f" (revision {revision})" if revision else "")


def world(commands: list[str]) -> str:
    """The synthetic world (``--domain``) the recipe's training data came from, as its commands say."""
    for line in commands:
        words = line.split()
        if "synth" in words and "classify" in words and "--domain" in words:
            return words[words.index("--domain") + 1]
    return "wide"


def calibration_line(onnx: Path) -> list[str]:
    """The gate's calibration as its metadata holds it (``export --calibrate``), or that it has none."""
    from nerveseg.engines.loader import load_engine

    values = (load_engine(onnx, "onnxruntime").meta.extra or {}).get("calibration")
    if not values:
        return ["- calibration: none (no temperature, no unfamiliar-view threshold)"]
    view = values.get("view_statistics") or {}
    parts = [f"temperature {values['temperature']:.3f}"]
    if values.get("ece_before") is not None and values.get("ece_after") is not None:
        parts.append(f"validation ECE {values['ece_before']:.3f} → {values['ece_after']:.3f}")
    if values.get("energy_threshold") is not None:
        parts.append(f"unfamiliar above energy {values['energy_threshold']:.3f}")
    if view.get("threshold") is not None:
        parts.append(f"or view-statistics distance {view['threshold']:.2f}")
    return ["- calibration (fitted on the validation split, `export --calibrate`): " + ", ".join(parts)]


def revisions(models: Path) -> str:
    """The nerveseg revision each engine in ``models`` was exported from (its own metadata)."""
    from nerveseg.engines.loader import load_engine

    found = {name: load_engine(models / name, "onnxruntime").meta.revision
             for name in ("gate.onnx", "unet.onnx", "gate_seg.onnx") if (models / name).is_file()}
    if len(set(found.values())) == 1:
        return f"nerveseg revision {next(iter(found.values()))}"
    return "nerveseg revisions " + ", ".join(f"{name} {rev}" for name, rev in found.items())


def _run_section(title: str, run: Path, onnx: Path, speed: dict, metric_lines: list[str],
                 bullets: list[str] = ()) -> list[str]:
    config = yaml.safe_load((run / "config.yaml").read_text())
    sizes = {s: len(_lines(run / "splits" / f"{s}.txt")) for s in ("train", "val", "test")}
    history = json.loads((run / "history.json").read_text())
    meta_keys = ("model", "arch_kwargs", "size", "epochs", "head_epochs", "lr", "finetune_lr",
                 "lr_schedule", "batch_size", "seed", "split_seed", "pretrained")
    return [f"## {title}: `{onnx}`", "",
            f"- data: `{config['data']}` — train/val/test {sizes['train']}/{sizes['val']}/{sizes['test']}",
            "- " + ", ".join(f"{k} `{config[k]}`" for k in meta_keys if k in config),
            f"- augmentation: hflip {config['hflip']}, vflip {config['vflip']}, "
            f"rotate ±{config['rotate']}°, brightness ±{config['brightness']}, "
            f"contrast ±{config['contrast']}, crop scale ≥ {config['scale_min']}",
            f"- start: {_start(config)}",
            f"- training time: {sum(r['seconds'] for r in history):.0f} s over {len(history)} epochs",
            f"- ONNX file: {onnx.stat().st_size / 1e6:.2f} MB; ONNX Runtime on {speed['threads']} threads, "
            f"one {speed['size']} frame: median {speed['median_ms']:.2f} ms, p90 {speed['p90_ms']:.2f} ms "
            f"({speed['runs']} runs after 5 warm-up runs)", *bullets,
            "", *metric_lines, ""]


def _f(value) -> str:
    """Three decimals; ``n/a`` for a metric JSON wrote as null (undefined ratio)."""
    return "n/a" if value is None else f"{value:.3f}"


def gate_lines(report: dict, onnx_report: dict) -> list[str]:
    keys = ("sensitivity", "specificity", "ppv", "f1", "auc")
    rows = [f"| {c} | {v['support']} | " + " | ".join(_f(v[k]) for k in keys) + " |"
            for c, v in onnx_report["per_class"].items()]
    return [f"Test split ({report['n']} images): accuracy **{_f(onnx_report['accuracy'])}** (ONNX), "
            f"{_f(report['accuracy'])} (torch checkpoint); multiclass MCC {_f(onnx_report['mcc'])}.", "",
            "| class | n | sensitivity | specificity | PPV | F1 | AUC |",
            "|---|---|---|---|---|---|---|", *rows]


def seg_lines(report: dict, onnx_report: dict) -> list[str]:
    iou, nerve, dice = onnx_report["iou"], onnx_report["iou_nerve"], onnx_report["dice"]
    return [f"Test split ({report['n']} images, {onnx_report['n_with_nerve']} with nerve): mean IoU "
            f"**{_f(iou['mean'])}** (95% CI {_f(iou['ci_low'])}–{_f(iou['ci_high'])}) (ONNX), "
            f"{_f(report['iou']['mean'])} (torch checkpoint); IoU on images with nerve {_f(nerve['mean'])} "
            f"(95% CI {_f(nerve['ci_low'])}–{_f(nerve['ci_high'])}); Dice {_f(dice['mean'])}; pooled pixel "
            f"IoU {_f(onnx_report['pixel_iou'])}. Empty truth and empty prediction count as IoU 1."]


def gate_seg_lines(report: dict, two_engine_gate: dict, two_engine_seg: dict) -> list[str]:
    """The single engine's test figures beside the two engines' (test splits of the same runs)."""
    s = report["summary"]
    nerve = two_engine_gate["per_class"].get("nerve", {}).get("sensitivity")
    return [f"Test splits (gate {s['n']} images, segmentation {s['seg_n']}), torch checkpoint, beside the two "
            "engines:", "", "| | single engine | gate + U-Net |", "|---|---|---|",
            f"| gate accuracy | {_f(s['accuracy'])} | {_f(two_engine_gate['accuracy'])} |",
            f"| nerve sensitivity | {_f(s['sensitivity'].get('nerve'))} | {_f(nerve)} |",
            f"| gate MCC | {_f(s['mcc'])} | {_f(two_engine_gate['mcc'])} |",
            f"| mean IoU | {_f(s['seg_iou_mean'])} | {_f(two_engine_seg['iou']['mean'])} |",
            f"| IoU on images with nerve | {_f(s['seg_iou_nerve_mean'])} | {_f(two_engine_seg['iou_nerve']['mean'])} |",
            f"| Dice | {_f(s['seg_dice_mean'])} | {_f(two_engine_seg['dice']['mean'])} |"]


def _gate_seg_section(work: Path, models: Path, gate_onnx: dict, seg_onnx: dict) -> list[str]:
    run, onnx = work / "gate_seg", models / "gate_seg.onnx"
    if not (run / "eval_test" / "metrics.json").is_file() or not onnx.is_file():
        return []
    config = yaml.safe_load((run / "config.yaml").read_text())
    history = json.loads((run / "history.json").read_text())
    speed = bench(onnx)
    return [f"## Single engine (gate and mask in one forward): `{onnx}`", "",
            f"- from `{config['init_seg']}` on the gate's and the segmenter's splits; model "
            f"`unet_gate_mobilenet_v2`, arch_kwargs `{config['arch_kwargs']}`, head_epochs `{config['head_epochs']}` "
            f"(class head alone, lr `{config['lr']}`), epochs `{config['epochs']}` (joint, lr "
            f"`{config['lr'] / 10:g}`), batch_size `{config['batch_size']}`, seed `{config['seed']}`; "
            f"{len(history)} epochs in all",
            f"- ONNX file: {onnx.stat().st_size / 1e6:.2f} MB; ONNX Runtime on {speed['threads']} threads, one "
            f"{speed['size']} frame: median {speed['median_ms']:.2f} ms, p90 {speed['p90_ms']:.2f} ms "
            "(both answers)", *calibration_line(onnx), "",
            *gate_seg_lines(_metrics(run, "eval_test"), gate_onnx, seg_onnx), ""]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("work", type=Path)
    parser.add_argument("--models", type=Path, default=Path("samples/models"))
    args = parser.parse_args(argv)
    work, models = args.work, args.models
    gate, seg = _metrics(work / "gate", "eval_test"), _metrics(work / "seg", "eval_test")
    gate_onnx, seg_onnx = _metrics(work / "gate", "eval_onnx"), _metrics(work / "seg", "eval_onnx")
    speeds = {name: bench(models / name) for name in ("gate.onnx", "unet.onnx")}
    steps = [line.split() for line in _lines(work / "timings.txt")]
    achieved = {"gate accuracy": gate_onnx["accuracy"], "segmenter IoU": seg_onnx["iou"]["mean"]}
    achieved = {k: (v if v is not None else 0.0) for k, v in achieved.items()}
    verdict = [f"- {k}: {v:.3f} (target ≥ {TARGETS[k]}) — {'met' if v >= TARGETS[k] else 'MISSED'}"
               for k, v in achieved.items()]
    text = ["# Recipe of the shipped sample engines", "",
            "Made by `scripts/train_samples.sh` on synthetic data (`nerveseg synth --domain "
            f"{world(_lines(work / 'commands.txt'))}`), trained on the CPU (no ImageNet weights; each run "
            "below says where it started). Re-run it to reproduce these files.", "",
            f"Host: {platform.machine()}, Python {platform.python_version()}; {revisions(models)}.",
            "", "## Targets", "", *verdict, "",
            *_run_section("Gate", work / "gate", models / "gate.onnx", speeds["gate.onnx"],
                          gate_lines(gate, gate_onnx), calibration_line(models / "gate.onnx")),
            *_run_section("Segmenter", work / "seg", models / "unet.onnx", speeds["unet.onnx"],
                          seg_lines(seg, seg_onnx)),
            *_gate_seg_section(work, models, gate_onnx, seg_onnx),
            "## Steps and wall-clock times", "", "| step | seconds |", "|---|---|",
            *[f"| {name} | {sec} |" for name, sec in steps], f"| **total** (before this report) | "
            f"{sum(int(sec) for _, sec in steps)} |", "", f"Load average when the report was written: "
            f"{' '.join(f'{v:.1f}' for v in os.getloadavg())} (other jobs share these cores).",
            "", "## Exact commands", "", "```", *_lines(work / "commands.txt"), "```", ""]
    (models / "RECIPE.md").write_text("\n".join(text))
    print("\n".join(verdict))
    return 0 if all(v >= TARGETS[k] for k, v in achieved.items()) else 1


if __name__ == "__main__":
    sys.exit(main())
