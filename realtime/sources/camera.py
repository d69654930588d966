"""A camera by OpenCV device index: retried while missing, told as "no signal"."""

from __future__ import annotations

import logging
import threading
from typing import Callable, Iterator

import cv2

from ..frames import Frame, now_ns
from .base import Source, to_rgb

log = logging.getLogger(__name__)


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
            image = to_rgb(result[1]) if isinstance(result, tuple) and len(result) == 2 and result[0] else None
            if image is None:
                failures += 1
                self.skipped += 1
                if failures >= self.max_failed_reads or (t1 - t0) / 1e9 > self.read_timeout:
                    return
                continue
            failures, self.last_error = 0, None
            yield image, t0, now_ns()


def _open_cv_camera(index: int):
    # OpenCV warns on stderr at every failed open; the status line says it once instead.
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)
    return cv2.VideoCapture(index)
