"""Image statistics that describe how a stereoscope frame looks, and the real frames' ranges.

The statistics are those of issue 15's table, measured on real stereoscope frames of the
original study (grey levels of the one-eye square frame; sharpness after resizing to
512 × 512). ``nerveseg synth`` measures the same on the left eye of every frame it renders
and reports median/min/max per class, so a generator change that leaves the real range
shows at once.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import cv2
import numpy as np

from nerveseg.engines.errors import UserError

# name → (real low, real high, what it is). Colour: the real frames are "practically grey";
# the bound is the mean channel spread of a frame with a just-visible tint.
REAL = {
    "blown": (0.26, 0.53, "fraction of pixels >= 245 (blown out)"),
    "grey_std": (77.0, 93.0, "grey-level standard deviation"),
    "sharpness": (16.0, 63.0, "Laplacian variance at 512 px"),
    "shadow": (0.0, 0.15, "fraction of pixels < 30 (deep shadow)"),
    "colour": (0.0, 4.0, "mean channel spread max-min (grey levels)"),
}
STATS_FILE = "synth_stats.json"


def eye_square(frame: np.ndarray) -> np.ndarray:
    """The left eye of a side-by-side stereo ``frame`` ``(H, W, 3) uint8``, cut to its
    central square, as the real frames were measured: ``(S, S, 3) uint8``."""
    h, w = frame.shape[:2]
    eye = frame[:, : w // 2]
    side = min(h, w // 2)
    y0, x0 = (h - side) // 2, (w // 2 - side) // 2
    return eye[y0:y0 + side, x0:x0 + side]


def frame_stats(image: np.ndarray) -> dict[str, float]:
    """The :data:`REAL` statistics of one ``(S, S, 3) uint8 RGB`` image."""
    grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    at512 = cv2.resize(grey, (512, 512), interpolation=cv2.INTER_AREA if grey.shape[0] > 512
                       else cv2.INTER_LINEAR)
    # The red scale bar is burned in; leave its corner out of the colour measure.
    body = image[: int(0.85 * image.shape[0])].astype(np.int16)
    spread = body.max(axis=2) - body.min(axis=2)
    return {"blown": float((grey >= 245).mean()), "grey_std": float(grey.std()),
            "sharpness": float(cv2.Laplacian(at512, cv2.CV_64F).var()),
            "shadow": float((grey < 30).mean()), "colour": float(spread.mean())}


def summarise(records: list[tuple[str, dict[str, float]]]) -> dict:
    """``[(class, frame_stats), ...]`` → ``{class: {stat: {median, min, max}}, "real": ...}``."""
    out: dict = {"real": {k: {"low": lo, "high": hi, "what": what} for k, (lo, hi, what) in REAL.items()}}
    classes: dict = {}
    for cls in sorted({c for c, _ in records}):
        values = {k: np.array([s[k] for c, s in records if c == cls]) for k in REAL}
        classes[cls] = {k: {"median": float(np.median(v)), "min": float(v.min()), "max": float(v.max()),
                            "n": int(v.size)} for k, v in values.items()}
    out["classes"] = classes
    return out


def table(summary: dict) -> str:
    """One plain-text table: per statistic, the real range and each class's median [min–max]."""
    classes = summary["classes"]
    head = ["statistic", "real"] + list(classes)
    rows = [head]
    for k, (lo, hi, _) in REAL.items():
        row = [k, f"{lo:g}-{hi:g}"]
        for cls in classes:
            s = classes[cls][k]
            row.append(f"{s['median']:.3g} [{s['min']:.3g}-{s['max']:.3g}]")
        rows.append(row)
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows)


def write_summary(root: Path, summary: dict) -> Path:
    """Write ``root/synth_stats.json`` whole or not at all (temp file, then rename)."""
    path = root / STATS_FILE
    temp = path.with_name(path.name + ".tmp")
    try:
        temp.write_text(json.dumps(summary, indent=1) + "\n")
        os.replace(temp, path)
    except OSError as exc:
        raise UserError(f"{path}: cannot write ({exc.strerror or exc})") from None
    return path
