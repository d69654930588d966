"""Preprocessing geometry and the overlay's pixel contract."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from nerveseg.realtime.overlay import OverlayConfig, draw_panel, mask_bbox, text_lines, tint
from nerveseg.engines.preprocess import Box, PreprocessConfig, Preprocessor, detect_border, eye_box, view_box

GOLDEN = Path(__file__).parent / "golden"


def stereo(h=540, w=1920, band=120):
    rng = np.random.default_rng(0)
    frame = rng.integers(60, 180, (h, w, 3), dtype=np.uint8)
    frame[:, :band] = 255  # left eye's glare band
    frame[:, w // 2: w // 2 + band] = 255  # right eye's
    return frame


def test_eye_boxes_split_the_stereo_frame():
    assert eye_box(1080, 1920, "left") == Box(0, 0, 960, 1080)
    assert eye_box(1080, 1920, "right") == Box(960, 0, 1920, 1080)
    assert eye_box(1080, 1920, "full") == Box(0, 0, 1920, 1080)


def test_blown_out_edge_is_detected_and_cropped():
    frame = stereo()
    top, bottom, left, right = detect_border(frame[:, :960])
    assert top == 0 and bottom == 0 and right == 0
    assert 120 <= left <= 132
    box = view_box(frame, PreprocessConfig())
    assert box.x0 >= 120 and box.x1 <= 960, "the crop stays inside the left eye, past the glare"
    assert box.width == box.height and box.width % 2 == 0
    assert (box.slice(frame) < 255).any(axis=2).mean() > 0.99


def test_fixed_border_and_no_square():
    frame = stereo()
    box = view_box(frame, PreprocessConfig(eye="right", border=(0.1, 0.1, 0.0, 0.0), square=False))
    assert box.x0 == 960 and box.y0 == 54 and box.height == 432 and box.width == 960


def test_bad_config_is_refused():
    with pytest.raises(ValueError, match="eye must be"):
        PreprocessConfig(eye="middle")
    with pytest.raises(ValueError, match="border"):
        PreprocessConfig(border=(0.6, 0, 0, 0))


def test_preprocessor_reuses_one_input_buffer_and_returns_a_view():
    pre = Preprocessor(PreprocessConfig(), (64, 64))
    frame = stereo()
    view, buf, box = pre(frame)
    assert buf.shape == (1, 64, 64, 3) and buf.dtype == np.uint8
    assert np.shares_memory(view, frame), "the view is a slice of the frame, not a copy"
    expected = cv2.resize(box.slice(frame), (64, 64), interpolation=cv2.INTER_AREA)
    assert np.array_equal(buf[0], expected)
    _, buf2, _ = pre(stereo() // 2)
    assert buf2 is buf, "one preallocated engine input"


def test_overlay_changes_only_mask_and_panel_pixels():
    rng = np.random.default_rng(1)
    image = rng.integers(0, 255, (400, 400, 3), dtype=np.uint8)
    original = image.copy()
    mask = np.zeros((400, 400), bool)
    mask[200:230, 50:350] = True
    tint(image, mask, (60, 255, 90), 0.45)
    panel = draw_panel(image, text_lines("nerve", 0.97, {"gate": 5.0, "seg": 9.0}, 31.0, 2))
    changed = (image != original).any(axis=2)
    allowed = mask.copy()
    allowed[panel.y0:panel.y1, panel.x0:panel.x1] = True
    assert not (changed & ~allowed).any(), "no pixel outside the mask tint and text panel may change"
    assert changed[mask].mean() > 0.99
    assert image[215, 200, 1] > original[215, 200, 1] or original[215, 200, 1] > 250
    assert mask_bbox(mask) == Box(50, 200, 350, 230) and mask_bbox(~np.ones_like(mask)) is None


def test_overlay_config_checks_values():
    with pytest.raises(ValueError, match="opacity"):
        OverlayConfig(opacity=1.5)


def golden_frame() -> np.ndarray:
    y, x = np.mgrid[0:240, 0:320]
    image = np.stack([(x * 0.6 + 40), (y * 0.7 + 50), (x + y) * 0.3 + 60], axis=2).astype(np.uint8)
    mask = ((x - 160) ** 2 / 120 ** 2 + (y - 150) ** 2 / 25 ** 2) < 1
    tint(image, mask, (60, 255, 90), 0.45)
    draw_panel(image, text_lines("nerve", 0.93, {"dec": 3.1, "pre": 0.4, "gate": 6.2, "seg": 11.8}, 42.0, 0))
    return image


def test_golden_overlay_frame_within_pixel_tolerance():
    """The overlay's look is pinned by a golden frame; text antialiasing may differ slightly."""
    path = GOLDEN / "overlay_320x240.png"
    image = golden_frame()
    if not path.exists():  # first run writes it; it is then committed
        path.parent.mkdir(exist_ok=True)
        cv2.imwrite(str(path), image[..., ::-1])
    golden = cv2.imread(str(path))[..., ::-1]
    diff = np.abs(golden.astype(int) - image.astype(int)).max(axis=2)
    assert (diff > 40).mean() < 0.002, "overlay differs from the golden frame"


def test_view_is_trimmed_to_a_whole_multiple_of_the_engine_input_only_when_that_is_cheap():
    from nerveseg.engines.preprocess import snap_to_multiple

    assert snap_to_multiple(Box(100, 0, 1012, 912), (224, 224)) == Box(108, 8, 1004, 904), "16 px of 912: trimmed"
    assert snap_to_multiple(Box(0, 0, 640, 240), (32, 32)) == Box(0, 0, 640, 240), "16 px of 240 is too many"
    assert snap_to_multiple(Box(5, 5, 25, 25), (32, 32)) == Box(5, 5, 25, 25), "smaller than the input: kept"
    pre = Preprocessor(PreprocessConfig(border="none"), (64, 64))
    _, buf, box = pre(np.zeros((300, 600, 3), np.uint8))  # left eye 300 x 300
    assert box.width == box.height == 300, "the whole eye, resized by a fraction"
    assert buf.shape == (1, 64, 64, 3)
