"""What every frame source is: :class:`Source` (``frames(stop)`` yields :class:`Frame`
records, ``status`` tells the watchdog how it goes, ``describe()`` goes into the
summary), the :class:`Pacer` that plays a file at its frame rate, and the conversion of
a driver's frame to RGB.

Each source checks its input when built (a missing or unreadable file is a
:class:`UserError` at start-up) and then yields frames. Bad frames inside a good file
are skipped and counted, never fatal: everything decoded before and after them goes on
down the pipeline.
"""

from __future__ import annotations

import collections
import logging
import threading
from dataclasses import dataclass, field
from typing import Iterator

import cv2
import numpy as np


from ..frames import Frame, now_ns

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")


@dataclass
class SourceStatus:
    """What the source is doing, for the view and logs: ``state`` is one of
    ``starting``, ``ok``, ``no signal``, ``ended``, ``failed``. Written by the source's
    thread, read by others: read all three fields at once with :meth:`snapshot`."""

    state: str = "starting"
    message: str = ""
    since_ns: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)
    #: the last state changes, oldest first, for logs and tests: ``(state, since_ns)``
    history: collections.deque = field(default_factory=lambda: collections.deque(maxlen=64),
                                       repr=False, compare=False)

    def set(self, state: str, message: str = "") -> None:
        with self._lock:
            if state != self.state or message != self.message:
                self.state, self.message, self.since_ns = state, message, now_ns()
                if not self.history or self.history[-1][0] != state:
                    self.history.append((state, self.since_ns))

    def snapshot(self) -> tuple[str, str, int]:
        with self._lock:
            return self.state, self.message, self.since_ns


class Pacer:
    """Releases frames at ``fps``. After a stall longer than one frame (a pause, a slow
    consumer) it re-anchors on the present instead of rushing to catch up."""

    def __init__(self, fps: float):
        self.period_ns = int(1e9 / fps)
        self._next_ns: int | None = None
        self.late = 0  # times it fell over a period behind and re-anchored (slow decoder, pause)

    def wait(self, stop: threading.Event) -> None:
        now = now_ns()
        if self._next_ns is None or now - self._next_ns > self.period_ns:
            self.late += self._next_ns is not None
            self._next_ns = now
        elif self._next_ns > now:
            stop.wait((self._next_ns - now) / 1e9)
        self._next_ns += self.period_ns


class Source:
    """Base: ``frames(stop)`` yields :class:`Frame` until the input ends or ``stop`` is set."""

    name = "source"
    fps: float = 30.0
    live = False

    def __init__(self) -> None:
        self.status = SourceStatus()
        self.skipped = 0  # frames that could not be decoded or read

    def frames(self, stop: threading.Event) -> Iterator[Frame]:
        raise NotImplementedError

    def describe(self) -> dict:
        return {"source": self.name, "fps": self.fps, "skipped": self.skipped}

    def reduce_to(self, max_height: int) -> bool:
        """Asked by the pipeline (``source.max_height``): bring frames taller than
        ``max_height`` to it before handing them on. True when this source does so itself
        (where it is cheaper, or where it holds frames); False leaves it to the caller."""
        return False


def to_rgb(bgr) -> np.ndarray | None:
    """A driver's frame as ``(H, W, 3) uint8 RGB`` (from BGR, BGRA or grey); None for an
    empty or unusable one, which counts as a failed read."""
    if not isinstance(bgr, np.ndarray) or bgr.size == 0 or bgr.dtype != np.uint8:
        return None
    if bgr.ndim == 2:
        return cv2.cvtColor(bgr, cv2.COLOR_GRAY2RGB)
    if bgr.ndim == 3 and bgr.shape[2] in (3, 4):
        return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB if bgr.shape[2] == 3 else cv2.COLOR_BGRA2RGB)
    return None


def reduced_size(height: int, width: int, max_height: int) -> tuple[int, int]:
    """``(H, W)`` of a ``height`` × ``width`` frame brought to at most ``max_height`` rows,
    its shape kept (0: never reduced). A whole factor (4K to 1080: 2) divides both sides
    exactly; otherwise the width is rounded to an even number, so a side-by-side frame's
    eyes stay the same width."""
    if not max_height or height <= max_height:
        return height, width
    factor = height // max_height
    if height % max_height == 0 and width % factor == 0:
        return max_height, width // factor
    return max_height, max(2, 2 * round(width * max_height / height / 2))


def reduce(image: np.ndarray, max_height: int) -> np.ndarray:
    """``image`` brought to :func:`reduced_size` by area averaging (each new pixel the mean
    of the pixels it covers: no aliasing of the fine tissue texture; a whole factor of 2 is
    OpenCV's fast path); the image itself when it is not taller than ``max_height``."""
    h, w = image.shape[:2]
    new = reduced_size(h, w, max_height)
    if new == (h, w):
        return image
    return cv2.resize(image, (new[1], new[0]), interpolation=cv2.INTER_AREA)


def reduce_mask(mask: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A 0/1 annotation ``mask`` brought to ``size`` ``(H, W)`` the way :func:`reduce`
    brings its frame there: area averaging, a pixel is nerve where most of what it covers is."""
    if mask.shape[:2] == tuple(size):
        return mask
    small = cv2.resize(np.where(mask > 0, 255, 0).astype(np.uint8), (size[1], size[0]), interpolation=cv2.INTER_AREA)
    return (small >= 128).astype(np.uint8)
