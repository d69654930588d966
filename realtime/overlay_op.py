"""The overlay operator: draws each result on its frame and, for live passthrough, posts
it as a transparent layer (:mod:`.layer`) drawn by the very same code."""

from __future__ import annotations

import collections
import dataclasses
from typing import Callable

import numpy as np

from .frames import Rendered, Segmentation, now_ns, stage_ms
from .graph import Operator
from .layer import Canvases, Layer, LayerBoard, make_layer
from .overlay import OverlayConfig, draw_instances, draw_panel, mask_bbox, text_lines, tint
from .roi import draw_roi, roi_bounds
from .truth import TruthScorer, overlay_lines as truth_lines

#: the region-of-interest outline: cyan, apart from the nerve's green and the scale bar's red
ROI_COLOUR = (40, 200, 255)

SHORT = {"decode": "dec", "preprocess": "pre", "gate": "gate", "segment": "seg", "overlay": "ovl",
         "encode": "enc"}


class OverlayOp(Operator):
    """Draws the mask tint, the region's outline and the text panel on a copy of the
    view. ``opacity`` may be changed while running (from the UI). With a ``board`` (live
    passthrough, :mod:`.layer`) the same drawing is also posted as a transparent layer."""

    name = "overlay"

    def __init__(self, config: OverlayConfig, fps_window: int = 30, board: LayerBoard | None = None,
                 scorer: TruthScorer | None = None, draw_frames: Callable[[], bool] = lambda: True):
        self.config = config
        self.scorer = scorer  # replay --gt: each frame scored on its annotation, drawn and logged
        self.opacity = config.opacity
        self.board = board
        # Passthrough: whether each frame must still be drawn with its own mask (an annotated
        # recording, a validation tap); asked per frame, a recording may start any time.
        self.draw_frames = draw_frames
        self._canvases = Canvases()
        self._times: collections.deque = collections.deque(maxlen=fps_window)
        self._last_ms: dict[str, float] = {}

    @property
    def opacity(self) -> float:
        return self._opacity

    @opacity.setter
    def opacity(self, value: float) -> None:
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"opacity must be within [0, 1], not {value}")
        self._opacity = float(value)

    def fps(self) -> float:
        """Running frame rate over the last ``fps_window`` rendered frames."""
        if len(self._times) < 2:
            return 0.0
        span = self._times[-1] - self._times[0]
        return (len(self._times) - 1) * 1e9 / span if span > 0 else 0.0

    def _lines(self, s: Segmentation, scored: dict) -> list | None:
        if not self.config.panel:
            return None
        g = s.gate
        ms = {SHORT[k]: v for k, v in stage_ms(s.stamps).items() if k in SHORT}
        if s.mask is None:
            ms.pop("seg", None)
        # This frame's overlay and encode are not done yet: show the previous ones.
        ms.update({k: v for k, v in self._last_ms.items() if k not in ms})
        errors = [e for e in (g.error, s.error) if e]
        lines = text_lines(g.shown_label, g.confidence, ms, self.fps(), g.dropped,
                           [f"WARNING {e[:60]}" for e in errors])
        lines[1:1] = truth_lines(scored)  # under the label: kept when a small picture cuts lines
        return lines

    def _draw(self, image: np.ndarray, s: Segmentation, lines: list | None, opacity: float):
        """Draw ``s`` on ``image`` in place; returns ``(panel box, marks, boxes touched)``."""
        marks, touched = (), []
        if s.instances is not None:
            marks = draw_instances(image, s.instances, opacity, self.config.outline)
            touched += list(marks)
        elif s.mask is not None:
            tint(image, s.mask, self.config.colour, opacity, self.config.outline)
        if s.mask is not None:
            touched.append(mask_bbox(s.mask))
        if s.roi is not None:
            thickness = max(1, image.shape[0] // 360)
            draw_roi(image, s.roi, ROI_COLOUR, thickness)
            touched.append(roi_bounds(s.roi, thickness, image.shape[:2]))
        panel = draw_panel(image, lines, self.config.font_scale) if lines is not None else None
        touched.append(panel)
        return panel, marks, [b for b in touched if b is not None]

    def _layer(self, s: Segmentation, lines: list | None, opacity: float, stamps: tuple, t0: int) -> Layer:
        """``s`` drawn as a transparent layer (:mod:`.layer`), by :meth:`_draw` itself; its
        stamps end with the overlay's, from ``t0`` to the layer made."""
        g, panels = s.gate, []

        def draw(canvas: np.ndarray) -> list:
            panel, _, touched = self._draw(canvas, s, lines, opacity)
            panels.append(panel)
            return touched

        layer = make_layer(g.view.shape[:2], draw, self._canvases, index=g.frame.index,
                           captured_ns=g.frame.captured_ns, box=g.box, label=g.shown_label, confidence=g.confidence,
                           segmented=s.mask is not None, seg=s)
        return dataclasses.replace(layer, panel=panels[0], stamps=stamps + (("overlay", t0, now_ns()),))

    def process(self, s: Segmentation) -> Rendered:
        g = s.gate
        stamps, scored = s.stamps, {}
        if self.scorer is not None:  # timed on its own: the overlay's own time stays comparable
            ts = now_ns()
            scored = self.scorer(g.frame.number, g.shown_label, s.mask, g.box, g.view.shape[:2])
            stamps += (("score", ts, now_ns()),)
        t0 = now_ns()
        self._times.append(t0)
        opacity, lines = self.opacity, self._lines(s, scored)
        marks, panel = (), None
        if self.board is None or self.draw_frames():
            image = g.view.copy()  # the view is a slice of the decoded frame: draw on our own copy
            panel, marks, _ = self._draw(image, s, lines, opacity)
        else:  # passthrough, nothing records annotated frames: the layer is the only drawing
            image = g.view
        t1 = now_ns()
        if self.board is not None:
            self.board.post(self._layer(s, lines, opacity, stamps, t0))
            t1 = now_ns()
        self._last_ms["ovl"] = (t1 - t0) / 1e6
        return Rendered(s, image, panel, stamps + (("overlay", t0, t1),), fps=self.fps(), marks=marks,
                        extra={"truth": scored} if self.scorer is not None else {})
