"""nerveseg.training.metrics against values computed by hand on tiny cases."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pytest

from nerveseg.training import metrics

# rows true, columns predicted: [[3, 1, 0], [0, 2, 1], [1, 0, 2]]
Y_TRUE = [0, 0, 0, 0, 1, 1, 1, 2, 2, 2]
Y_PRED = [0, 0, 0, 1, 1, 1, 2, 2, 2, 0]


def test_confusion_matrix_rows_are_truth():
    cm = metrics.confusion_matrix(Y_TRUE, Y_PRED, 3)
    assert cm.tolist() == [[3, 1, 0], [0, 2, 1], [1, 0, 2]]


def test_one_vs_rest_counts_and_ratios():
    cm = metrics.confusion_matrix(Y_TRUE, Y_PRED, 3)
    assert metrics.one_vs_rest(cm, 0) == (3, 1, 1, 5)  # tp, fp, fn, tn
    m = metrics.binary_metrics(*metrics.one_vs_rest(cm, 0))
    expected = {"sensitivity": 3 / 4, "specificity": 5 / 6, "ppv": 3 / 4, "npv": 5 / 6,
                "accuracy": 8 / 10, "f1": 6 / 8, "mcc": 14 / 24}
    assert m == pytest.approx(expected)
    m1 = metrics.binary_metrics(*metrics.one_vs_rest(cm, 1))  # tp 2, fp 1, fn 1, tn 6
    assert m1["mcc"] == pytest.approx(11 / 21)
    assert m1["f1"] == pytest.approx(4 / 6)


def test_undefined_ratios_are_nan_and_mcc_zero():
    m = metrics.binary_metrics(tp=0, fp=0, fn=3, tn=7)
    assert math.isnan(m["ppv"]) and m["sensitivity"] == 0 and m["mcc"] == 0.0


def test_multiclass_mcc_gorodkin():
    cm = metrics.confusion_matrix(Y_TRUE, Y_PRED, 3)
    # c=7, s=10, p=t=[4,3,3]: (70 - 34) / sqrt(66 * 66)
    assert metrics.multiclass_mcc(cm) == pytest.approx(36 / 66)
    binary = np.array([[5, 1], [2, 4]])
    tp, fp, fn, tn = 4, 1, 2, 5
    assert metrics.multiclass_mcc(binary) == pytest.approx(metrics.binary_metrics(tp, fp, fn, tn)["mcc"])


def test_roc_and_auc_with_ties():
    fpr, tpr, thr = metrics.roc_curve([1, 0, 1, 0], [0.9, 0.8, 0.8, 0.1])
    assert fpr.tolist() == [0, 0, 0.5, 1] and tpr.tolist() == [0, 0.5, 1, 1]
    assert thr[0] == np.inf
    # pairs (pos > neg): 0.9>0.8, 0.9>0.1, 0.8=0.8 (half), 0.8>0.1 → 3.5 / 4
    assert metrics.auc(fpr, tpr) == pytest.approx(0.875)
    assert metrics.auc(*metrics.roc_curve([0, 0, 1, 1], [0.1, 0.2, 0.3, 0.4])[:2]) == 1.0
    assert math.isnan(metrics.auc(*metrics.roc_curve([1, 1], [0.2, 0.3])[:2]))


def test_classification_report_macro_and_auc():
    probs = np.eye(3)[Y_PRED] * 0.8 + 0.1
    report = metrics.classification_report(Y_TRUE, probs, ("a", "b", "c"))
    assert report["accuracy"] == pytest.approx(0.7)
    assert report["per_class"]["a"]["support"] == 4
    sens = [3 / 4, 2 / 3, 2 / 3]
    assert report["macro"]["sensitivity"] == pytest.approx(np.mean(sens))
    # class a: scores 0.9 for predicted-a (3 true a, 1 true c), 0.1 otherwise (1 a, 5 others)
    # positives 0.9,0.9,0.9,0.1 vs negatives 0.9,0.1×5: (3·5 + 3·0.5 + 1·0.5·5) / 24
    assert report["per_class"]["a"]["auc"] == pytest.approx((15 + 1.5 + 2.5) / 24)


def test_iou_dice_conventions():
    pred = np.array([[1, 1, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]], bool)
    true = np.array([[0, 1, 1, 0], [0, 0, 0, 0], [0, 1, 0, 0]], bool)
    iou, dice = metrics.iou_dice(pred, true)
    assert iou.tolist() == pytest.approx([1 / 3, 1.0, 0.0])  # empty vs empty = 1
    assert dice.tolist() == pytest.approx([0.5, 1.0, 0.0])


def test_segmentation_report_separates_images_with_nerve():
    pred = np.array([[1, 1, 0, 0], [0, 0, 0, 0]], bool)
    true = np.array([[0, 1, 1, 0], [0, 0, 0, 0]], bool)
    report = metrics.segmentation_report(pred, true)
    assert report["iou"]["mean"] == pytest.approx((1 / 3 + 1) / 2)
    assert report["iou_nerve"]["mean"] == pytest.approx(1 / 3) and report["n_with_nerve"] == 1
    assert report["pixel_iou"] == pytest.approx(1 / 3)


@pytest.mark.parametrize("df, expected", [(1, 12.706204736), (3, 3.182446305), (5, 2.570581836),
                                          (30, 2.042272456), (1e9, 1.959963985)])
def test_t_quantile_matches_tables(df, expected):
    assert metrics.t_quantile(0.975, df) == pytest.approx(expected, abs=1e-8)
    assert metrics.t_quantile(0.025, df) == pytest.approx(-expected, abs=1e-8)


def test_mean_ci_t_interval():
    ci = metrics.mean_ci([1, 2, 3, 4])
    sem = math.sqrt(5 / 3) / 2
    assert ci["mean"] == 2.5 and ci["sem"] == pytest.approx(sem)
    assert ci["ci_low"] == pytest.approx(2.5 - 3.182446305 * sem)
    assert ci["ci_high"] == pytest.approx(2.5 + 3.182446305 * sem)
    assert math.isnan(metrics.mean_ci([0.5])["sem"])


def test_jsonable_writes_nan_as_null():
    text = json.dumps(metrics.jsonable({"a": float("nan"), "b": np.float32(0.5), "c": np.arange(2)}))
    assert json.loads(text) == {"a": None, "b": 0.5, "c": [0, 1]}


def test_metrics_and_plots_do_not_import_torch():
    code = ("import sys, nerveseg.training.metrics, nerveseg.training.plots, "
            "nerveseg.training.evaluation; print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
