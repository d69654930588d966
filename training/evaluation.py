"""Evaluate any engine (torch checkpoint, ONNX, TensorRT) on a split: metrics, report, PNGs.

No torch here for the gate and the segmenter: the engine comes from
:func:`nerveseg.engines.loader.load_engine`, images from :mod:`nerveseg.training.data`
(resized as the runtime resizes), metrics from :mod:`nerveseg.training.metrics`.
Instance mAP is the instance family's (:data:`INSTANCE_HOOK`: torchmetrics/pycocotools),
called through :func:`evaluate_instance`.
"""

from __future__ import annotations

import importlib
import json
import math
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from nerveseg.engines.interrupts import check_stop, write_atomic
from nerveseg.engines.errors import UserError

from . import metrics, plots
from .data import label_of, read_class_mask, read_rgb

# The instance family's evaluator: ``evaluate_instance(engine, data_root, items) -> report``
# with ``{"n", "segm": {"map", "map_50", ...}, "bbox": {...}, "per_class", "ms_per_image"}``,
# and ``format_instance_report(report) -> lines`` for report.txt.
INSTANCE_HOOK = ("nerveseg.training.instance.evaluate", "evaluate_instance", "format_instance_report")


def _batches(engine, root: Path, items: list[str], batch_size: int, desc: str, timing: dict):
    """Yield ``(items, outputs)`` per batch; ``timing["ms_per_image"]``: the engine alone."""
    spent = 0.0
    for start in tqdm(range(0, len(items), batch_size), desc=desc, leave=False, disable=None):
        chunk = items[start:start + batch_size]
        images = np.stack([read_rgb(root / item, engine.input_size) for item in chunk])
        began = time.perf_counter()
        outputs = engine.run(images)
        spent += time.perf_counter() - began
        yield chunk, outputs
    timing["ms_per_image"] = round(1000 * spent / max(len(items), 1), 3)


def evaluate_gate(engine, root: str | Path, items: list[str], batch_size: int = 16) -> dict:
    """Classification report (see :func:`metrics.classification_report`) of ``engine``."""
    root, classes = Path(root), engine.classes
    truth = np.array([label_of(item, classes) for item in items])
    timing: dict = {}
    logits = [out["logits"].copy()
              for _, out in _batches(engine, root, items, batch_size, "eval gate", timing)]
    logits = np.concatenate(logits)
    probs = metrics.softmax(logits)
    report = metrics.classification_report(truth, probs, classes)
    report["predictions"] = {item: classes[k] for item, k in zip(items, probs.argmax(1))}
    report["calibration"] = calibration_report(engine, logits, truth, root, items)
    return {**report, **timing}


def calibration_report(engine, logits: np.ndarray, truth: np.ndarray, root: Path, items: list[str]) -> dict:
    """Expected calibration error of the engine's ``(N, C)`` logits as it gives them
    (``after``: divided by its temperature) and as the network made them (``before``:
    ``T = 1``), and the share of images it would call unfamiliar (energy or view statistics)."""
    from nerveseg.engines.calibration import reliability, softmax

    cal = engine.calibration
    raw = logits.astype(np.float64) * cal.temperature
    flagged = None
    if cal.checks:  # the view statistics need the pictures: read again, one at a time
        flagged = float(np.mean([cal.judge(z, read_rgb(root / item, engine.input_size))[2]
                                 for z, item in zip(logits, items)]))
    return {"temperature": cal.temperature, "energy_threshold": cal.energy_threshold,
            "before": reliability(softmax(raw), truth), "after": reliability(softmax(logits), truth),
            "unfamiliar_fraction": flagged}


def evaluate_seg(engine, root: str | Path, items: list[str], batch_size: int = 16,
                 threshold: float = 0.5) -> dict:
    """Segmentation report of ``engine``; a pixel is nerve where sigmoid(logit) > ``threshold``."""
    root = Path(root)
    truth = mask_reader(root, items, engine.meta.classes[1])
    cut = math.log(threshold / (1 - threshold))  # sigmoid(x) > t  ⇔  x > logit(t)
    iou, dice, has_nerve, inter, union, timing = [], [], [], 0, 0, {}
    for chunk, out in _batches(engine, root, items, batch_size, "eval seg", timing):
        pred = out["mask_logits"][:, 0] > cut
        true = np.stack([truth(item, engine.input_size) for item in chunk]) > 0
        i, d = metrics.iou_dice(pred, true)
        iou.append(i)
        dice.append(d)
        has_nerve.append(true.reshape(len(true), -1).any(1))
        inter, union = inter + int((pred & true).sum()), union + int((pred | true).sum())
    report = metrics.summarize_segmentation(np.concatenate(iou), np.concatenate(dice),
                                            np.concatenate(has_nerve), inter, union)
    report["threshold"] = threshold
    report["per_image"]["items"] = list(items)
    return {**report, **timing}


def mask_reader(root: Path, items: list[str], target: str):
    """``read(item, size) -> (H, W) uint8`` ground truth of ``target`` for the ``items``.

    The dataset goes through the importer (any segmentation layout); a bad file elsewhere
    in it does not matter, a bad file among ``items`` is refused naming its problem."""
    from .importers import import_dataset

    dataset = import_dataset(root, task="segment", skip_bad=True)
    samples, problems = dataset.by_item(), {p.item: p for p in dataset.skipped}
    missing = [item for item in items if item not in samples]
    if missing:
        why = problems.get(missing[0])
        reason = f"{why.kind}: {why.path} {why.detail}".strip() if why else "not in the dataset"
        raise UserError(f"{root}: {len(missing)} split items cannot be scored (first: {missing[0]}, {reason})")
    names = dataset.classes
    foreground = names.index(target) if len(names) > 2 and target in names else None
    return lambda item, size: read_class_mask(samples[item].mask, size, foreground)


def _instance_module():
    try:
        return importlib.import_module(INSTANCE_HOOK[0])
    except ModuleNotFoundError as exc:
        if not exc.name or not exc.name.startswith("nerveseg"):
            raise
        raise UserError(f"instance evaluation needs {INSTANCE_HOOK[0]}, which this checkout lacks") from None


def evaluate_instance(engine, root: str | Path, items: list[str]) -> dict:
    """Box and mask mAP of an instance ``engine`` on ``items`` (see :data:`INSTANCE_HOOK`)."""
    return getattr(_instance_module(), INSTANCE_HOOK[1])(engine, root, items)


def summary(report: dict, task: str) -> dict:
    """The few numbers worth embedding in an engine's metadata (``extra.test_metrics``)
    and comparing side by side."""
    if task == "instance":
        return {"n": report["n"], "mask_map": report["segm"]["map"], "mask_map_50": report["segm"]["map_50"],
                "box_map": report["bbox"]["map"], "box_map_50": report["bbox"]["map_50"]}
    if task == "classify":
        return {"n": report["n"], "accuracy": report["accuracy"], "mcc": report["mcc"],
                "macro_f1": report["macro"]["f1"], "macro_auc": report["macro"]["auc"],
                "sensitivity": {c: v["sensitivity"] for c, v in report["per_class"].items()}}
    return {"n": report["n"], "iou_mean": report["iou"]["mean"],
            "iou_ci95": [report["iou"]["ci_low"], report["iou"]["ci_high"]],
            "iou_nerve_mean": report["iou_nerve"]["mean"], "dice_mean": report["dice"]["mean"],
            "pixel_iou": report["pixel_iou"], "threshold": report["threshold"]}


def run_eval(engine, root: str | Path, items: list[str], out: str | Path, split: str = "test",
             batch_size: int = 16, threshold: float = 0.5) -> dict:
    """Evaluate and write ``metrics.json``, ``report.txt`` and the PNGs into ``out``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    task = engine.meta.task
    if task == "classify":
        report = evaluate_gate(engine, root, items, batch_size)
    elif task == "instance":
        report = evaluate_instance(engine, root, items)
    else:
        report = evaluate_seg(engine, root, items, batch_size, threshold)
    report = {"task": task, "split": split, "data": str(root), "engine": engine.provenance.to_dict(),
              "summary": summary(report, task), **report}
    write_report(out, report, format_report(report))
    name = Path(engine.provenance.path).name
    if task == "instance":
        for kind, label in (("segm", "mask"), ("bbox", "box")):
            aps = {c: row[f"{kind}_ap50"] for c, row in report["per_class"].items()}
            plots.pr_png(report["pr50"][kind], aps, out / f"pr_{label}.png",
                         f"{name}: {label} PR at IoU 0.5 ({split}, n={report['n']})")
        return report
    if task == "classify":
        plots.confusion_png(report["confusion_matrix"], report["classes"], out / "confusion.png",
                            f"{name}: {split} (n={report['n']})")
        plots.roc_png(report["roc"], {c: v["auc"] for c, v in report["per_class"].items()},
                      out / "roc.png", f"{name}: ROC one-vs-rest ({split})")
        cal = report["calibration"]
        plots.reliability_png({"T = 1": cal["before"], f"T = {cal['temperature']:.2f}": cal["after"]},
                              out / "reliability.png", f"{name}: reliability ({split})")
    else:
        plots.histogram_png(report["per_image"]["iou"], out / "iou_hist.png", "IoU",
                            f"{name}: per-image IoU ({split}, n={report['n']})")
    return report


def write_report(out: Path, report: dict, text: str) -> None:
    """``out/metrics.json`` (every figure, ``"status": "complete"``) and ``out/report.txt``
    (``text``), each whole or not at all; none if a stop came while scoring."""
    check_stop()  # a stop whose KeyboardInterrupt was swallowed on the way: not a complete report
    write_atomic(out / "report.txt", text)
    write_atomic(out / "metrics.json", json.dumps(metrics.jsonable({"status": "complete", **report}), indent=1))


def write_incomplete(out: Path, what: dict, reason: str, comparison: bool = False) -> None:
    """An INCOMPLETE ``metrics.json`` + ``report.txt`` (``comparison.json`` + ``.txt`` for
    the side-by-side folder): what was asked, what was done, why it is not finished."""
    body = {"status": "INCOMPLETE", "reason": reason, **what}
    text = "\n".join([f"INCOMPLETE: {reason}", *(f"{k}: {v}" for k, v in what.items())]) + "\n"
    stem, txt = ("comparison", "comparison.txt") if comparison else ("metrics", "report.txt")
    Path(out).mkdir(parents=True, exist_ok=True)
    write_atomic(Path(out) / txt, text)
    write_atomic(Path(out) / f"{stem}.json", json.dumps(body, indent=1))


def fmt(value) -> str:
    """Three decimals, or ``n/a`` for an undefined figure (None, NaN)."""
    return "  n/a" if value is None or value != value else f"{value:.3f}"


def format_report(report: dict) -> str:
    """The human-readable ``report.txt``."""
    engine = report["engine"]
    lines = [f"nerveseg eval: {engine['path']} ({engine['model']}, {engine['backend']}, "
             f"sha256 {engine['sha256'][:12]})",
             f"data {report['data']}, split {report['split']}: {report['n']} images; "
             f"engine {report['ms_per_image']:.2f} ms/image", ""]
    if report["task"] == "classify":
        lines += _gate_lines(report)
    elif report["task"] == "instance":
        lines += list(getattr(_instance_module(), INSTANCE_HOOK[2])(report))
    else:
        lines += _seg_lines(report)
    return "\n".join(lines) + "\n"


def _gate_lines(report: dict) -> list[str]:
    keys = (*metrics.BINARY_KEYS, "auc")
    pct, ci = int(round(100 * report["confidence"])), report["ci"]
    lines = [f"accuracy {fmt(report['accuracy'])} {pct}% CI {_pair(ci['accuracy'])}   multiclass MCC "
             f"{fmt(report['mcc'])} {pct}% CI {_pair(ci['mcc'])}", "",
             f"{'class':<16}{'n':>5}" + "".join(f"{k[:5]:>7}" for k in keys)]
    for name, row in report["per_class"].items():
        lines.append(f"{name:<16}{row['support']:>5}" + "".join(f"{fmt(row[k]):>7}" for k in keys))
    lines.append(f"{'macro':<16}{'':>5}" + "".join(f"{fmt(report['macro'][k]):>7}" for k in keys))
    lines += ["", "confusion matrix (rows true, columns predicted):",
              f"{'':<16}" + "".join(f"{c[:10]:>12}" for c in report["classes"])]
    for name, row in zip(report["classes"], report["confusion_matrix"]):
        lines.append(f"{name:<16}" + "".join(f"{v:>12}" for v in row))
    lines += ["", f"{pct}% intervals, one-vs-rest:"]
    for name, row in report["per_class"].items():
        lines.append(f"{name:<16}" + "  ".join(f"{k[:5]} {_pair(row['ci'][k])}" for k in metrics.BINARY_KEYS))
    lines += ["", "one-vs-rest per class; a ratio with a zero denominator is n/a.", *interval_lines(report)]
    cal = report.get("calibration")
    if cal:
        flagged = "" if cal["unfamiliar_fraction"] is None else \
            f"; {fmt(cal['unfamiliar_fraction'])} of images above the unfamiliar-view threshold"
        lines += ["", f"expected calibration error ({cal['after']['bins']} bins): {fmt(cal['before']['ece'])} "
                      f"at T = 1, {fmt(cal['after']['ece'])} at the engine's T = {cal['temperature']:.3f}"
                      + flagged + " (reliability.png)"]
    return lines


def _pair(pair) -> str:
    return f"[{fmt(pair[0])}, {fmt(pair[1])}]"


def interval_lines(report: dict) -> list[str]:
    """How the report's intervals were computed (every report that shows one says so)."""
    methods = report["intervals"]
    return [f"Intervals: proportions (sensitivity, specificity, PPV, NPV, accuracy): {methods['proportions']}; "
            f"means of per-image IoU/Dice: {methods['means']}; F1 and MCC: {methods['f1_mcc']}. "
            "Fewer than 2 values: no interval (n/a)."]


def _seg_lines(report: dict) -> list[str]:
    pct = int(round(100 * report["confidence"]))
    lines = [f"threshold: sigmoid > {report['threshold']}", ""]
    for key, label in (("iou", "IoU, all images"), ("dice", "Dice, all images"),
                       ("iou_nerve", "IoU, images with nerve"), ("dice_nerve", "Dice, images with nerve")):
        s = report[key]
        lines.append(f"{label:<24} mean {fmt(s['mean'])}  {pct}% CI [{fmt(s['ci_low'])}, "
                     f"{fmt(s['ci_high'])}]  SEM {fmt(s['sem'])}  n={s['n']}")
    lines += [f"{'pixel IoU (pooled)':<24} {fmt(report['pixel_iou'])}", "",
              f"{report['n'] - report['n_with_nerve']} images have no nerve in the truth; an empty "
              "prediction there scores IoU = Dice = 1.", *interval_lines(report)]
    return lines
