"""Confidence intervals that stay inside a metric's range, numpy only (no scipy, no torch).

* **Proportions** (sensitivity, specificity, PPV, NPV, accuracy: successes out of trials):
  the **Wilson score** interval, always inside [0, 1], sensible at 0/n and n/n, and
  ``nan`` when there are no trials.
* **Means of bounded per-image values** (IoU, Dice in [0, 1]) and statistics that are not
  a single proportion (F1, MCC): the **bootstrap percentile** interval, resampling images
  with replacement :data:`RESAMPLES` times from a fixed seed (:data:`SEED`, so a report is
  reproducible). A percentile of resampled means lies between the smallest and largest
  value, so the interval never leaves the metric's range. ``nan`` for fewer than 2 values
  (one value says nothing about spread).

:data:`METHODS` names both; every report that shows an interval carries it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from statistics import NormalDist

import numpy as np

NAN = float("nan")
RESAMPLES = 2000
SEED = 0
CHUNK = 2_000_000  # resampled values held at once (memory bound for long validation runs)
PROPORTION_METHOD = "Wilson score interval"
BOOTSTRAP_METHOD = f"bootstrap percentile interval ({RESAMPLES} resamples of the images, seed {SEED})"
METHODS = {"proportions": PROPORTION_METHOD, "means": BOOTSTRAP_METHOD, "f1_mcc": BOOTSTRAP_METHOD}


def wilson(successes: float, trials: float, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of ``successes / trials``; ``(nan, nan)`` for no trials."""
    if trials <= 0:
        return NAN, NAN
    z = NormalDist().inv_cdf(0.5 + confidence / 2)
    p, n = successes / trials, float(trials)
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def resample_indices(n: int, seed: int = SEED, resamples: int = RESAMPLES):
    """Yield ``(b, n) int64`` blocks of bootstrap indices, ``resamples`` rows in all."""
    rng = np.random.default_rng(seed)
    block = max(1, min(resamples, CHUNK // max(n, 1)))
    done = 0
    while done < resamples:
        b = min(block, resamples - done)
        yield rng.integers(0, n, (b, n))
        done += b


def bootstrap(statistic: Callable[[np.ndarray], np.ndarray], n: int,
              confidence: float = 0.95) -> tuple[float, float]:
    """Percentile interval of ``statistic(indices (b, n)) -> (b,)`` over the resamples;
    resamples where the statistic is undefined (``nan``) are left out."""
    if n < 2:
        return NAN, NAN
    values = np.concatenate([statistic(idx) for idx in resample_indices(n)])
    values = values[np.isfinite(values)]
    if values.size == 0:
        return NAN, NAN
    alpha = 1 - confidence
    low, high = np.quantile(values, [alpha / 2, 1 - alpha / 2])
    return float(low), float(high)


def bounded_mean_ci(values, confidence: float = 0.95) -> dict[str, float | str]:
    """``{"n", "mean", "sd", "sem", "ci_low", "ci_high", "method"}`` for ``(N,)`` values in
    a bounded range (IoU, Dice): the bootstrap percentile interval of the mean."""
    values = np.asarray(values, np.float64)
    n = int(values.size)
    mean = float(values.mean()) if n else NAN
    sd = float(values.std(ddof=1)) if n >= 2 else NAN
    low, high = bootstrap(lambda idx: values[idx].mean(axis=1), n, confidence)
    return {"n": n, "mean": mean, "sd": sd, "sem": sd / math.sqrt(n) if n >= 2 else NAN,
            "ci_low": low, "ci_high": high, "method": BOOTSTRAP_METHOD}


def _binary_from_counts(tp, fp, fn, tn) -> tuple[np.ndarray, np.ndarray]:
    """``(f1, mcc)`` per row of ``(b,)`` count arrays (F1 ``nan`` when undefined, MCC 0)."""
    tp, fp, fn, tn = (np.asarray(v, np.float64) for v in (tp, fp, fn, tn))
    with np.errstate(invalid="ignore", divide="ignore"):
        f1 = np.where(2 * tp + fp + fn > 0, 2 * tp / (2 * tp + fp + fn), np.nan)
        den = np.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
        mcc = np.where(den > 0, (tp * tn - fp * fn) / np.where(den > 0, den, 1), 0.0)
    return f1, mcc


def binary_intervals(truth, predicted, confidence: float = 0.95) -> dict[str, list[float]]:
    """Intervals of one class against the rest from ``(N,)`` bool truth and prediction:
    Wilson for sensitivity, specificity, PPV, NPV and accuracy; bootstrap for F1 and MCC."""
    t, p = np.asarray(truth, bool), np.asarray(predicted, bool)
    tp, fp = int((t & p).sum()), int((~t & p).sum())
    fn, tn = int((t & ~p).sum()), int((~t & ~p).sum())
    out = {"sensitivity": wilson(tp, tp + fn, confidence), "specificity": wilson(tn, tn + fp, confidence),
           "ppv": wilson(tp, tp + fp, confidence), "npv": wilson(tn, tn + fn, confidence),
           "accuracy": wilson(tp + tn, t.size, confidence)}

    def counts(idx):
        tt, pp = t[idx], p[idx]
        return (tt & pp).sum(1), (~tt & pp).sum(1), (tt & ~pp).sum(1), (~tt & ~pp).sum(1)

    out["f1"] = bootstrap(lambda idx: _binary_from_counts(*counts(idx))[0], t.size, confidence)
    out["mcc"] = bootstrap(lambda idx: _binary_from_counts(*counts(idx))[1], t.size, confidence)
    return {k: [float(v) for v in pair] for k, pair in out.items()}


def multiclass_mcc_interval(y_true, y_pred, num_classes: int, confidence: float = 0.95) -> list[float]:
    """Bootstrap interval of Gorodkin's R_K (0 where undefined), in [-1, 1]."""
    y_true, y_pred = np.asarray(y_true, np.int64), np.asarray(y_pred, np.int64)
    flat, c2 = y_true * num_classes + y_pred, num_classes * num_classes

    def rk(idx):
        b = idx.shape[0]
        cm = np.bincount((np.arange(b)[:, None] * c2 + flat[idx]).ravel(), minlength=b * c2)
        cm = cm.reshape(b, num_classes, num_classes).astype(np.float64)
        s, c = cm.sum((1, 2)), np.trace(cm, axis1=1, axis2=2)
        pred, true = cm.sum(1), cm.sum(2)
        den = np.sqrt((s * s - (pred * pred).sum(1)) * (s * s - (true * true).sum(1)))
        num = c * s - (true * pred).sum(1)
        return np.where(den > 0, num / np.where(den > 0, den, 1), 0.0)

    return [float(v) for v in bootstrap(rk, y_true.size, confidence)]
