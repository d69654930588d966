"""The live view on an unfamiliar view (offscreen Qt, pytest-qt, real ONNX Runtime, real
PyAV): the panel on screen says UNFAMILIAR VIEW in its own colour, and no mask is drawn."""

from __future__ import annotations

import threading

import cv2
import numpy as np
import pytest
from test_calibration import calibrated_gate, write_grey_video

from nerveseg.engines.loader import load_engine
from nerveseg.realtime.config import PipelineConfig
from nerveseg.realtime.layer import DisplayConfig
from nerveseg.realtime.overlay import LABEL_COLOURS
from nerveseg.realtime.pipeline import Engines
from nerveseg.ui.window import ViewWindow


@pytest.fixture
def window(qtbot, tmp_path):
    from engine_fixtures import make_segmenter

    _, gate = calibrated_gate(tmp_path, 1.0, -1.5)  # mid-grey (128) frames are unfamiliar
    engines = Engines(load_engine(gate, task="classify"), load_engine(make_segmenter(tmp_path / "seg.onnx"),
                                                                      task="segment"))
    # About what is drawn, not how an old overlay fades (tests/test_passthrough.py): on a
    # loaded machine the layer must not fade before the screenshot.
    config = PipelineConfig(display=DisplayConfig(fade_after_ms=3000.0, hide_after_ms=6000.0))
    made = ViewWindow(config, engines, tmp_path / "out")
    qtbot.addWidget(made)
    made.resize(900, 640)
    made.show()
    qtbot.waitExposed(made)
    yield made
    made.close()
    assert not [t for t in threading.enumerate() if t.name.startswith("nerveseg") and t.is_alive()]


def panel_pixels(qtbot, window, tmp_path) -> np.ndarray:
    view = window.view
    start = window.frames_shown
    qtbot.waitUntil(lambda: window.frames_shown >= start + 3, timeout=5000)
    # a file in the view plays live: passthrough, the panel is on the overlay layer
    qtbot.waitUntil(lambda: view.layer is not None and view.layer_alpha > 0, timeout=5000)
    view.repaint()
    path = tmp_path / "view.png"
    assert view.grab().save(str(path))
    pixels = cv2.imread(str(path))[..., ::-1].astype(int)
    rect, panel = view.image_rect(), view.layer.panel
    scale = rect.width() / view.rendered.image.shape[1]
    x0, y0 = round(rect.x()), round(rect.y())
    return pixels[y0:y0 + int(panel.y1 * scale) - 2, x0:x0 + int(panel.x1 * scale) - 2]


def is_colour(pixels: np.ndarray, colour) -> np.ndarray:
    return (np.abs(pixels - np.array(colour)).max(axis=2) < 40)


@pytest.mark.parametrize("level, unfamiliar", [(128, True), (230, False)])
def test_the_view_says_unfamiliar_view_and_draws_no_mask(window, qtbot, tmp_path, level, unfamiliar):
    video = write_grey_video(tmp_path / f"grey{level}.avi", [level] * 90)
    window.open_source(str(video))
    text = panel_pixels(qtbot, window, tmp_path)
    rendered = window.view.layer  # the result on screen (its segmentation)
    assert rendered.seg.gate.unfamiliar is unfamiliar
    yellow = is_colour(text, LABEL_COLOURS["unfamiliar"]).sum()
    green = is_colour(text, LABEL_COLOURS["nerve"]).sum()
    if unfamiliar:
        assert rendered.seg.mask is None and yellow > 20 and green == 0
    else:
        assert rendered.seg.gate.label == "nerve" and green > 20 and yellow == 0
