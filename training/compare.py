"""Several models on one split, side by side: ``comparison.json`` and ``comparison.txt``.

Each row is one model's :func:`nerveseg.training.evaluation.summary` (plus its file,
backend, sha256 and engine milliseconds per image); the columns are the task's headline
numbers. All models were scored on the same items, so the rows compare. No torch.
"""

from __future__ import annotations

import json
from pathlib import Path

from nerveseg.engines.interrupts import write_atomic

from . import metrics

# task: (summary key, column title); classify adds one sensitivity column per class.
COLUMNS = {
    "classify": (("accuracy", "accuracy"), ("mcc", "MCC"), ("macro_f1", "macro F1"), ("macro_auc", "macro AUC")),
    "segment": (("iou_mean", "IoU"), ("iou_ci95", "IoU 95% CI"), ("dice_mean", "Dice"),
                ("iou_nerve_mean", "IoU (nerve)"), ("pixel_iou", "pixel IoU")),
    "region_segment": (("iou_mean", "IoU"), ("iou_ci95", "IoU 95% CI"), ("dice_mean", "Dice"),
                       ("iou_nested", "IoU (nested)"), ("iou_non_nested", "IoU (single)"),
                       ("leak_fraction", "leak"), ("instance_f1", "instance F1")),
    "instance": (("mask_map", "mask mAP"), ("mask_map_50", "mask AP50"), ("box_map", "box mAP"),
                 ("box_map_50", "box AP50")),
}


def counted(report: dict) -> str:
    """``"36 regions in 12 images"`` (a region report), else ``"12 images"``."""
    if report.get("task") == "region_segment" and report.get("images") is not None:  # n counts regions
        return f"{report['n']} regions in {report['images']} images"
    return f"{report['n']} images"


def unique_names(paths: list[Path]) -> list[str]:
    """Short distinct names: the file stem, with its folder where stems repeat."""
    stems = [p.stem for p in paths]
    names = [f"{p.parent.name}_{p.stem}" if stems.count(p.stem) > 1 else p.stem for p in paths]
    return [name if names.count(name) == 1 else f"{name}_{k + 1}" for k, name in enumerate(names)]


def comparison(reports: list[dict], names: list[str], outs: list[Path] | None = None) -> dict:
    """The comparison record (see the module docstring); ``outs``: each model's folder."""
    first = reports[0]
    outs = outs or [None] * len(reports)
    rows = [{"name": name, "path": r["engine"]["path"], "model": r["engine"]["model"],
             "backend": r["engine"]["backend"], "sha256": r["engine"]["sha256"],
             "report": str(Path(out) / "metrics.json") if out is not None else None,
             "ms_per_image": r.get("ms_per_image"), **r["summary"]} for name, r, out in zip(names, reports, outs)]
    return {"task": first["task"], "split": first["split"], "data": first["data"], "n": first["n"],
            **({"images": first["images"]} if "images" in first else {}), "models": rows}


def _cell(value) -> str:
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_cell(v) for v in value) + "]"
    if value is None or (isinstance(value, float) and value != value):
        return "n/a"
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def columns(record: dict) -> list[tuple[str, str]]:
    cols = list(COLUMNS[record["task"]])
    if record["task"] == "classify":
        cols += [(f"sensitivity.{c}", f"sens. {c}") for c in record["models"][0]["sensitivity"]]
    return cols + [("ms_per_image", "ms/image")]


def _get(row: dict, key: str):
    for part in key.split("."):
        row = row.get(part) if isinstance(row, dict) else None
    return row


def format_table(record: dict) -> str:
    """Fixed-width text: one row per model, one column per headline number."""
    cols = columns(record)
    cells = [[row["name"], *(_cell(_get(row, key)) for key, _ in cols)] for row in record["models"]]
    header = ["model", *(title for _, title in cols)]
    widths = [max(len(r[i]) for r in [header, *cells]) for i in range(len(header))]
    line = lambda r: "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))
    unit = counted(record)
    lines = [f"nerveseg eval: {len(cells)} {record['task']} models on {record['data']}, split "
             f"{record['split']} ({unit})", "", line(header), line(["-" * w for w in widths])]
    lines += [line(r) for r in cells]
    reports = [row["report"] for row in record["models"] if row.get("report")]
    if reports:
        lines += ["", "per model (metrics.json and report.txt beside it):", *(f"  {path}" for path in reports)]
    return "\n".join(lines) + "\n"


def write(record: dict, out: str | Path) -> Path:
    """``out/comparison.json`` and ``out/comparison.txt``; returns the text file."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "comparison.txt"
    write_atomic(path, format_table(record))
    write_atomic(out / "comparison.json", json.dumps(metrics.jsonable({"status": "complete", **record}), indent=1))
    return path
