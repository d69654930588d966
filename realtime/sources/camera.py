"""A camera (a capture card, a UVC device) through OpenCV: by index (``0``) or device path
(``/dev/video2``), asked for a mode (size, frame rate, pixel format, capture API), the
mode it really gives read back and told when it is less; retried while missing, told as
"no signal".

OpenCV's capture backends are the well-kept route here: V4L2 on Linux, Media
Foundation/DirectShow on Windows, AVFoundation on macOS, each negotiating the mode with
the driver. The alternative, FFmpeg's device demuxers through PyAV, reads the same V4L2
devices but names modes per platform and cannot switch API; it stays an option for
network streams (:mod:`.stream`)."""

from __future__ import annotations

import logging
import re
import threading
from dataclasses import dataclass
from typing import Callable, Iterator

import cv2

from ..frames import Frame, now_ns
from .base import Source, to_rgb

log = logging.getLogger(__name__)

FORMATS = ("auto", "MJPG", "YUYV", "NV12", "H264")
APIS = {"auto": cv2.CAP_ANY, "v4l2": cv2.CAP_V4L2, "dshow": cv2.CAP_DSHOW, "msmf": cv2.CAP_MSMF,
        "avfoundation": cv2.CAP_AVFOUNDATION}


@dataclass(frozen=True)
class CameraMode:
    """What to ask the device for. ``size``: ``"WIDTHxHEIGHT"`` (None: the device's
    default, often 640x480 on a capture card: ask for the microscope's mode); ``fps``
    (None: default); ``format``: the pixel format (``MJPG`` carries 1080p60 over USB 2/3
    capture cards, ``YUYV``/``NV12`` are uncompressed); ``api``: OpenCV's capture API."""

    size: str | None = None
    fps: float | None = None
    format: str = "auto"
    api: str = "auto"

    def __post_init__(self) -> None:
        if self.size is not None and not re.fullmatch(r"[1-9]\d{1,4}x[1-9]\d{1,4}", str(self.size)):
            raise ValueError(f"camera size must be WIDTHxHEIGHT like 1920x1080, not {self.size!r}")
        if self.fps is not None and not (isinstance(self.fps, (int, float)) and 1 <= self.fps <= 1000):
            raise ValueError(f"camera fps must be a number in 1..1000, not {self.fps!r}")
        if self.format not in FORMATS:
            raise ValueError(f"camera format must be one of {', '.join(FORMATS)}, not {self.format!r}")
        if self.api not in APIS:
            raise ValueError(f"camera api must be one of {', '.join(APIS)}, not {self.api!r}")

    @property
    def wh(self) -> tuple[int, int] | None:
        return None if self.size is None else tuple(int(v) for v in self.size.split("x"))


def _fourcc(value: float) -> str:
    code = int(value)
    text = "".join(chr((code >> 8 * i) & 0xFF) for i in range(4))
    return text if text.isprintable() and text.strip() else "?"


def apply_mode(capture, mode: CameraMode) -> None:
    """Ask the opened device for ``mode``. The format first: many drivers only offer the
    larger sizes and higher rates in MJPG."""
    if mode.format != "auto":
        capture.set(cv2.CAP_PROP_FOURCC, cv2.VideoWriter_fourcc(*mode.format))
    if mode.wh is not None:
        capture.set(cv2.CAP_PROP_FRAME_WIDTH, mode.wh[0])
        capture.set(cv2.CAP_PROP_FRAME_HEIGHT, mode.wh[1])
    if mode.fps is not None:
        capture.set(cv2.CAP_PROP_FPS, mode.fps)


def mode_shortfall(mode: CameraMode, capture, frame_shape: tuple[int, ...]) -> tuple[dict, str | None]:
    """``(got, shortfall)``: what the device gives (size from the first frame itself,
    frame rate and format as the driver reports them) and, when it is less than asked,
    one line saying so (None when it is what was asked, or nothing was asked)."""
    h, w = frame_shape[:2]
    fps = float(capture.get(cv2.CAP_PROP_FPS) or 0.0)
    fmt = _fourcc(capture.get(cv2.CAP_PROP_FOURCC) or 0)
    got = {"size": f"{w}x{h}", "fps": round(fps, 2) or None, "format": fmt}
    short = []
    if mode.wh is not None and (w, h) != mode.wh:
        short.append(f"size {w}x{h} (asked {mode.size})")
    if mode.fps is not None and fps and fps < mode.fps - 0.5:
        short.append(f"{fps:g} fps (asked {mode.fps:g})")
    if mode.format != "auto" and fmt not in ("?", mode.format):
        short.append(f"format {fmt} (asked {mode.format})")
    return got, ("the camera gives " + ", ".join(short)) if short else None


class CameraSource(Source):
    """A camera by OpenCV device index or path. A camera that is missing, or stops
    delivering frames, raises, or returns empty frames, is reported as ``no signal`` and
    reopened with exponential back-off; the source never ends on its own.

    ``mode``: what to ask the device for; what it really gives is read back at each
    (re)open and, when less, said in one line: in the log, in the status line on screen
    and in the summary (:meth:`describe`). ``opener(index, api)`` returns a
    ``cv2.VideoCapture``-like object (tests pass a scripted device).
    """

    live = True

    def __init__(self, index: int | str, fps: float = 30.0, opener: Callable | None = None,
                 read_timeout: float = 1.0, backoff: tuple[float, float] = (0.25, 4.0),
                 max_failed_reads: int = 5, mode: CameraMode = CameraMode()):
        super().__init__()
        self.index = index
        self.name = f"camera:{index}"
        self.mode = mode
        self.fps = mode.fps or fps
        self._opener = opener or _open_cv_camera
        self.got: dict | None = None
        self.shortfall: str | None = None
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
            capture = self._call("open", self._opener, self.index, APIS[self.mode.api])
            if capture is not None and self._call("open", capture.isOpened):
                self._call("set mode", apply_mode, capture, self.mode)
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
                        self._read_back(capture, image.shape)
                        self.status.set("ok", self.shortfall or "")
                        delivered = True
                    yield Frame(index, t1, image, pts=None, stamps=(("decode", t0, t1),), connection=self.reconnects)
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

    def _read_back(self, capture, shape: tuple[int, ...]) -> None:
        got, shortfall = self._call("read mode", mode_shortfall, self.mode, capture, shape) or ({}, None)
        if shortfall and shortfall != self.shortfall:
            log.warning("%s: %s", self.name, shortfall)
        self.got, self.shortfall = got, shortfall
        if got.get("fps"):
            self.fps = got["fps"]

    def describe(self) -> dict:
        asked = {k: v for k, v in vars(self.mode).items() if v not in (None, "auto")}
        return {**super().describe(), "asked": asked, "got": self.got, "shortfall": self.shortfall}

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


def _open_cv_camera(index: int | str, api: int = cv2.CAP_ANY):
    # OpenCV warns on stderr at every failed open; the status line says it once instead.
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)
    return cv2.VideoCapture(index, api)
