"""Decoded PyAV frames to RGB arrays, reduced as they are converted (``source.max_height``)
deinterlaced where the decoder says a frame is interlaced (:func:`bob`), and brought to
square pixels where the stream's are not (:func:`display_width`).

One :class:`RgbConverter` per input: ``frame.to_ndarray(format=...)`` builds a new
converter per frame, and since PyAV 17 each of those starts and ends its own thread pool
(3-4 threads per frame, ~1.5 ms on a 64x128 frame): thread churn in a long run, and the
thread count never settles.
"""

from __future__ import annotations

import logging
from fractions import Fraction

import cv2
import numpy as np

from .base import reduce, reduced_size

log = logging.getLogger(__name__)


class RgbConverter:
    """``converter(frame)``: a decoded PyAV video frame as ``(H, W, 3) uint8 RGB``, reduced
    to ``max_height`` rows when it is taller. A 4:2:0 frame reduced by a whole factor is
    reduced in its own planes, before the colour conversion (:func:`reduce_420`: a quarter
    of the pixels to convert, 2 ms of CPU for a 4K frame against 7-8 converting it whole
    and reducing the RGB); any other by :func:`~.base.reduce` after it. ``reduced_from``:
    the first reduced frame's ``(H, W)`` (None: none was); ``name`` is for the log line.

    A frame the decoder marks interlaced (a 1080i capture card or recorder, an SDI
    encoder's stream) holds two fields half a frame period apart: anything that moves is
    combed, line by line. Such a frame is shown as its top field, the lines between
    interpolated (:func:`bob`), before it is reduced; ``deinterlaced`` counts them.

    ``sar``: the stream's sample aspect ratio. Pixels that are not square (HDV's 1440x1080
    shown as 1920x1080, anamorphic PAL) are widened to square ones as they are converted:
    the layout's side-by-side test, the engines and the overlay all see the picture's shape,
    not a squeezed one."""

    def __init__(self, max_height: int = 0, name: str = "source", sar: Fraction | None = None):
        from av.video.reformatter import VideoReformatter

        self.max_height, self.name = max_height, name
        self.sar = not_square(sar)
        self.reduced_from: tuple[int, int] | None = None
        self.deinterlaced = 0
        self._rgb = VideoReformatter()
        self._told_sar = False

    def __call__(self, frame) -> np.ndarray:
        if frame.interlaced_frame:
            return self._deinterlaced(frame)
        if self.sar is not None:
            return self._widened(frame)
        if not self.max_height or frame.height <= self.max_height:
            return self._rgb.reformat(frame, format="rgb24").to_ndarray()
        small = reduce_420(frame, self.max_height)
        image = (self._rgb.reformat(small, format="rgb24").to_ndarray() if small is not None
                 else reduce(self._rgb.reformat(frame, format="rgb24").to_ndarray(), self.max_height))
        self._note_reduced(frame, image, ", in their 4:2:0 planes" if small is not None else "")
        return image

    def _note_reduced(self, frame, image: np.ndarray, how: str = "") -> None:
        """Remember (``reduced_from``: the size as shown, square pixels) and tell once that
        frames are reduced."""
        if self.reduced_from is None:
            self.reduced_from = (frame.height, display_width(frame.width, self.sar))
            log.info("%s: %dx%d frames reduced to %dx%d as they are decoded (source.max_height %d%s)", self.name,
                     self.reduced_from[1], frame.height, image.shape[1], image.shape[0], self.max_height, how)

    def _target(self, frame) -> tuple[int, int]:
        """``(H, W)`` of the converted frame: square pixels, then ``max_height``."""
        w = display_width(frame.width, self.sar)
        if w != frame.width and not self._told_sar:
            self._told_sar = True
            log.info("%s: pixels not square (sample aspect ratio %s): %dx%d frames shown as %dx%d", self.name,
                     f"{self.sar.numerator}:{self.sar.denominator}", frame.width, frame.height, w, frame.height)
        return reduced_size(frame.height, w, self.max_height)

    def _widened(self, frame) -> np.ndarray:
        rh, rw = self._target(frame)
        image = _resized(self._rgb.reformat(frame, format="rgb24").to_ndarray(), rh, rw)
        if rh != frame.height:
            self._note_reduced(frame, image)
        return image

    def _deinterlaced(self, frame) -> np.ndarray:
        h, w = frame.height, frame.width
        top = top_field(frame)  # the field in its own planes: each field's own chroma
        field = (self._rgb.reformat(top, format="rgb24").to_ndarray() if top is not None
                 else self._rgb.reformat(frame, format="rgb24").to_ndarray()[0::2])
        rh, rw = self._target(frame)
        # reduced to the field's rows or fewer: straight from the field; else the frame rebuilt first
        image = _resized(field if rh <= field.shape[0] else bob(field, h), rh, rw)
        if not self.deinterlaced:
            log.info("%s: interlaced %dx%d frames: the top field kept, the lines between interpolated%s", self.name,
                     w, h, "" if top is not None else f" (its {frame.format.name} converted whole: colour may fringe)")
        self.deinterlaced += 1
        if rh != h:
            self._note_reduced(frame, image, ", from their top field")
        return image


def not_square(sar) -> Fraction | None:
    """A stream's sample aspect ratio where its pixels are not square; None where they are
    or it is unknown (0/1, absent, or beyond any real camera's: 1:4 to 4:1)."""
    if not sar or not 0.25 <= float(sar) <= 4 or sar == 1:
        return None
    return Fraction(sar.numerator, sar.denominator)


def display_width(width: int, sar: Fraction | None) -> int:
    """A ``width`` of pixels ``sar`` wide as square pixels (even, as every size here)."""
    if not sar or sar == 1:
        return width
    return max(2, 2 * round(width * sar / 2))


def _resized(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """``image`` at ``height`` x ``width``: area averaging where it shrinks both ways (no
    aliasing), linear interpolation where it grows either way; as it is when it fits."""
    h, w = image.shape[:2]
    if (h, w) == (height, width):
        return image
    shrinks = height <= h and width <= w
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA if shrinks else cv2.INTER_LINEAR)


#: planar formats whose top field is taken in their own planes (every plane's even rows)
FIELD_FORMATS = ("yuv420p", "yuvj420p", "yuv422p", "yuvj422p", "yuv444p", "yuvj444p")


def top_field(frame):
    """The top field of an interlaced planar 8-bit YUV PyAV ``frame`` (its even rows, and
    each chroma plane's even rows: in interlaced 4:2:0 the chroma lines alternate between
    the fields too) as a new frame of half the height; None for any other format, or a
    height whose field 4:2:0 cannot hold, for the caller to take the RGB's even rows."""
    import av

    name, h, w = frame.format.name, frame.height, frame.width
    if name not in FIELD_FORMATS or h % 4:
        return None
    field = av.VideoFrame(w, h // 2, name)
    for src, dst in zip(frame.planes, field.planes):
        rows = np.frombuffer(src, np.uint8).reshape(-1, src.line_size)
        out = np.frombuffer(dst, np.uint8).reshape(-1, dst.line_size)
        height, width = dst.height, dst.width
        out[:height, :width] = rows[0:2 * height:2, :width]
    field.colorspace, field.color_range = frame.colorspace, frame.color_range
    return field


def bob(field: np.ndarray, height: int) -> np.ndarray:
    """A frame of ``height`` rows from one ``field`` (its rows on the frame's even lines):
    each odd line the mean of the lines above and below it, the last one a copy of the
    line above. One instant, no combing; the vertical detail of one field."""
    out = np.empty((height, *field.shape[1:]), np.uint8)
    even = out[0::2]
    even[:] = field[:len(even)]
    odd = out[1::2]
    inner = min(len(odd), len(even) - 1)
    odd[:inner] = ((even[:inner].astype(np.uint16) + even[1:inner + 1] + 1) >> 1).astype(np.uint8)
    odd[inner:] = even[inner:len(odd)]
    return out


def reduce_420(frame, max_height: int):
    """A planar 4:2:0 PyAV ``frame`` brought to :func:`~.base.reduced_size` by area
    averaging each plane (luma and both chroma planes by the same whole factor), as a new
    frame with the same colour description; None where that is not exact (another pixel
    format, no whole factor, or a reduced size that 4:2:0 cannot hold), for the caller to
    reduce after the conversion.

    Against converting first and reducing the RGB: the same picture within a grey level on
    average (chroma is averaged before it is upsampled, so a sharp colour edge may differ
    more), at a quarter of the conversion's pixels."""
    import av

    if frame.format.name not in ("yuv420p", "yuvj420p"):
        return None
    h, w = frame.height, frame.width
    rh, rw = reduced_size(h, w, max_height)
    factor = h // rh
    if (rh * factor, rw * factor) != (h, w) or rh % 2 or rw % 2:
        return None
    small = av.VideoFrame(rw, rh, frame.format.name)
    for i, (src, dst) in enumerate(zip(frame.planes, small.planes)):
        ph, pw = (h, w) if i == 0 else (h // 2, w // 2)
        plane = np.frombuffer(src, np.uint8).reshape(-1, src.line_size)[:ph, :pw]
        out = np.frombuffer(dst, np.uint8).reshape(-1, dst.line_size)
        out[:ph // factor, :pw // factor] = cv2.resize(plane, (pw // factor, ph // factor),
                                                        interpolation=cv2.INTER_AREA)
    small.colorspace, small.color_range = frame.colorspace, frame.color_range
    return small
