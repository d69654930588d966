"""The live display path: every captured frame, straight to the screen (docs/LIVE.md).

    source ─┬▶ show ─┬▶ subscribers (the view paints the frame, then the layer over it)
            │        └▶ shown record ("as shown" AVI: each frame with the layer as it was)
            └▶ gate ─▶ segment ─▶ overlay ─▶ record ─▶ log
                                     └─ posts the newest layer on the LayerBoard ─┘ (read by show)

The show operator takes no part in inference and waits for none: it cuts the view out of
the frame (a slice at the crop in force), notes the layer then in force and its age, and
passes the frame on. Nothing else is done to the picture on this path: conversion and
scaling for the screen happen in the view, compositing in the view's paint or, for an
"as shown" recording, in the recorder's thread.
"""

from __future__ import annotations

import collections
import dataclasses

import numpy as np

from .frames import Frame, GateResult, Rendered, Segmentation, now_ns
from .graph import Operator
from .layer import DisplayConfig, Layer, LayerBoard, composite

#: overlay ages kept for the summary: ten minutes at 60 fps (a long case keeps its latest)
AGES_KEPT = 36_000
NO_PROBS = np.zeros(0, np.float32)
NO_INPUT = np.empty((1, 0, 0, 3), np.uint8)


class ShowOp(Operator):
    """Frames → :class:`Rendered` records whose ``image`` is the raw view and whose
    ``layer`` is the overlay layer in force (None when there is none yet, or it was made
    on a view of another geometry). ``gate``: the gate operator, whose crop is read (never
    changed) here. ``extra`` carries ``overlay_frame``, ``overlay_age_ms`` and
    ``overlay_alpha``: what the surgeon is shown, per frame."""

    name = "show"

    def __init__(self, gate, board: LayerBoard, display: DisplayConfig):
        self.gate, self.board, self.display = gate, board, display
        self._stretch: dict = {}
        self.frames = 0
        self.hidden = 0  # frames shown without their layer because it was too old
        self.ages: collections.deque = collections.deque(maxlen=AGES_KEPT)  # overlay age per frame shown (ms)

    def process(self, frame: Frame) -> Rendered:
        t0 = now_ns()
        view, box = self.gate.preprocess.view_of(frame.image, self._stretch)
        layer = self.board.latest
        if layer is not None and not layer.fits(box):
            layer = None  # made on another crop or eye: it would sit on the wrong tissue
        extra = overlay_fields(layer, self.display, t0)
        self.frames += 1
        if extra["overlay_age_ms"] is not None:
            self.ages.append(extra["overlay_age_ms"])
        self.hidden += bool(layer is not None and extra["overlay_alpha"] == 0.0)
        label = layer.label if layer is not None and extra["overlay_alpha"] > 0 else "none"
        confidence = layer.confidence if label != "none" else 0.0
        g = GateResult(frame, view, box, NO_INPUT, label, confidence, NO_PROBS, False, frame.stamps,
                       unfamiliar=label == "unfamiliar")
        stamps = frame.stamps + (("show", t0, now_ns()),)
        return Rendered(Segmentation(g, None, stamps), view, None, stamps, extra=extra, layer=layer)


def overlay_fields(layer: Layer | None, display: DisplayConfig, at_ns: int) -> dict:
    """The CSV's overlay columns for a frame shown at ``at_ns`` under ``layer``."""
    if layer is None:
        return {"overlay_frame": None, "overlay_age_ms": None, "overlay_alpha": 0.0}
    age = layer.age_ms(at_ns)
    return {"overlay_frame": layer.index, "overlay_age_ms": round(age, 3),
            "overlay_alpha": round(display.alpha(age), 4)}


def as_shown(r: Rendered) -> Rendered:
    """``r`` (from :class:`ShowOp`) with its layer composited at the opacity it had when
    shown: the "as shown" recording's frame. Other records pass unchanged."""
    alpha = r.extra.get("overlay_alpha", 0.0)
    if r.layer is None or not alpha:
        return r
    return dataclasses.replace(r, image=composite(r.image, r.layer, alpha))
