"""Frame sources: video file (PyAV, in :mod:`.video_file`), image folder, camera (OpenCV
device index).

Each source checks its input when built (a missing or unreadable file is a
:class:`UserError` at start-up) and then yields :class:`Frame` records from
:meth:`frames`. Bad frames inside a good file are skipped and counted, never fatal:
everything decoded before and after them goes on down the pipeline.
"""

from __future__ import annotations

import collections
import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import cv2
import numpy as np

from .errors import UserError
from .frames import Frame, now_ns

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

    def wait(self, stop: threading.Event) -> None:
        now = now_ns()
        if self._next_ns is None or now - self._next_ns > self.period_ns:
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


class ImageFolderSource(Source):
    """Every image in a folder, in name order, as one frame each."""

    def __init__(self, path: str | Path, fps: float = 30.0, pace: bool = False):
        super().__init__()
        self.path = Path(path)
        self.name = str(self.path)
        self.fps = fps
        self.pace = pace
        if not self.path.is_dir():
            raise UserError(f"{self.path}: image folder not found")
        self.files = sorted(p for p in self.path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not self.files:
            raise UserError(f"{self.path}: no images in folder (looked for {', '.join(IMAGE_SUFFIXES)})")
        self.frame_count = len(self.files)

    def frames(self, stop: threading.Event) -> Iterator[Frame]:
        self.status.set("ok")
        pacer = Pacer(self.fps) if self.pace else None
        index = 0
        for file in self.files:
            if stop.is_set():
                break
            t0 = now_ns()
            bgr = cv2.imread(str(file), cv2.IMREAD_COLOR)
            if bgr is None:
                self.skipped += 1
                log.warning("%s: not a readable image, skipped", file)
                continue
            image = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
            decoded = now_ns()
            if pacer is not None:
                pacer.wait(stop)
            yield Frame(index, now_ns(), image, pts=index / self.fps, stamps=(("decode", t0, decoded),))
            index += 1
        self.status.set("ended", "end of image folder")


class CameraSource(Source):
    """A camera by OpenCV device index. A camera that is missing, or stops delivering
    frames, raises, or returns empty frames, is reported as ``no signal`` and reopened
    with exponential back-off; the source never ends on its own.

    ``opener(index)`` returns a ``cv2.VideoCapture``-like object (tests pass a fake).
    """

    live = True

    def __init__(self, index: int, fps: float = 30.0, opener: Callable | None = None,
                 read_timeout: float = 1.0, backoff: tuple[float, float] = (0.25, 4.0),
                 max_failed_reads: int = 5):
        super().__init__()
        self.index = index
        self.name = f"camera:{index}"
        self.fps = fps
        self._opener = opener or _open_cv_camera
        self.read_timeout = read_timeout
        self.backoff = backoff
        self.max_failed_reads = max_failed_reads
        self.reconnects = 0
        self.last_error: str | None = None

    def _call(self, what: str, call: Callable, *args):
        """A driver call at the capture boundary. Whatever a driver raises means no
        signal from this device, never the end of the pipeline: it is kept for the
        status line and the call answers None."""
        try:
            return call(*args)
        except Exception as exc:
            self.last_error = f"{what} failed: {' '.join(str(exc).split())[:120]}"
            log.debug("camera %s: %s", self.index, self.last_error)
            return None

    def _why(self) -> str:
        return f" ({self.last_error})" if self.last_error else ""

    def _open(self, stop: threading.Event):
        delay = self.backoff[0]
        while not stop.is_set():
            capture = self._call("open", self._opener, self.index)
            if capture is not None and self._call("open", capture.isOpened):
                return capture
            if capture is not None:
                self._call("release", capture.release)
            self.status.set("no signal", f"camera {self.index} not available{self._why()}; "
                                         f"retrying in {delay:.2f} s")
            stop.wait(delay)
            delay = min(delay * 2, self.backoff[1])
        return None

    def frames(self, stop: threading.Event) -> Iterator[Frame]:
        index = 0
        delay = self.backoff[0]
        while not stop.is_set():
            capture = self._open(stop)
            if capture is None:
                break
            delivered = False
            try:
                for image, t0, t1 in self._read_until_failure(capture, stop):
                    if not delivered:  # "ok" means frames arrive, not merely that it opened
                        self.status.set("ok")
                        delivered = True
                    yield Frame(index, t1, image, pts=None, stamps=(("decode", t0, t1),))
                    index += 1
            finally:
                self._call("release", capture.release)
            if stop.is_set():
                break
            self.reconnects += 1
            self.status.set("no signal", f"camera {self.index} stopped delivering frames{self._why()}; "
                                         f"reconnecting")
            # A device that opens but delivers nothing must not be reopened in a hot loop.
            delay = self.backoff[0] if delivered else min(delay * 2, self.backoff[1])
            if not delivered:
                stop.wait(delay)
        self.status.set("ended", "stopped")

    def _read_until_failure(self, capture, stop: threading.Event):
        failures = 0
        while not stop.is_set():
            t0 = now_ns()
            result = self._call("read", capture.read)
            t1 = now_ns()
            image = _to_rgb(result[1]) if isinstance(result, tuple) and len(result) == 2 and result[0] else None
            if image is None:
                failures += 1
                self.skipped += 1
                if failures >= self.max_failed_reads or (t1 - t0) / 1e9 > self.read_timeout:
                    return
                continue
            failures, self.last_error = 0, None
            yield image, t0, now_ns()


def _to_rgb(bgr) -> np.ndarray | None:
    """A driver's frame as ``(H, W, 3) uint8 RGB`` (from BGR, BGRA or grey); None for an
    empty or unusable one, which counts as a failed read."""
    if not isinstance(bgr, np.ndarray) or bgr.size == 0 or bgr.dtype != np.uint8:
        return None
    if bgr.ndim == 2:
        return cv2.cvtColor(bgr, cv2.COLOR_GRAY2RGB)
    if bgr.ndim == 3 and bgr.shape[2] in (3, 4):
        return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB if bgr.shape[2] == 3 else cv2.COLOR_BGRA2RGB)
    return None


def _open_cv_camera(index: int):
    # OpenCV warns on stderr at every failed open; the status line says it once instead.
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)
    return cv2.VideoCapture(index)


def open_source(spec: str | int, pace: bool | None = None) -> Source:
    """A source from a command-line spec: a camera index (``0``), a video file or an
    image folder. ``pace`` defaults to False for files (replay as fast as possible)."""
    text = str(spec)
    if text.isdigit():
        return CameraSource(int(text))
    path = Path(text)
    if path.is_dir():
        return ImageFolderSource(path, pace=bool(pace))
    from .video_file import VideoFileSource

    return VideoFileSource(path, pace=bool(pace))
