"""Instance output of the region segmenter, and its scoring (numpy/OpenCV, no torch).

**What "instance output" means here.** The region net has one semantic head; its
instances are the 8-connected components of the thresholded mask inside the region,
numbered 1..n, components smaller than ``min_area`` pixels dropped (specks). This is
exact when structures do not touch, as in the synthetic set (they are kept apart), and
costs one ``cv2.connectedComponentsWithStats`` per frame at run time. Touching
structures would merge into one instance: a second head (centres or embeddings) is the
step up if real data needs it.

Scoring: a predicted and a true instance match when their IoU > 0.5, which makes the
matching unique without any assignment search (two instances cannot both overlap one
other by more than half). True instances under ``min_area`` are ignored on both sides.
"""

from __future__ import annotations

import cv2
import numpy as np

MIN_AREA = 4
MATCH_IOU = 0.5


def label_instances(mask: np.ndarray, min_area: int = MIN_AREA) -> np.ndarray:
    """``(H, W) int32`` ids 1..n of the 8-connected components of ``mask`` (``(H, W)``
    bool/uint8) with at least ``min_area`` pixels; 0 elsewhere."""
    count, labels, stats, _ = cv2.connectedComponentsWithStats(np.asarray(mask, np.uint8), connectivity=8)
    keep = stats[:, cv2.CC_STAT_AREA] >= min_area
    keep[0] = False
    lookup = np.zeros(count, np.int32)
    lookup[keep] = np.arange(1, int(keep.sum()) + 1)
    return lookup[labels]


def drop_small(ids: np.ndarray, min_area: int = MIN_AREA) -> np.ndarray:
    """``ids`` (``(H, W)`` int, 0 = none) renumbered 1..n without instances under ``min_area``."""
    areas = np.bincount(ids.ravel())
    keep = areas >= min_area
    keep[0] = False
    lookup = np.zeros(areas.size, np.int32)
    lookup[keep] = np.arange(1, int(keep.sum()) + 1)
    return lookup[ids]


def match_instances(pred: np.ndarray, true: np.ndarray) -> dict:
    """Match ``(H, W)`` id maps (0 = none, 1..n consecutive). Returns ``{"tp", "fp", "fn",
    "ious": [IoU of each match]}``; a match is a pair with IoU > 0.5."""
    n_pred, n_true = int(pred.max()), int(true.max())
    if n_pred == 0 or n_true == 0:
        return {"tp": 0, "fp": n_pred, "fn": n_true, "ious": []}
    joint = np.bincount(pred.ravel() * (n_true + 1) + true.ravel(),
                        minlength=(n_pred + 1) * (n_true + 1)).reshape(n_pred + 1, n_true + 1)
    inter = joint[1:, 1:].astype(np.float64)
    union = joint[1:, :].sum(1)[:, None] + joint[:, 1:].sum(0)[None, :] - inter
    iou = inter / np.maximum(union, 1)
    matched = iou[iou > MATCH_IOU]
    return {"tp": int(matched.size), "fp": n_pred - int(matched.size), "fn": n_true - int(matched.size),
            "ious": matched.tolist()}


def instance_summary(matches: list[dict], min_area: int = MIN_AREA) -> dict:
    """Pooled precision, recall, F1, mean matched IoU and panoptic quality
    (``Σ IoU / (tp + fp/2 + fn/2)``) over per-region :func:`match_instances` results."""
    tp, fp, fn = (sum(m[key] for m in matches) for key in ("tp", "fp", "fn"))
    ious = [v for m in matches for v in m["ious"]]
    nan = float("nan")
    return {"tp": tp, "fp": fp, "fn": fn,
            "precision": tp / (tp + fp) if tp + fp else nan, "recall": tp / (tp + fn) if tp + fn else nan,
            "f1": 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else nan,
            "matched_iou": float(np.mean(ious)) if ious else nan,
            "pq": float(np.sum(ious)) / (tp + fp / 2 + fn / 2) if tp + fp + fn else nan,
            "min_area": min_area, "match_iou": MATCH_IOU}
