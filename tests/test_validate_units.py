"""The validation's building blocks on hand-made inputs: pixel rules, delay arithmetic,
thresholds, test-set layouts, the display probe's fallback."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from nerveseg.engines.errors import UserError
from nerveseg.commands.validation import degradation as deg
from nerveseg.commands.validation import delays
from nerveseg.commands.validation.display import Shown, SubscriberProbe, make_probe
from nerveseg.commands.validation.testsets import find_test_sets

CLASSES = ("nerve", "opening_wound", "tendon")


def test_only_pixels_outside_the_overlay_count():
    raw = np.full((10, 12, 3), 100, np.uint8)
    shown = raw.copy()
    allowed = np.zeros((10, 12), bool)
    allowed[2:4] = True
    shown[2:4] = 0                      # inside the overlay: allowed
    assert deg.outside_difference(shown, raw, allowed) == (0, 0)
    shown[8, 5, 1] = 103                # one channel of one pixel, outside
    shown[9, 0] = 101
    assert deg.outside_difference(shown, raw, allowed) == (2, 3)
    assert deg.outside_difference(shown, raw, allowed, tolerance=1) == (1, 3)
    with pytest.raises(ValueError):
        deg.outside_difference(shown[:5], raw, allowed)


def test_codec_loss_of_identical_and_noisy_frames():
    a = np.random.default_rng(0).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    assert deg.codec_loss(a, a) == (None, 0.0, 0, 0.0)
    b = a.copy()
    b[0, 0, 0] ^= 4
    psnr, mean, worst, fraction = deg.codec_loss(b, a)
    assert psnr > 40 and worst == 4 and fraction == pytest.approx(1 / 256)


def _shown(index: int, captured: int, segmented: bool = True) -> Shown:
    stamps = (("decode", captured - 5, captured - 1), ("preprocess", captured + 2, captured + 4),
              ("gate", captured + 4, captured + 9), ("segment", captured + 11, captured + 20),
              ("overlay", captured + 21, captured + 24))
    return Shown(index, captured, stamps, segmented, captured + 30, captured + 35, captured + 50)


def test_the_parts_of_a_delay_add_up_to_the_delay():
    parts = delays.parts_ms(_shown(0, 1000))
    assert list(parts) == list(delays.PARTS)
    assert sum(parts.values()) == pytest.approx(50 / 1e6)
    assert parts["queue before gate"] == pytest.approx(2 / 1e6) and parts["paint"] == pytest.approx(15 / 1e6)


def test_delay_report_leaves_out_warm_up_and_separates_annotated_frames():
    shown = [_shown(i, i * 1_000_000, segmented=i % 2 == 0) for i in range(50)]
    report = delays.delay_report(shown, fps=25.0, counts={"source": 50})
    assert report["skipped_each_end"] == 10 and report["frame_period_ms"] == 40.0
    assert report["video"]["stats"]["n"] == 30 and report["annotation"]["stats"]["n"] == 15
    assert report["video"]["stats"]["p50"] == pytest.approx(50 / 1e6, abs=1e-3)
    assert report["frames"] == {"source": 50, "shown": 50, "shown_with_mask": 25}


def test_threshold_checks_pass_fail_and_refuse_to_pass_on_no_evidence():
    stats = {"p50": 10.0, "p95": 30.0, "p99": 40.0, "max": 90.0}
    assert delays.threshold_check("video delay", stats, "p95", 33.3)["passed"]
    failed = delays.threshold_check("video delay", stats, "max", 33.3)
    assert not failed["passed"] and failed["line"].startswith("FAIL  video delay: max 90.0 ms > 33.3 ms")
    missing = delays.threshold_check("annotation delay", None, "p95", 120)
    assert not missing["passed"] and "not measured" in missing["line"]
    with pytest.raises(ValueError):
        delays.threshold_check("video delay", stats, "p90", 1)


def test_synth_all_layout_and_a_splits_folder(tmp_path):
    import cv2

    for cls in CLASSES:
        (tmp_path / "classify" / cls).mkdir(parents=True)
        cv2.imwrite(str(tmp_path / "classify" / cls / "a.png"), np.zeros((8, 8, 3), np.uint8))
    for name in ("img", "masks_machine"):
        (tmp_path / "segment" / "ds" / name).mkdir(parents=True)
        cv2.imwrite(str(tmp_path / "segment" / "ds" / name / "f.png"), np.zeros((8, 8), np.uint8))
    splits = tmp_path / "run" / "splits"
    splits.mkdir(parents=True)
    (splits / "test.txt").write_text("nerve/a.png\ntendon/a.png\n")
    found = find_test_sets([tmp_path], CLASSES, gate_split=splits)
    assert found["classify"].items == ("nerve/a.png", "tendon/a.png") and len(found["segment"].items) == 1
    with pytest.raises(UserError, match="a second classify test set"):
        find_test_sets([tmp_path, tmp_path / "classify"], CLASSES)
    with pytest.raises(UserError, match="not a split list"):
        find_test_sets([tmp_path], CLASSES, gate_split=tmp_path / "classify" / "nerve" / "a.png")


def test_the_qt_probe_falls_back_to_the_subscriber_and_says_why(monkeypatch):
    monkeypatch.setitem(sys.modules, "nerveseg.ui.paint_probe", None)
    probe = make_probe("qt")
    assert isinstance(probe, SubscriberProbe)
    described = probe.describe()
    assert described["method"] == "subscriber" and "Qt view unavailable" in described["fallback_reason"]
    assert "subscriber" in described["on_screen_means"]


def test_a_recording_resized_to_its_first_size_is_compared_as_the_recorder_stored_it():
    """The automatic crop changed the view mid-video (896 → 672 px): the recorder resized
    the frame to its first size; outside the (grown) overlay region it equals the input."""
    import cv2

    from nerveseg.commands.validation.degradation import as_recorded, outside_difference

    rng = np.random.default_rng(0)
    view = rng.integers(0, 255, (672, 672, 3), dtype=np.uint8)
    allowed = np.zeros((672, 672), bool)
    allowed[100:140, 200:400] = True
    shown = view.copy()
    shown[allowed] = (255, 0, 0)
    recorded = cv2.resize(shown, (896, 896), interpolation=cv2.INTER_AREA)
    raw, region = as_recorded(view, allowed, recorded.shape)
    assert raw.shape == recorded.shape and region.shape == recorded.shape[:2]
    assert outside_difference(recorded, raw, region)[0] == 0
    leaked = recorded.copy()
    leaked[600:610, 600:610] = 0  # damage far from the overlay is still found
    assert outside_difference(leaked, raw, region)[0] >= 100
    same = as_recorded(view, allowed, view.shape)
    assert same[0] is view and same[1] is allowed


def test_the_video_score_says_where_the_product_stayed_silent(tmp_path):
    """An unfamiliar view shows no label: the video's score counts those frames apart, with
    whether the network's label would have been right, and the accuracy of labels shown."""
    import numpy as np

    from nerveseg.commands.validation.groundtruth import TruthScore, VideoTruth
    from nerveseg.engines.preprocess import Box
    from nerveseg.realtime.frames import Frame, GateResult, Rendered, Segmentation

    classes = ("nerve", "opening_wound", "tendon")
    truth = VideoTruth(tmp_path, {0: "nerve", 1: "nerve", 2: "tendon", 3: "tendon"})
    score = TruthScore(truth, classes, eye="right")  # labels only: no masks needed
    # network's top class: right, wrong, wrong, right; frames 1 and 3 were unfamiliar (silent)
    tops, silent = [0, 2, 0, 2], [False, True, False, True]
    for i, (top, quiet) in enumerate(zip(tops, silent)):
        probs = np.full(3, 0.1, np.float32)
        probs[top] = 0.8
        view = np.zeros((8, 8, 3), np.uint8)
        g = GateResult(Frame(i, 0, view), view, Box(0, 0, 8, 8), view[None], classes[top], 0.8, probs,
                       False, (), unfamiliar=quiet)
        score(Rendered(Segmentation(g, None, ()), view, None, ()))
    shown = score.report()["shown"]
    assert shown == {"frames": 4, "silent": 2, "silent_fraction": 0.5, "silent_where_the_label_would_be_wrong": 1,
                     "silent_where_the_label_would_be_right": 1, "labels_shown": 2, "wrong_labels_shown": 1,
                     "accuracy_of_labels_shown": 0.5}


def test_a_closed_qt_probe_leaves_no_window_behind():
    """Its window and bridge are deleted at close, while the run is known to be over, not
    in whichever event loop comes next (the next probe's, during another run)."""
    from PyQt6 import sip
    from PyQt6.QtWidgets import QApplication

    from nerveseg.ui.paint_probe import QtPaintProbe

    probe = QtPaintProbe(size=(320, 240))
    assert probe.view in QApplication.topLevelWidgets()
    probe.close()
    assert sip.isdeleted(probe.view) and sip.isdeleted(probe.bridge)
    assert not [w for w in QApplication.topLevelWidgets() if type(w).__name__ == "StampedView"]
