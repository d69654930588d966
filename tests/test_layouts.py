"""Stereo layouts, the whole field of view, and a crop that stays put for the run."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from nerveseg.engines.preprocess import (MAX_TRIM, Box, PreprocessConfig, Preprocessor, eye_box, resolve_layout,
                                         view_box)


def test_auto_layout_from_the_frame_shape():
    assert resolve_layout(1080, 1920, "auto")[0] == "side-by-side"  # the shipped sample
    assert resolve_layout(1080, 3840, "auto")[0] == "side-by-side"
    for h, w in ((128, 128), (1080, 1080), (720, 1280 * 0 + 960), (1280, 720), (480, 640)):
        assert resolve_layout(h, w, "auto")[0] == "mono", (h, w)
    assert resolve_layout(1080, 1920, "mono") == ("mono", "set in the config")


def test_eye_boxes_of_every_layout():
    assert eye_box(1080, 1920, "right", "side-by-side") == Box(960, 0, 1920, 1080)
    assert eye_box(2160, 1920, "left", "top-bottom") == Box(0, 0, 1920, 1080)
    assert eye_box(2160, 1920, "right", "top-bottom") == Box(0, 1080, 1920, 2160)
    assert eye_box(128, 128, "left", "mono") == Box(0, 0, 128, 128), "a mono frame is its one eye"
    assert eye_box(1080, 1920, "full", "side-by-side") == Box(0, 0, 1920, 1080)


def test_single_eye_images_are_not_halved():
    """The original study's datasets: one-eye frames. They reach the engines whole."""
    frame = np.random.default_rng(0).integers(40, 200, (128, 128, 3), np.uint8)
    pre = Preprocessor(PreprocessConfig(), (64, 64))
    view, _, box = pre(frame)
    assert box == Box(0, 0, 128, 128) and view.shape == (128, 128, 3)
    assert pre.describe()["layout"] == "mono" and "not twice as wide" in pre.describe()["layout_reason"]


def test_top_bottom_right_eye():
    frame = np.zeros((720, 640, 3), np.uint8)
    frame[360:] = 100  # the right (lower) eye is grey, the left black
    view, _, box = Preprocessor(PreprocessConfig(layout="top-bottom", eye="right", border="none"), (32, 32))(frame)
    assert box.y0 >= 360 and (view == 100).all()


def test_bad_layout_is_refused():
    with pytest.raises(ValueError, match="layout must be one of"):
        PreprocessConfig(layout="anaglyph")


LAYOUT_CASES = st.sampled_from([("side-by-side", "left"), ("side-by-side", "right"), ("side-by-side", "full"),
                                ("top-bottom", "left"), ("top-bottom", "right"), ("mono", "left"), ("auto", "left")])


@settings(max_examples=300, deadline=None)
@given(h=st.integers(8, 2200), w=st.integers(8, 4000), case=LAYOUT_CASES, square=st.booleans(),
       size=st.sampled_from([(32, 32), (64, 64), (224, 224), (256, 256), (512, 512), (160, 224)]))
def test_the_engines_see_the_whole_chosen_view(h, w, case, square, size):
    """At most 2 % of either axis of the chosen view is trimmed for the resize's fast path."""
    layout, eye = case
    config = PreprocessConfig(layout=layout, eye=eye, border="none", square=square)
    frame = np.zeros((h, w, 3), np.uint8)
    chosen = view_box(frame, config)
    if chosen.width < 2 or chosen.height < 2:
        return  # frames too small to show anything are refused elsewhere
    view, buf, box = Preprocessor(config, size)(frame)
    assert buf.shape == (1, *size, 3)
    assert box.x0 >= chosen.x0 and box.x1 <= chosen.x1 and box.y0 >= chosen.y0 and box.y1 <= chosen.y1
    assert box.width >= chosen.width * (1 - MAX_TRIM) and box.height >= chosen.height * (1 - MAX_TRIM)
    assert view.shape[:2] == (box.height, box.width)


def glare(frame_h: int, frame_w: int, band: int) -> np.ndarray:
    frame = np.random.default_rng(1).integers(60, 180, (frame_h, frame_w, 3), dtype=np.uint8)
    frame[:, :band] = 255
    return frame


def test_the_crop_is_fixed_for_the_run_until_the_size_changes_or_it_is_asked_for():
    pre = Preprocessor(PreprocessConfig(), (64, 64))
    _, _, first = pre(glare(540, 1920, 120))
    for _ in range(100):  # the glare grows, as it did in the shipped sample at frame 120
        _, _, box = pre(glare(540, 1920, 300))
        assert box == first, "the crop does not move during the run"
    pre.redetect()
    _, _, again = pre(glare(540, 1920, 300))
    assert again != first and again.x0 >= 300, "asked: found again"
    _, _, other = pre(glare(720, 2560, 120))
    assert other.height > again.height, "a new frame size (a reconnect): found again"


@settings(max_examples=60, deadline=None)
@given(h=st.integers(16, 1400), w=st.integers(16, 1400), extra=st.integers(0, 3))
def test_the_text_panel_never_hides_more_than_a_corner(h, w, extra):
    from nerveseg.realtime.overlay import PANEL_MAX, draw_panel, text_lines

    image = np.full((h, w, 3), 200, np.uint8)
    lines = text_lines("opening_wound", 0.93, {"decode": 1.2, "preprocess": 0.8, "gate": 2.1, "segment": 3.3,
                                               "overlay": 0.9}, 29.9, 3, extra=[f"WARNING {i}" for i in range(extra)])
    box = draw_panel(image, lines)
    assert box.width <= PANEL_MAX[0] * w and box.height <= PANEL_MAX[1] * h
    if h >= 64:
        assert box.height > 0, "a picture this size shows at least the label line"
    outside = np.ones((h, w), bool)
    outside[box.y0:box.y1, box.x0:box.x1] = False
    assert (image[outside] == 200).all(), "the panel draws inside its box only"


def test_side_by_side_half_stretches_the_eye_back_to_its_shape():
    """A 1920x1080 frame-compatible 3D frame: each eye is 960x1080 squeezed from 1920x1080."""
    eye = np.zeros((1080, 1920, 3), np.uint8)
    eye[:, 960 - 40: 960 + 40] = 200  # an 80 px wide band in the middle of the true eye
    squeezed = eye[:, ::2]  # 960 wide
    frame = np.concatenate([squeezed, np.zeros_like(squeezed)], axis=1)
    pre = Preprocessor(PreprocessConfig(layout="side-by-side-half", border="none", square=False), (90, 160))
    view, buf, box = pre(frame)
    assert view.shape[:2] == (1080, 1920), "the eye at its true 16:9 shape"
    band = np.flatnonzero(view[540, :, 0] > 100)
    assert 76 <= band.size <= 84, "the band is as wide as in the true eye"
    assert pre.describe()["layout"] == "side-by-side-half"
    square = Preprocessor(PreprocessConfig(layout="side-by-side-half", border="none"), (64, 64))
    assert square(frame)[0].shape[:2] == (1080, 1080), "square: a square of the true eye"


def test_the_layout_pictures_of_docs_sources_are_drawn_by_their_script(tmp_path):
    import runpy
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "scripts" / "layout_pictures.py"
    written = runpy.run_path(str(script))["main"](str(tmp_path))
    assert [p.name for p in written] == ["layout_side-by-side.png", "layout_side-by-side-half.png",
                                         "layout_top-bottom.png", "layout_mono.png"]
    docs = (script.parents[1] / "docs" / "SOURCES.md").read_text()
    assert all(f"img/{p.name}" in docs for p in written)


def test_a_reconnected_source_gets_its_crop_found_again(tiny_engines):
    """Same size, another picture after a reconnect (another input on the capture card):
    the crop is found again; within one connection it stays put."""
    from nerveseg.engines.loader import load_engine
    from nerveseg.realtime.frames import Frame, now_ns
    from nerveseg.realtime.stages import GateOp

    gate = GateOp(load_engine(tiny_engines[0], task="classify"), PreprocessConfig())
    first = gate.process(Frame(0, now_ns(), glare(540, 1920, 120))).box
    same = gate.process(Frame(1, now_ns(), glare(540, 1920, 300))).box
    again = gate.process(Frame(2, now_ns(), glare(540, 1920, 300), connection=1)).box
    assert same == first and again != first and again.x0 >= 300


def test_recrop_every_n_frames_follows_a_border_that_moves():
    pre = Preprocessor(PreprocessConfig(recrop_every=10), (64, 64))
    boxes = [pre(glare(540, 1920, 120 if i < 5 else 300))[2] for i in range(12)]
    assert boxes[0] == boxes[8] and boxes[9] != boxes[0] and boxes[9].x0 >= 300, "found again at frame 10"
    from nerveseg.engines.errors import UserError
    from nerveseg.realtime import config as cfg

    with pytest.raises(UserError, match="recrop_every"):
        cfg.from_dict({"preprocess": {"recrop_every": -1}})
