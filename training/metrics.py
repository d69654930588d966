"""Evaluation metrics in pure numpy (no torch: the runtime-only ``nerveseg validate`` reuses them).

Conventions, stated once:

* A ratio whose denominator is zero (e.g. PPV of a class never predicted) is ``nan``
  and macro averages skip ``nan`` values; JSON writes ``nan`` as ``null``.
* Binary MCC with a zero denominator is 0 (no information), as in scikit-learn.
* Segmentation IoU and Dice of an image where both prediction and truth are empty are
  **1** (the model was right that there is no nerve); one empty and one not gives 0.
* Confidence intervals respect the metric's range (:mod:`.intervals`): Wilson score for
  proportions (sensitivity, specificity, PPV, NPV, accuracy), bootstrap percentile for
  means of per-image IoU/Dice and for F1 and MCC; every report names them
  (``report["intervals"]``). :func:`mean_ci` (a t-interval) is for unbounded values only.
"""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np

from .intervals import METHODS, binary_intervals, bounded_mean_ci, multiclass_mcc_interval
from .intervals import wilson as wilson_ci

NAN = float("nan")
BINARY_KEYS = ("sensitivity", "specificity", "ppv", "npv", "accuracy", "f1", "mcc")


def _ratio(num: float, den: float) -> float:
    return float(num) / float(den) if den else NAN


def confusion_matrix(y_true, y_pred, num_classes: int) -> np.ndarray:
    """``(C, C) int64``: rows are true classes, columns predicted classes."""
    y_true, y_pred = np.asarray(y_true, np.int64), np.asarray(y_pred, np.int64)
    flat = y_true * num_classes + y_pred
    return np.bincount(flat, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def one_vs_rest(cm: np.ndarray, k: int) -> tuple[int, int, int, int]:
    """``(tp, fp, fn, tn)`` of class ``k`` against all others."""
    tp = int(cm[k, k])
    fn = int(cm[k].sum()) - tp
    fp = int(cm[:, k].sum()) - tp
    return tp, fp, fn, int(cm.sum()) - tp - fp - fn


def binary_metrics(tp: int, fp: int, fn: int, tn: int) -> dict[str, float]:
    """Sensitivity, specificity, PPV, NPV, accuracy, F1 and MCC from the four counts."""
    den = math.sqrt(float(tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
    return {"sensitivity": _ratio(tp, tp + fn), "specificity": _ratio(tn, tn + fp),
            "ppv": _ratio(tp, tp + fp), "npv": _ratio(tn, tn + fn),
            "accuracy": _ratio(tp + tn, tp + fp + fn + tn), "f1": _ratio(2 * tp, 2 * tp + fp + fn),
            "mcc": (tp * tn - fp * fn) / den if den else 0.0}


def multiclass_mcc(cm: np.ndarray) -> float:
    """Gorodkin's R_K (equals binary MCC for two classes); 0 when undefined."""
    cm = cm.astype(np.float64)
    s, c = cm.sum(), np.trace(cm)
    p, t = cm.sum(axis=0), cm.sum(axis=1)
    den = math.sqrt((s * s - p @ p) * (s * s - t @ t))
    return float((c * s - t @ p) / den) if den else 0.0


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax of ``(N, C)`` logits, as float64."""
    z = np.asarray(logits, np.float64)
    z = np.exp(z - z.max(axis=1, keepdims=True))
    return z / z.sum(axis=1, keepdims=True)


def roc_curve(positive, scores) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(fpr, tpr, thresholds)`` from ``(N,)`` bool truths and scores; starts at (0, 0)
    with threshold +inf, one point per distinct score. ``nan`` arrays if a class is absent."""
    positive, scores = np.asarray(positive, bool), np.asarray(scores, np.float64)
    order = np.argsort(-scores, kind="stable")
    scores, positive = scores[order], positive[order]
    last = np.r_[np.flatnonzero(np.diff(scores)), scores.size - 1]  # last index of each tie
    tps, fps = np.cumsum(positive)[last], np.cumsum(~positive)[last]
    n_pos, n_neg = positive.sum(), (~positive).sum()
    if n_pos == 0 or n_neg == 0:
        return np.full(1, NAN), np.full(1, NAN), np.full(1, NAN)
    fpr = np.r_[0.0, fps / n_neg]
    tpr = np.r_[0.0, tps / n_pos]
    return fpr, tpr, np.r_[np.inf, scores[last]]


def auc(x: np.ndarray, y: np.ndarray) -> float:
    """Trapezoidal area under ``y(x)`` (``x`` ascending); ``nan`` if the curve is."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    if x.size < 2 or np.isnan(x).any():
        return NAN
    return float(np.sum((x[1:] - x[:-1]) * (y[1:] + y[:-1]) / 2))


def classification_report(y_true, probs: np.ndarray, classes: tuple[str, ...],
                          confidence: float = 0.95) -> dict:
    """All gate metrics. ``y_true``: ``(N,)`` int; ``probs``: ``(N, C)`` scores (softmax).

    Returns ``{"n", "accuracy", "mcc", "ci": {"accuracy", "mcc"}, "confusion_matrix",
    "per_class": {name: {..., "auc", "support", "ci": {metric: [low, high]}}}, "macro",
    "roc": {name: {"fpr", "tpr"}}, "confidence", "intervals"}`` (intervals: see the module
    docstring; AUC and macro averages carry none).
    """
    y_true = np.asarray(y_true, np.int64)
    probs = np.asarray(probs, np.float64)
    y_pred = probs.argmax(axis=1)
    cm = confusion_matrix(y_true, y_pred, len(classes))
    per_class, roc = {}, {}
    for k, name in enumerate(classes):
        stats = binary_metrics(*one_vs_rest(cm, k))
        fpr, tpr, _ = roc_curve(y_true == k, probs[:, k])
        stats["auc"], stats["support"] = auc(fpr, tpr), int(cm[k].sum())
        stats["ci"] = binary_intervals(y_true == k, y_pred == k, confidence)
        per_class[name], roc[name] = stats, {"fpr": fpr.tolist(), "tpr": tpr.tolist()}
    macro = {key: _nanmean([per_class[c][key] for c in classes]) for key in (*BINARY_KEYS, "auc")}
    accuracy_ci = list(wilson_ci(int(np.trace(cm)), int(cm.sum()), confidence))
    return {"n": int(cm.sum()), "accuracy": _ratio(np.trace(cm), cm.sum()),
            "mcc": multiclass_mcc(cm), "confusion_matrix": cm.tolist(), "classes": list(classes),
            "ci": {"accuracy": accuracy_ci,
                   "mcc": multiclass_mcc_interval(y_true, y_pred, len(classes), confidence)},
            "per_class": per_class, "macro": macro, "roc": roc,
            "confidence": confidence, "intervals": dict(METHODS)}


def _nanmean(values) -> float:
    values = [v for v in values if not math.isnan(v)]
    return float(np.mean(values)) if values else NAN


def iou_dice(pred: np.ndarray, true: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-image IoU and Dice of ``(N, H, W)`` bool masks; empty-vs-empty scores 1."""
    pred = np.asarray(pred, bool).reshape(len(pred), -1)
    true = np.asarray(true, bool).reshape(len(true), -1)
    inter = (pred & true).sum(axis=1).astype(np.float64)
    union = (pred | true).sum(axis=1).astype(np.float64)
    total = pred.sum(axis=1) + true.sum(axis=1).astype(np.float64)
    empty = union == 0
    iou = np.where(empty, 1.0, inter / np.maximum(union, 1))
    dice = np.where(empty, 1.0, 2 * inter / np.maximum(total, 1))
    return iou, dice


def student_t_cdf(t: float, df: float) -> float:
    """P(T ≤ t) for Student's t with ``df`` degrees of freedom."""
    tail = 0.5 * _betainc(df / 2, 0.5, df / (df + t * t))
    return 1 - tail if t >= 0 else tail


def t_quantile(p: float, df: float) -> float:
    """Inverse of :func:`student_t_cdf` by bisection (|error| < 1e-10); normal for df > 1e6."""
    if not 0 < p < 1 or df <= 0:
        raise ValueError(f"t quantile needs 0 < p < 1 and df > 0, got p={p}, df={df}")
    if df > 1e6:
        return NormalDist().inv_cdf(p)
    if p < 0.5:
        return -t_quantile(1 - p, df)
    lo, hi = 0.0, 1.0
    while student_t_cdf(hi, df) < p:
        lo, hi = hi, hi * 2
    while hi - lo > 1e-10 * max(1.0, hi):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if student_t_cdf(mid, df) < p else (lo, mid)
    return (lo + hi) / 2


def _betainc(a: float, b: float, x: float) -> float:
    """Regularised incomplete beta I_x(a, b) (Numerical Recipes' continued fraction)."""
    if x <= 0 or x >= 1:
        return 0.0 if x <= 0 else 1.0
    front = math.exp(math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b)
                     + a * math.log(x) + b * math.log1p(-x))
    if x > (a + 1) / (a + b + 2):  # the fraction converges fast only below this point
        return 1.0 - _betainc(b, a, 1 - x)
    tiny, f, c, d = 1e-300, 1.0, 1.0, 0.0
    for i in range(400):
        m = i // 2
        if i == 0:
            num = 1.0
        elif i % 2 == 0:
            num = m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m))
        else:
            num = -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1))
        d = 1.0 + num * d
        d = 1 / (d if abs(d) > tiny else tiny)
        c = 1.0 + num / c if abs(c) > tiny else 1.0 + num / tiny
        f *= c * d
        if abs(1.0 - c * d) < 1e-14:
            break
    return front * (f - 1.0) / a


def mean_ci(values, confidence: float = 0.95) -> dict[str, float]:
    """``{"n", "mean", "sd", "sem", "ci_low", "ci_high"}`` with a t-interval (``nan`` for n < 2).

    For unbounded values only (times, counts): a bounded metric (IoU, Dice) takes
    :func:`.intervals.bounded_mean_ci`, whose interval stays inside its range."""
    values = np.asarray(values, np.float64)
    n = int(values.size)
    mean = float(values.mean()) if n else NAN
    if n < 2:
        return {"n": n, "mean": mean, "sd": NAN, "sem": NAN, "ci_low": NAN, "ci_high": NAN}
    sd = float(values.std(ddof=1))
    sem = sd / math.sqrt(n)
    half = t_quantile(0.5 + confidence / 2, n - 1) * sem
    return {"n": n, "mean": mean, "sd": sd, "sem": sem, "ci_low": mean - half, "ci_high": mean + half}


def segmentation_report(pred: np.ndarray, true: np.ndarray, confidence: float = 0.95) -> dict:
    """Summaries of ``(N, H, W)`` bool masks; see :func:`summarize_segmentation`."""
    iou, dice = iou_dice(pred, true)
    pred, true = np.asarray(pred, bool), np.asarray(true, bool)
    has_nerve = true.reshape(len(true), -1).any(axis=1)
    return summarize_segmentation(iou, dice, has_nerve, int((pred & true).sum()),
                                  int((pred | true).sum()), confidence)


def summarize_segmentation(iou, dice, has_nerve, inter: int, union: int,
                           confidence: float = 0.95) -> dict:
    """Per-image IoU/Dice mean with a bootstrap percentile interval (inside [0, 1]), over
    all images and over those whose truth holds nerve (``iou_nerve``: the honest number
    when empty frames score 1), plus the pooled pixel IoU ``inter / union`` over the whole
    set (1 if both are empty; no interval)."""
    iou, dice = np.asarray(iou, np.float64), np.asarray(dice, np.float64)
    has_nerve = np.asarray(has_nerve, bool)
    return {"n": int(iou.size), "n_with_nerve": int(has_nerve.sum()), "confidence": confidence,
            "intervals": dict(METHODS),
            "iou": bounded_mean_ci(iou, confidence), "dice": bounded_mean_ci(dice, confidence),
            "iou_nerve": bounded_mean_ci(iou[has_nerve], confidence),
            "dice_nerve": bounded_mean_ci(dice[has_nerve], confidence),
            "pixel_iou": _ratio(inter, union) if union else 1.0,
            "per_image": {"iou": iou.tolist(), "dice": dice.tolist()}}


def jsonable(obj):
    """Recursively turn numpy scalars/arrays into Python and ``nan``/``inf`` into ``None``."""
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return jsonable(obj.tolist())
    if isinstance(obj, (np.floating, float)):
        return float(obj) if math.isfinite(obj) else None
    if isinstance(obj, np.integer):
        return int(obj)
    return obj
