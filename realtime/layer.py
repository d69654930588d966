"""The overlay as a layer of its own, for the live passthrough display (docs/LIVE.md).

Live, the surgeon's picture does not wait for the networks: every captured frame goes
to the display as it is, and the latest inference result is a separate, transparent
layer drawn over whatever frame is on screen (as HoloHub composites video and overlay).

A :class:`Layer` is made from exactly the drawing the per-frame overlay does, run once on
a black and once on a white canvas: where the drawing blends ``out = a·colour +
(1 − a)·picture`` (the tint, the outline, the darkened panel and its text), the black
canvas gives the premultiplied colour ``a·colour`` and the white one ``255·(1 − a) +
a·colour``, hence ``a``. Composited on the frame the layer was made from, a layer gives
the per-frame drawing back (to rounding); composited on a newer frame, it is what the
screen shows. The layer's pixels are premultiplied RGBA, the format Qt blends without
converting (``QImage.Format_RGBA8888_Premultiplied``).

Its age (capture of its frame → now) decides how it is drawn: whole up to
``fade_after_ms``, fading linearly to nothing at ``hide_after_ms``, hidden beyond, so an
old mask never passes for a current one.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Callable, Literal

import cv2
import numpy as np

from nerveseg.engines.checks import Range, bounded
from nerveseg.engines.preprocess import Box

from .frames import now_ns

DISPLAY_MODES = ("auto", "passthrough", "per-frame")
AGE_MS = Range(1.0, 10_000.0)
#: ``display.scale: auto`` shows a picture one frame pixel per screen pixel when fitting it
#: to the window would enlarge it by this factor or less, and fits it otherwise
AUTO_NATIVE_UP = 1.25
#: ``display.realtime_priority: auto``: the display path's threads at this real-time
#: priority where the account may use the policy (docs/LIVE.md)
AUTO_REALTIME = 10


@dataclass(frozen=True)
class DisplayConfig:
    """``mode``: ``passthrough`` (every frame shown at once, the overlay a layer over it),
    ``per-frame`` (each frame shown with its own mask, after its inference) or ``auto``
    (passthrough for live sources, per-frame for files: replay to AVI keeps its exact
    per-frame drawing). ``fade_after_ms``/``hide_after_ms``: the layer's age at which it
    starts to fade and at which it is hidden."""

    mode: str = bounded("auto", DISPLAY_MODES)
    # fit: the picture scaled to fill the window; native: one frame pixel per screen pixel
    # when the picture fits (no scaling: the cheapest paint, the sharpest picture), else fit;
    # auto: native when fitting would only enlarge the picture a little (at most
    # AUTO_NATIVE_UP: a 944-px eye in a 1080-px window), else fit (a small camera picture
    # still fills the screen)
    scale: str = bounded("auto", ("auto", "fit", "native"))
    fade_after_ms: float = bounded(100.0, AGE_MS, why="the overlay's age at which it starts to fade")
    hide_after_ms: float = bounded(250.0, AGE_MS, why="the overlay's age at which it is hidden")
    # passthrough: the inference threads' OS priority lowered by this (nice; 0: not lowered),
    # so the display path wins a busy CPU (realtime/priority.py)
    inference_nice: int = bounded(10, Range(0, 19), why="how far the inference threads' priority is lowered")
    # passthrough, live: the display path's threads (capture and show; the GUI thread) run
    # under the kernel's real-time policy at this priority (SCHED_FIFO 1-99; 0: off), so
    # they take a core the moment a frame is there (realtime/priority.py); auto: at
    # AUTO_REALTIME where the account may use the policy, else at the normal one, quietly
    realtime_priority: Literal["auto"] | int = bounded(
        "auto", Range(0, 99), why="the display path's real-time priority; 0: off; auto: 10 where the account may")

    def __post_init__(self) -> None:
        if self.hide_after_ms <= self.fade_after_ms:
            raise ValueError(f"display.hide_after_ms ({self.hide_after_ms:g}) must be above "
                             f"display.fade_after_ms ({self.fade_after_ms:g})")

    def realtime(self) -> tuple[int, bool]:
        """``(priority, asked)``: the display path's real-time priority (0: off), and whether it
        was asked for by number (a refusal is then a warning; under ``auto`` it is only noted)."""
        if self.realtime_priority == "auto":
            return AUTO_REALTIME, False
        return int(self.realtime_priority), True

    def native(self, picture: tuple[int, int], window: tuple[int, int]) -> bool:
        """Whether a ``picture`` ``(w, h)`` is shown one pixel per screen pixel in a
        ``window`` ``(w, h)``: it must fit; ``native`` then always, ``auto`` when fitting
        would enlarge it by :data:`AUTO_NATIVE_UP` or less, ``fit`` never."""
        (w, h), (ww, wh) = picture, window
        if self.scale == "fit" or w > ww or h > wh or w <= 0 or h <= 0:
            return False
        return self.scale == "native" or min(ww / w, wh / h) <= AUTO_NATIVE_UP

    def passthrough(self, live: bool) -> bool:
        return self.mode == "passthrough" or (self.mode == "auto" and live)

    def alpha(self, age_ms: float) -> float:
        """The layer's opacity at ``age_ms``: 1, fading linearly, then 0."""
        if age_ms <= self.fade_after_ms:
            return 1.0
        if age_ms >= self.hide_after_ms:
            return 0.0
        return (self.hide_after_ms - age_ms) / (self.hide_after_ms - self.fade_after_ms)


@dataclass(frozen=True, slots=True, eq=False)
class Patch:
    """A piece of the layer at ``(x, y)`` of the view: ``rgb`` ``(h, w, 3) uint8`` the
    premultiplied colour and ``alpha3`` ``(h, w, 3) uint8`` the opacity (×255) per channel,
    for an RGB picture (a recording); ``bgrx``/``alpha4`` the same for the screen's 32-bit
    picture (``QImage.Format_RGB32``), the fourth channel 0."""

    x: int
    y: int
    rgb: np.ndarray
    alpha3: np.ndarray
    bgrx: np.ndarray
    alpha4: np.ndarray

    @property
    def box(self) -> Box:
        h, w = self.rgb.shape[:2]
        return Box(self.x, self.y, self.x + w, self.y + h)


@dataclass(frozen=True, slots=True, eq=False)
class Layer:
    """The latest inference result as a transparent layer. ``index``/``captured_ns``: the
    frame it was computed on; ``box``: that view's box in the frame (a layer is drawn only
    over views of the same geometry); ``shape``: the view's ``(h, w)``; ``made_ns``: when
    the layer was ready; ``stamps``: its frame's stage stamps up to the overlay; ``seg``:
    the :class:`~nerveseg.realtime.frames.Segmentation` drawn (its mask, region, verdict)."""

    index: int
    captured_ns: int
    box: Box
    shape: tuple[int, int]
    patches: tuple[Patch, ...]
    label: str
    confidence: float
    segmented: bool
    made_ns: int
    stamps: tuple = ()  # the stages' stamps of its frame, the overlay's included
    panel: Box | None = None  # the text panel's box in the view, if drawn
    seg: object | None = None  # the Segmentation it shows (mask, region, gate verdict)

    def age_ms(self, at_ns: int | None = None) -> float:
        return ((now_ns() if at_ns is None else at_ns) - self.captured_ns) / 1e6

    def fits(self, box: Box) -> bool:
        return self.box == box


class Canvases:
    """The two canvases a layer is drawn on, kept between layers of one view size. Only
    what the last drawing touched is cleared for the next (a 4K eye's canvases are 10 MB
    each: clearing them whole per layer cost more than the drawing)."""

    MARGIN = 2  # pixels around each touched box also cleared (anti-aliased edges)

    def __init__(self) -> None:
        self._pair: tuple[np.ndarray, np.ndarray] | None = None
        self._dirty: list[Box] = []

    def get(self, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
        if self._pair is None or self._pair[0].shape[:2] != tuple(shape):
            self._pair = (np.zeros((*shape, 3), np.uint8), np.full((*shape, 3), 255, np.uint8))
            self._dirty = []
        black, white = self._pair
        h, w = shape
        m = self.MARGIN
        for box in self._dirty:
            clear = Box(max(0, box.x0 - m), max(0, box.y0 - m), min(w, box.x1 + m), min(h, box.y1 + m))
            clear.slice(black).fill(0)
            clear.slice(white).fill(255)
        self._dirty = []
        return black, white

    def touched(self, boxes: list[Box]) -> None:
        """The boxes the drawing touched: cleared before the next layer is drawn."""
        self._dirty.extend(boxes)


#: rows per patch: a nerve crossing the view diagonally gets a narrow patch per strip, not
#: one as large as the view (the blend's cost is the patches' area, per painted frame)
STRIP = 32


def patches_of(black: np.ndarray, white: np.ndarray, boxes: list[Box], strip: int = STRIP) -> tuple[Patch, ...]:
    """The layer's pieces inside ``boxes`` (where the drawing touched: the mask's box, the
    panel's, ...; they must not overlap), cut into strips of ``strip`` rows, each as narrow
    as its drawn pixels. ``black``/``white``: ``(h, w, 3) uint8`` the drawing on each canvas."""
    out = []
    for box in boxes:
        if box.width <= 0 or box.height <= 0:
            continue
        b, w = box.slice(black), box.slice(white)
        alpha3 = cv2.subtract(np.full_like(b, 255), cv2.subtract(w, b))  # 255·a, per channel
        c0, c1, c2 = cv2.split(alpha3)
        drawn = cv2.max(cv2.max(c0, c1), c2) > 0
        zero = None
        for y in range(0, box.height, strip):
            cols = np.flatnonzero(drawn[y:y + strip].any(axis=0))
            if cols.size == 0:
                continue
            ys, xs = slice(y, min(y + strip, box.height)), slice(int(cols[0]), int(cols[-1]) + 1)
            rgb, a3 = b[ys, xs].copy(), alpha3[ys, xs].copy()
            if zero is None or zero.shape != rgb.shape[:2]:
                zero = np.zeros(rgb.shape[:2], np.uint8)
            r, g, bl = cv2.split(rgb)
            a0, a1, a2 = cv2.split(a3)
            out.append(Patch(box.x0 + xs.start, box.y0 + y, rgb, a3, cv2.merge((bl, g, r, zero)),
                             cv2.merge((a2, a1, a0, zero))))
    return tuple(out)


def disjoint(boxes: list[Box]) -> list[Box]:
    """``boxes`` with every overlapping pair replaced by their union, until none overlap: a
    pixel must be in one patch only, or compositing would blend it twice."""
    boxes = [b for b in boxes if b.width > 0 and b.height > 0]
    merged = True
    while merged:
        merged = False
        for i in range(len(boxes)):
            for j in range(i + 1, len(boxes)):
                a, b = boxes[i], boxes[j]
                if a.x0 < b.x1 and b.x0 < a.x1 and a.y0 < b.y1 and b.y0 < a.y1:
                    boxes[i] = Box(min(a.x0, b.x0), min(a.y0, b.y0), max(a.x1, b.x1), max(a.y1, b.y1))
                    del boxes[j]
                    merged = True
                    break
            if merged:
                break
    return boxes


def make_layer(shape: tuple[int, int], draw: Callable[[np.ndarray], list[Box]], canvases: Canvases,
               **fields) -> Layer:
    """A layer from ``draw(image) -> boxes touched``, the per-frame overlay's drawing."""
    black, white = canvases.get(shape)
    boxes = draw(black)
    draw(white)
    canvases.touched(boxes)
    return Layer(shape=tuple(shape), patches=patches_of(black, white, disjoint(boxes)), made_ns=now_ns(), **fields)


def composite(image: np.ndarray, layer: Layer | None, alpha: float = 1.0) -> np.ndarray:
    """``image`` (``(h, w, 3) uint8`` RGB, the view) with ``layer`` over it at ``alpha``, as a
    new array; the image itself when there is nothing to draw."""
    if layer is None or alpha <= 0.0 or not layer.patches or image.shape[:2] != layer.shape:
        return image
    out = image.copy()
    _blend(out, layer, alpha, screen=False)
    return out


def blend_bgrx(bgrx: np.ndarray, layer: Layer | None, alpha: float = 1.0) -> None:
    """Composite ``layer`` at ``alpha`` into ``bgrx`` (``(h, w, 4) uint8``, the view converted
    for the screen), in place: what :func:`composite` does, without a copy of the frame."""
    if layer is None or alpha <= 0.0 or bgrx.shape[:2] != layer.shape:
        return
    _blend(bgrx, layer, alpha, screen=True)


def _blend(picture: np.ndarray, layer: Layer, alpha: float, screen: bool) -> None:
    """``picture ← picture·(1 − a) + a·colour`` over each patch, in place (the patch holds
    the premultiplied colour ``a·colour``); ``screen``: a BGRX picture, else RGB."""
    for patch in layer.patches:
        region = patch.box.slice(picture)
        colour, opacity = (patch.bgrx, patch.alpha4) if screen else (patch.rgb, patch.alpha3)
        if alpha < 1.0:
            colour, opacity = cv2.convertScaleAbs(colour, alpha=alpha), cv2.convertScaleAbs(opacity, alpha=alpha)
        region[:] = cv2.add(cv2.subtract(region, cv2.multiply(region, opacity, scale=1 / 255)), colour)


class LayerBoard:
    """The latest layer, posted by the overlay's thread, read by the display path's and
    told to listeners (the live view) as it arrives. Safe from any thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._latest: Layer | None = None
        self._listeners: list[Callable[[Layer], None]] = []
        self.posted = 0

    @property
    def latest(self) -> Layer | None:
        return self._latest  # one reference read: atomic

    def subscribe(self, callback: Callable[[Layer], None]) -> None:
        with self._lock:
            self._listeners.append(callback)

    def post(self, layer: Layer) -> None:
        with self._lock:
            self._latest = layer
            self.posted += 1
            listeners = list(self._listeners)
        for callback in listeners:
            callback(layer)

    def clear(self) -> None:
        """Forget the layer (the picture changed: another eye, another crop)."""
        self._latest = None
