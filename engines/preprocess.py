"""Frame preprocessing: stereo layout → eye crop → overexposed-border crop → square
crop → resize.

The geometry is found once, at the first frame, and then fixed for the run: it is found
again only when the frame size changes (a reconnect, another device mode) or when asked
(:meth:`Preprocessor.redetect`). A crop that changed during a run would change what
the surgeon sees and the recording's frame size (the gate also asks again when a live
source reconnects). It is applied as array slicing, so the
per-frame work is one ``cv2.resize`` into a preallocated engine input buffer.

Stereo layouts (``layout``): ``side-by-side`` (left eye | right eye), ``side-by-side-half``
(the same with each eye squeezed to half its width, the 3D "frame-compatible" format of
many recorders and monitors: the chosen eye is stretched back to its shape before
anything else), ``top-bottom`` (left eye above right), ``mono`` (one eye per frame:
image folders of single-eye frames, a mono camera). ``auto`` decides from the frame: about twice as wide as tall
(aspect ≥ 1.7) is side-by-side, anything else mono; it never guesses top-bottom. The
choice is said once per run (:meth:`Preprocessor.describe`).

The training data writer uses the same :func:`view_box` so models learn on exactly
the pixels the pipeline feeds them.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from typing import Literal, NamedTuple

import cv2
import numpy as np

from .checks import UNIT, Range, bounded

log = logging.getLogger(__name__)

Eye = Literal["left", "right", "full"]
EYES = ("left", "right", "full")
LAYOUTS = ("auto", "side-by-side", "side-by-side-half", "top-bottom", "mono")
#: ``auto``: a frame at least this much wider than tall holds two eyes side by side
STEREO_ASPECT = 1.7
#: the view is trimmed to a whole multiple of the engine input (OpenCV's integer-factor
#: fast path) only when that costs at most this fraction of either axis
MAX_TRIM = 0.02
#: views taller than this (px; above any 1080p frame) are halved before the engine-input
#: resize when they are ≥ 8× the input (Preprocessor._halved)
HALVE_ABOVE = 1080


class Box(NamedTuple):
    """Pixel rectangle ``[x0, x1) × [y0, y1)``."""

    x0: int
    y0: int
    x1: int
    y1: int

    @property
    def width(self) -> int:
        return self.x1 - self.x0

    @property
    def height(self) -> int:
        return self.y1 - self.y0

    def slice(self, image: np.ndarray) -> np.ndarray:
        """A view (no copy) of ``image`` inside the box."""
        return image[self.y0:self.y1, self.x0:self.x1]

    def offset(self, dx: int, dy: int) -> "Box":
        return Box(self.x0 + dx, self.y0 + dy, self.x1 + dx, self.y1 + dy)


@dataclass(frozen=True)
class PreprocessConfig:
    """``layout``: how the frame holds the eyes (module docstring). ``eye``: which the
    engines see in a stereo frame (``full``: the whole frame; a mono frame is its one eye
    whatever ``eye`` says). ``border``: ``"auto"`` detects blown-out edge rows/columns,
    ``"none"`` keeps all, or four fractions ``(top, bottom, left, right)`` of the eye
    image to cut away. ``square``: centre-crop one eye's view to a square; not applied to
    the ``full`` stereo frame, whose square middle would be half of each eye."""

    eye: Eye = "left"
    layout: str = "auto"
    border: str | tuple[float, float, float, float] = "auto"
    saturation: int = bounded(245, Range(0, 255), why="a grey level")
    blown_fraction: float = bounded(0.6, UNIT)
    max_border: float = bounded(0.35, Range(0.0, 0.5, hi_open=True), why="of each side")
    square: bool = True
    # 0: the crop is fixed for the run. N: found again every N frames, for a field whose
    # overexposed border moves (a recording then starts a new segment at each new size).
    recrop_every: int = bounded(0, Range(0, 100_000), why="frames; 0 keeps the crop for the run")

    def __post_init__(self) -> None:
        if self.eye not in EYES:
            raise ValueError(f"eye must be one of {', '.join(EYES)}, not {self.eye!r}")
        if self.layout not in LAYOUTS:
            raise ValueError(f"layout must be one of {', '.join(LAYOUTS)}, not {self.layout!r}")
        if isinstance(self.border, str):
            if self.border not in ("auto", "none"):
                raise ValueError(f"border must be 'auto', 'none' or four fractions, not {self.border!r}")
        else:
            fractions = tuple(float(v) for v in self.border)
            if len(fractions) != 4 or not all(0.0 <= v < 0.5 for v in fractions):
                raise ValueError(f"border fractions (top, bottom, left, right) must be four values "
                                 f"in [0, 0.5), not {self.border!r}")
            object.__setattr__(self, "border", fractions)


def resolve_layout(height: int, width: int, layout: str) -> tuple[str, str]:
    """``(layout, why)``: ``auto`` made concrete for a ``height`` × ``width`` frame."""
    if layout != "auto":
        return layout, "set in the config"
    if width >= STEREO_ASPECT * height:
        return "side-by-side", f"auto: {width}x{height} is about twice as wide as tall"
    return "mono", f"auto: {width}x{height} is not twice as wide as tall, so one eye per frame"


def eye_box(height: int, width: int, eye: Eye, layout: str = "side-by-side") -> Box:
    """The box of ``eye`` in a frame of concrete ``layout`` (``full`` or ``mono``: the
    whole frame)."""
    if eye == "full" or layout == "mono":
        return Box(0, 0, width, height)
    if layout == "side-by-side-half":
        layout = "side-by-side"
    if layout == "top-bottom":
        half = height // 2
        return Box(0, 0, width, half) if eye == "left" else Box(0, half, width, 2 * half)
    half = width // 2
    return Box(0, 0, half, height) if eye == "left" else Box(half, 0, 2 * half, height)


def detect_border(eye_image: np.ndarray, saturation: int = 245, blown_fraction: float = 0.6,
                  max_border: float = 0.35, step: int = 4) -> tuple[int, int, int, int]:
    """Rows/columns to cut at (top, bottom, left, right): the runs of edge lines in which
    at least ``blown_fraction`` of the pixels are at or above ``saturation``.

    ``eye_image``: ``(H, W, 3)`` or ``(H, W)`` uint8. Works on a subsampled grey copy.
    """
    grey = eye_image[::step, ::step]
    if grey.ndim == 3:
        grey = grey.max(axis=2)
    blown = grey >= saturation
    rows = blown.mean(axis=1) >= blown_fraction
    cols = blown.mean(axis=0) >= blown_fraction

    def run(flags: np.ndarray, limit: int) -> int:
        clear = np.flatnonzero(~flags[:limit])
        n = clear[0] if clear.size else limit
        return int(n)

    h, w = blown.shape
    top = run(rows, int(h * max_border))
    bottom = run(rows[::-1], int(h * max_border))
    left = run(cols, int(w * max_border))
    right = run(cols[::-1], int(w * max_border))
    # A small safety margin: the glare fades out over a few lines.
    return tuple(min(step * (n + 1) if n else 0, int(dim * max_border))
                 for n, dim in ((top, eye_image.shape[0]), (bottom, eye_image.shape[0]),
                                (left, eye_image.shape[1]), (right, eye_image.shape[1])))


def view_box(frame: np.ndarray, config: PreprocessConfig) -> Box:
    """The region of ``frame`` (``(H, W, 3) uint8``) that the engines see, in frame pixels."""
    h, w = frame.shape[:2]
    layout, _ = resolve_layout(h, w, config.layout)
    eye = eye_box(h, w, config.eye, layout)
    eh, ew = eye.height, eye.width
    if config.border == "none":
        top = bottom = left = right = 0
    elif config.border == "auto":
        top, bottom, left, right = detect_border(eye.slice(frame), config.saturation,
                                                 config.blown_fraction, config.max_border)
    else:
        ft, fb, fl, fr = config.border
        top, bottom, left, right = int(eh * ft), int(eh * fb), int(ew * fl), int(ew * fr)
    inner = Box(left, top, ew - right, eh - bottom)
    # Even sides: the recorders' 4:2:0 pixel formats need them.
    width, height = inner.width & ~1, inner.height & ~1
    if config.square and (config.eye != "full" or layout == "mono"):
        width = height = min(width, height)
    x0 = inner.x0 + (inner.width - width) // 2
    y0 = inner.y0 + (inner.height - height) // 2
    return Box(x0, y0, x0 + width, y0 + height).offset(eye.x0, eye.y0)


def snap_to_multiple(box: Box, size: tuple[int, int], max_trim: float = MAX_TRIM) -> Box:
    """``box`` trimmed about its centre so both sides are whole multiples of ``size``
    (``(height, width)``), when that costs at most ``max_trim`` of each side; otherwise
    ``box`` as it is (the engine input is then resized by a fraction: the whole view
    matters more than the resize's fast path)."""
    h, w = size
    width = box.width - box.width % w if box.width >= w else box.width
    height = box.height - box.height % h if box.height >= h else box.height
    if width < box.width * (1 - max_trim) or height < box.height * (1 - max_trim):
        return box
    x0, y0 = box.x0 + (box.width - width) // 2, box.y0 + (box.height - height) // 2
    return Box(x0, y0, x0 + width, y0 + height)


class Preprocessor:
    """Turns a decoded frame into the displayed view and the engine input.

    The returned engine input is a preallocated ``(1, H, W, 3) uint8`` buffer that is
    overwritten by the next call: the caller must use (or copy) it before calling again.
    The returned view is a slice of the input frame (no copy).

    The view is the whole chosen eye after the border crop. It is trimmed (centred) to
    a whole multiple of the engine input only when that costs ≤ 2 % of each axis:
    ``INTER_AREA`` by an integer factor takes OpenCV's fast path, about 3× cheaper than by
    a fraction (912 → 224 px: 4.5 ms, 896 → 224 px: 1.6 ms).

    The crop is found at the first frame and kept (module docstring); :meth:`redetect`
    (any thread) asks for a new one at the next frame.

    ``side-by-side-half``: the chosen eye is first stretched to twice its width into a
    buffer of this preprocessor (one resize per frame); the view and its box are then in
    that stretched eye's pixels, not the frame's, and the view is overwritten next call.
    """

    def __init__(self, config: PreprocessConfig, input_size: tuple[int, int]):
        self.config = config
        self.input_size = tuple(input_size)
        self._buffer = np.empty((1, *self.input_size, 3), dtype=np.uint8)
        self._box: Box | None = None
        self._shape: tuple[int, ...] | None = None
        self._redetect = False
        self._layout: tuple[str, str] | None = None
        self._count = 0

    @property
    def box(self) -> Box | None:
        return self._box

    def redetect(self) -> None:
        """Find the crop again at the next frame (the border glare moved, the user asked)."""
        self._redetect = True

    def describe(self) -> dict:
        """What the engines see, for the summary and the log: layout (and why), eye, view box."""
        layout, why = self._layout or (self.config.layout, "no frame yet")
        box = self._box
        return {"layout": layout, "layout_reason": why, "eye": "one eye" if layout == "mono" else self.config.eye,
                "frame": None if self._shape is None else f"{self._shape[1]}x{self._shape[0]}",
                "view": None if box is None else {"x": box.x0, "y": box.y0, "width": box.width, "height": box.height}}

    def _unsqueezed(self, frame: np.ndarray) -> np.ndarray:
        """A ``side-by-side-half`` frame's chosen eye at its true shape (``full``: both)."""
        h, w = frame.shape[:2]
        eye = eye_box(h, w, self.config.eye, "side-by-side-half")
        if getattr(self, "_stretch", None) is None or self._stretch.shape[:2] != (eye.height, 2 * eye.width):
            self._stretch = np.empty((eye.height, 2 * eye.width, 3), np.uint8)
        cv2.resize(eye.slice(frame), (2 * eye.width, eye.height), dst=self._stretch, interpolation=cv2.INTER_LINEAR)
        return self._stretch

    def view_of(self, frame: np.ndarray, stretch: dict) -> tuple[np.ndarray, Box]:
        """The view of ``frame`` at the crop in force, finding none: for the live display
        path, from its own thread (``stretch``: that caller's own buffer for a
        ``side-by-side-half`` eye). Before the first crop, or when the frame's size has
        changed and the crop is not found again yet, the whole eye."""
        shape = frame.shape
        if self.config.layout == "side-by-side-half":
            h, w = shape[:2]
            eye = eye_box(h, w, self.config.eye, "side-by-side-half")
            buffer = stretch.get("buffer")
            if buffer is None or buffer.shape[:2] != (eye.height, 2 * eye.width):
                buffer = stretch["buffer"] = np.empty((eye.height, 2 * eye.width, 3), np.uint8)
            cv2.resize(eye.slice(frame), (2 * eye.width, eye.height), dst=buffer, interpolation=cv2.INTER_LINEAR)
            frame = buffer
        box, known = self._box, self._shape
        if box is None or known != shape:
            # Found as the gate will find it (usually on this very frame): the display
            # does not jump, nor a recording split, when the gate's crop arrives.
            if stretch.get("shape") != shape:
                stretch["shape"], stretch["box"] = shape, self._find(frame, shape)[0]
            box = stretch["box"]
        return box.slice(frame), box

    def _find(self, frame: np.ndarray, shape: tuple[int, ...]) -> tuple[Box, tuple[str, str]]:
        """The crop of ``frame`` (already unsqueezed) whose original shape is ``shape``, and its layout."""
        layout = resolve_layout(shape[0], shape[1], self.config.layout)
        # a stretched eye is one eye: its geometry is a mono frame's
        config = self.config if layout[0] != "side-by-side-half" else \
            dataclasses.replace(self.config, layout="mono", square=self.config.square and self.config.eye != "full")
        return snap_to_multiple(view_box(frame, config), self.input_size), layout

    def __call__(self, frame: np.ndarray) -> tuple[np.ndarray, np.ndarray, Box]:
        """``frame``: ``(H, W, 3) uint8 RGB`` → ``(view, engine_input, box)``."""
        shape = frame.shape
        if self.config.layout == "side-by-side-half":
            frame = self._unsqueezed(frame)
        every = self.config.recrop_every
        self._count += 1
        if self._box is None or shape != self._shape or self._redetect or (every and self._count % every == 0):
            self._redetect = False
            self._box, self._layout = self._find(frame, shape)
            self._shape = shape
            d = self.describe()
            log.info("view: %s layout (%s), %s; %dx%d of the %s frame", d["layout"], d["layout_reason"],
                     "left eye" if d["eye"] == "left" else d["eye"], self._box.width, self._box.height, d["frame"])
        view = self._box.slice(frame)
        h, w = self.input_size
        cv2.resize(self._halved(view), (w, h), dst=self._buffer[0], interpolation=cv2.INTER_AREA)
        return view, self._buffer, self._box

    def _halved(self, view: np.ndarray) -> np.ndarray:
        """``view``, halved (``INTER_AREA`` by exactly 2: OpenCV's fast path) while it is at
        least 8× the engine input on both axes and even. A 4K eye (1888 px → 224) costs a
        third as much as one fractional resize (24 → 9 ms), and differs from it by at most
        one grey level. Only views taller than any 1080p frame (:data:`HALVE_ABOVE`) take
        this path, so every 1080p and smaller input stays bit-identical, whatever the engine size."""
        h, w = self.input_size
        while view.shape[0] > HALVE_ABOVE and view.shape[0] >= 8 * h and view.shape[1] >= 8 * w \
                and view.shape[0] % 2 == 0 and view.shape[1] % 2 == 0:
            half = (view.shape[0] // 2, view.shape[1] // 2, 3)
            buffers = self.__dict__.setdefault("_halves", {})
            if half not in buffers:
                buffers[half] = np.empty(half, np.uint8)
            cv2.resize(view, half[1::-1], dst=buffers[half], interpolation=cv2.INTER_AREA)
            view = buffers[half]
        return view
