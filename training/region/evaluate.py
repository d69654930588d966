"""Evaluate a ``region_segment`` engine on a region set (no torch: any backend's engine).

Per (image, region) sample: IoU and Dice of the predicted mask against the structures
inside the region (:func:`nerveseg.training.metrics.iou_dice`; empty vs empty = 1),
summarised with mean, SEM and a 95 % t-interval for every group of :data:`GROUPS`
(all, nested = outer + inner, non-nested = single, and each role), plus:

* ``leak``: predicted pixels outside the region, pooled over the set, as a fraction
  of all predicted pixels (a model that ignores its region leaks; the answer never does);
* ``instances``: connected components matched at IoU > 0.5 (:mod:`.instances`).
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np

from nerveseg.training import metrics, plots
from nerveseg.training.compare import counted
from nerveseg.training.evaluation import fmt, write_report

from .data import load_sample
from .instances import MIN_AREA, drop_small, instance_summary, label_instances, match_instances

GROUPS = {"all": ("outer", "inner", "single"), "nested": ("outer", "inner"), "non_nested": ("single",),
          "outer": ("outer",), "inner": ("inner",), "single": ("single",)}


def predict(engine, root, samples: list[dict], batch_size: int, threshold: float, timing: dict):
    """Yield ``(sample, pred (H, W) bool, region, mask, instances)`` per sample at the
    engine's input size; ``timing["ms_per_image"]`` is the engine's time alone."""
    cut = math.log(threshold / (1 - threshold))  # sigmoid(x) > t  ⇔  x > logit(t)
    spent = 0.0
    for start in range(0, len(samples), batch_size):
        chunk = samples[start:start + batch_size]
        loaded = [load_sample(root, s, engine.input_size, instances=True) for s in chunk]
        images, regions = (np.stack([item[k] for item in loaded]) for k in (0, 1))
        began = time.perf_counter()
        logits = engine.run(images, region=regions[..., None])["mask_logits"]
        spent += time.perf_counter() - began
        for sample, item, logit in zip(chunk, loaded, logits):
            yield sample, logit[0] > cut, item[1].astype(bool), item[2].astype(bool), item[3]
    timing["ms_per_image"] = round(1000 * spent / max(len(samples), 1), 3)


def evaluate_regions(engine, root, samples: list[dict], batch_size: int = 16, threshold: float = 0.5,
                     min_area: int = MIN_AREA) -> dict:
    """The report dict: ``groups`` (per-group summaries), ``leak``, ``instances``,
    ``per_region`` (ids, roles, IoU, Dice) and ``ms_per_image``."""
    rows, matches, leaked, predicted, timing = [], [], 0, 0, {}
    for sample, pred, region, mask, ids in predict(engine, root, samples, batch_size, threshold, timing):
        iou, dice = metrics.iou_dice(pred[None], mask[None])
        rows.append((sample["id"], sample["role"], float(iou[0]), float(dice[0]), bool(mask.any()),
                     int((pred & mask).sum()), int((pred | mask).sum())))
        leaked, predicted = leaked + int((pred & ~region).sum()), predicted + int(pred.sum())
        matches.append(match_instances(label_instances(pred, min_area), drop_small(ids, min_area)))
    groups = {name: _summary([r for r in rows if r[1] in roles]) for name, roles in GROUPS.items()}
    return {"n": len(rows), "threshold": threshold, "confidence": 0.95, "intervals": dict(metrics.METHODS),
            "groups": {k: v for k, v in groups.items() if v["n"]},
            "leak": {"outside_pixels": leaked, "predicted_pixels": predicted,
                     "fraction": leaked / predicted if predicted else 0.0},
            "instances": instance_summary(matches, min_area),
            "per_region": {"ids": [r[0] for r in rows], "roles": [r[1] for r in rows],
                           "iou": [r[2] for r in rows], "dice": [r[3] for r in rows]}, **timing}


def _summary(rows: list[tuple]) -> dict:
    if not rows:
        return {"n": 0}
    _, _, iou, dice, has, inter, union = zip(*rows)
    report = metrics.summarize_segmentation(iou, dice, has, sum(inter), sum(union))
    report.pop("per_image")  # kept once, in per_region
    return report


def summary(report: dict) -> dict:
    """The numbers worth embedding in an engine's metadata (``extra.test_metrics``)."""
    groups = report["groups"]
    return {"n": report["n"], "iou_mean": groups["all"]["iou"]["mean"],
            "iou_ci95": [groups["all"]["iou"]["ci_low"], groups["all"]["iou"]["ci_high"]],
            "dice_mean": groups["all"]["dice"]["mean"], "pixel_iou": groups["all"]["pixel_iou"],
            **{f"iou_{g}": groups[g]["iou"]["mean"] for g in ("nested", "non_nested") if g in groups},
            "leak_fraction": report["leak"]["fraction"], "instance_f1": report["instances"]["f1"],
            "threshold": report["threshold"]}


def run_region_eval(engine, root, samples: list[dict], out, split: str = "test", batch_size: int = 16,
                    threshold: float = 0.5) -> dict:
    """Evaluate and write ``metrics.json``, ``report.txt`` and ``iou_hist.png`` into ``out``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    report = evaluate_regions(engine, root, samples, batch_size, threshold)
    report = {"task": "region_segment", "split": split, "data": str(root),
              "images": len({sample["image"] for sample in samples}),
              "engine": engine.provenance.to_dict(), "summary": summary(report), **report}
    write_report(out, report, format_report(report))
    plots.histogram_png(report["per_region"]["iou"], out / "iou_hist.png", "IoU",
                        f"{Path(engine.provenance.path).name}: per-region IoU ({split}, n={report['n']})")
    return report


def format_report(report: dict) -> str:
    """The human-readable ``report.txt``: one line per group, then leak and instances."""
    engine, pct = report["engine"], int(round(100 * report["confidence"]))
    lines = [f"nerveseg region eval: {engine['path']} ({engine['model']}, {engine['backend']}, "
             f"sha256 {engine['sha256'][:12]})",
             f"data {report['data']}, split {report['split']}: {counted(report)}; engine "
             f"{report['ms_per_image']:.2f} ms/image; sigmoid > {report['threshold']}", "",
             f"{'group':<12}{'n':>5}  {'IoU mean':>8}  {f'{pct}% CI':<14}{'SEM':>7}  {'Dice':>6}  pixel IoU"]
    for name, g in report["groups"].items():
        iou = g["iou"]
        lines.append(f"{name:<12}{g['n']:>5}  {fmt(iou['mean']):>8}  [{fmt(iou['ci_low'])}, {fmt(iou['ci_high'])}]"
                     f"{fmt(iou['sem']):>7}  {fmt(g['dice']['mean']):>6}  {fmt(g['pixel_iou'])}")
    leak, inst = report["leak"], report["instances"]
    lines += ["", f"leak: {fmt(leak['fraction'])} of predicted pixels lie outside their region "
                  f"({leak['outside_pixels']} of {leak['predicted_pixels']})",
              f"instances (components >= {inst['min_area']} px, match IoU > {inst['match_iou']}): "
              f"precision {fmt(inst['precision'])} recall {fmt(inst['recall'])} F1 {fmt(inst['f1'])} "
              f"matched IoU {fmt(inst['matched_iou'])} PQ {fmt(inst['pq'])} (tp {inst['tp']}, fp {inst['fp']}, "
              f"fn {inst['fn']})", "",
              "nested = outer + inner regions (one inside the other); non_nested = single.",
              "An empty region predicted empty scores IoU = Dice = 1. "
              f"CI: {report['intervals']['means']}, the regions resampled."]
    return "\n".join(lines) + "\n"


def region_eval(engine, data: str, items: list[str], out, split: str, batch_size: int, threshold: float) -> dict:
    """Every region of the ``items`` images of ``data``, scored into ``out``."""
    from nerveseg.engines.errors import UserError

    from .data import read_index, samples_of

    samples = samples_of(read_index(data), items)
    if not samples:
        raise UserError(f"{data}: the {split} split has no regions")
    return run_region_eval(engine, data, samples, out, split, batch_size, threshold)
