"""Intervals stay inside their metric's range, name their method, and cover what they claim."""

from __future__ import annotations

import math

import numpy as np
import pytest

from nerveseg.training import intervals, metrics


def _inside(pair, low=0.0, high=1.0) -> bool:
    a, b = pair
    return (math.isnan(a) and math.isnan(b)) or (low <= a <= b <= high)


@pytest.mark.parametrize("values", [[1.0] * 30, [0.0] * 30, [0.7], [0.0, 1.0], [1.0, 1.0], [0.02, 0.0, 0.01],
                                    [0.99, 1.0, 0.98, 1.0], [0.05] * 3 + [0.9]])
def test_bounded_mean_interval_stays_in_unit_range(values):
    ci = metrics.bounded_mean_ci(values)
    assert _inside((ci["ci_low"], ci["ci_high"])), ci
    if len(values) >= 2:
        assert ci["ci_low"] <= ci["mean"] <= ci["ci_high"]
    else:
        assert math.isnan(ci["ci_low"])  # one image says nothing about spread
    assert "bootstrap percentile" in ci["method"]


def test_the_issue_case_that_left_the_range_now_stays_inside():
    # Skewed per-image IoU of a few images: the t-interval gave [-0.262, 0.595]-like bounds.
    iou = np.array([0.0, 0.0, 0.0, 0.0, 0.95, 0.9])
    t = metrics.mean_ci(iou)
    assert t["ci_low"] < 0  # what the old reports printed
    ci = metrics.summarize_segmentation(iou, iou, np.ones(6, bool), 10, 20)["iou"]
    assert 0 <= ci["ci_low"] < ci["mean"] < ci["ci_high"] <= 1


@pytest.mark.parametrize("k, n", [(0, 0), (0, 1), (1, 1), (0, 2), (2, 2), (0, 50), (50, 50), (17, 40)])
def test_wilson_stays_in_unit_range(k, n):
    low, high = intervals.wilson(k, n)
    assert _inside((low, high))
    if n:
        assert low <= k / n <= high and high - low > 0


def test_classification_intervals_in_range_and_named():
    rng = np.random.default_rng(1)
    for n in (1, 2, 5, 40):
        truth = rng.integers(0, 3, n)
        probs = np.eye(3)[truth] * 0.6 + rng.random((n, 3)) * 0.5
        report = metrics.classification_report(truth, probs, ("a", "b", "c"))
        assert _inside(report["ci"]["accuracy"]) and _inside(report["ci"]["mcc"], -1, 1)
        for row in report["per_class"].values():
            for key, pair in row["ci"].items():
                assert _inside(pair, -1 if key == "mcc" else 0, 1), (n, key, pair)
        assert report["intervals"]["proportions"].startswith("Wilson")
    perfect = metrics.classification_report([0, 1, 1, 0], np.eye(2)[[0, 1, 1, 0]], ("x", "y"))
    assert perfect["ci"]["accuracy"][1] == 1.0 and perfect["ci"]["accuracy"][0] < 1.0


def test_bootstrap_mean_covers_about_as_claimed():
    """Per-image IoU from a skewed Beta: the 95 % interval holds the true mean in roughly
    95 % of 300 simulated test sets (percentile bootstrap runs a little under at n = 40)."""
    rng = np.random.default_rng(7)
    a, b = 4.0, 1.5
    truth = a / (a + b)
    hits = 0
    for _ in range(300):
        ci = metrics.bounded_mean_ci(rng.beta(a, b, 40))
        hits += ci["ci_low"] <= truth <= ci["ci_high"]
    assert 0.88 <= hits / 300 <= 0.985


def test_wilson_covers_about_as_claimed():
    rng = np.random.default_rng(3)
    p, n = 0.9, 50
    hits = 0
    for k in rng.binomial(n, p, 1000):
        low, high = intervals.wilson(int(k), n)
        hits += low <= p <= high
    assert 0.91 <= hits / 1000 <= 0.99


def test_reports_name_the_method():
    from nerveseg.training.evaluation import _seg_lines, interval_lines

    seg = metrics.segmentation_report(np.ones((3, 4, 4), bool), np.ones((3, 4, 4), bool))
    seg["threshold"] = 0.5
    text = "\n".join(_seg_lines(seg))
    assert "bootstrap percentile interval (2000 resamples" in text and "t-interval" not in text
    assert interval_lines(seg)[0].count("Wilson") == 1
