"""Sinks: the annotated AVI (a recording that can start and stop while running) and
subscribers. The per-frame CSV log and the statistics live in :mod:`.frame_log`.

Each output records which engines made it (model, classes, input size, file hash):
the AVI in its ``comment`` tag, the CSV in per-row hash columns, the JSON in full.
"""

from __future__ import annotations

import contextlib
import json
import logging
import queue
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import numpy as np

from nerveseg.engines import outputs

from .errors import UserError
from .events import Notice
from .frames import Rendered, now_ns
from .graph import Operator
from .stats import frame_row

if TYPE_CHECKING:
    from .frame_log import CsvLog

log = logging.getLogger(__name__)

CODECS = {"mjpeg": "yuvj420p", "ffv1": "bgr0", "h264": "yuv420p"}


def check_writable(path: Path) -> None:
    """Fail at start-up, not after an hour of video, when ``path`` cannot be written, is an
    input of the run, or exists (without ``--exist-ok``): see :mod:`nerveseg.engines.outputs`."""
    outputs.claim(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        existed = path.exists()
        with open(path, "ab"):
            pass
        if not existed:  # a run refused later at start-up must not leave an empty "recording"
            path.unlink()
    except OSError as exc:
        raise UserError(f"{path}: cannot write output ({exc.strerror or exc})") from None


class AviRecorder:
    """Writes ``(h, w, 3) uint8 RGB`` frames to an AVI with PyAV.

    ``mjpeg`` (default) is intra-only: every frame stands alone, so a recording cut
    short still decodes up to its last written frame. Its frames are JPEG-encoded by
    OpenCV's libjpeg-turbo (SIMD; about half the CPU time of FFmpeg's MJPEG encoder
    here, which matters on a 2-core machine) and muxed as ready packets; ``quality`` is
    the JPEG quality, 1-100. ``ffv1`` is lossless (for measuring codec loss), ``h264``
    small. The stream opens at the first frame, whose size fixes the recording's size;
    later frames of another size are resized to it.

    Crash-safe: each packet is handed to the operating system as it is muxed (FFmpeg's
    ``flush_packets``), so a process killed mid-recording leaves every written frame in
    the file. Only what ``close`` writes is then missing (the ``idx1`` index and the
    header's sizes): FFmpeg-based players read such a file by scanning it, and
    ``nerveseg repair`` rebuilds the index for the others (docs/RELIABILITY.md).
    """

    def __init__(self, path: str | Path, fps: float, codec: str = "mjpeg", quality: int = 90,
                 metadata: dict | None = None):
        if codec not in CODECS:
            raise UserError(f"{path}: unknown codec {codec!r}; choose one of {', '.join(CODECS)}")
        if not 1 <= quality <= 100:
            raise UserError(f"{path}: JPEG quality must be within 1..100, not {quality}")
        self.path = Path(path)
        self.fps, self.codec, self.quality = fps, codec, quality
        self.metadata = metadata or {}
        self.frames = 0
        check_writable(self.path)
        self._container = None
        self._stream = None

    def _open(self, height: int, width: int) -> None:
        import av
        from fractions import Fraction

        # One write() per frame: FFmpeg's 32 KiB buffer would otherwise hold the last
        # frames back from the file, and a killed process would lose them.
        self._container = av.open(str(self.path), "w", format="avi",
                                  container_options={"flush_packets": "1"})
        for key, value in self.metadata.items():
            self._container.metadata[key] = value if isinstance(value, str) else json.dumps(value)
        rate = Fraction(self.fps).limit_denominator(1001)
        # x264 holds ~40 frames in its look-ahead by default: a crash would lose them all.
        options = {"tune": "zerolatency"} if self.codec == "h264" else {}
        stream = self._container.add_stream(self.codec, rate=rate, options=options)
        stream.width, stream.height = width - width % 2, height - height % 2
        stream.pix_fmt = CODECS[self.codec]
        stream.codec_context.time_base = 1 / rate
        self._stream = stream
        self._time_base = 1 / rate

    def write(self, image: np.ndarray) -> None:
        import av
        import cv2

        if self._container is None:
            self._open(*image.shape[:2])
        s = self._stream
        if image.shape[0] != s.height or image.shape[1] != s.width:
            image = cv2.resize(image, (s.width, s.height), interpolation=cv2.INTER_AREA)
        if self.codec == "mjpeg":
            self._mux_jpeg(image)
        else:
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
            frame.pts = self.frames
            for packet in s.encode(frame):
                self._container.mux(packet)
        self.frames += 1

    def _mux_jpeg(self, image: np.ndarray) -> None:
        import av
        import cv2

        ok, data = cv2.imencode(".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR),
                                [cv2.IMWRITE_JPEG_QUALITY, self.quality])
        if not ok:
            raise RuntimeError(f"{self.path}: JPEG encoding failed for frame {self.frames}")
        packet = av.Packet(data.tobytes())
        packet.stream = self._stream
        packet.pts = packet.dts = self.frames
        packet.time_base = self._time_base
        packet.is_keyframe = True
        self._container.mux(packet)

    def close(self) -> None:
        if self._container is None:
            return
        try:
            if self.codec != "mjpeg":  # mjpeg packets are muxed ready-made: no encoder to flush
                for packet in self._stream.encode():
                    self._container.mux(packet)
        finally:
            self._container.close()
            self._container = None


class Recording:
    """One recording: the annotated AVI and, when ``csv`` is given, its per-frame CSV
    (one row per recorded frame, ``capture_s`` counted from the recording's first frame)."""

    def __init__(self, avi: AviRecorder, csv_log: CsvLog | None = None):
        self.avi, self.csv = avi, csv_log
        self._t0_ns: int | None = None
        if csv_log is not None:
            csv_log.open()

    @property
    def path(self) -> Path:
        return self.avi.path

    @property
    def frames(self) -> int:
        return self.avi.frames

    def write(self, r: Rendered) -> Rendered:
        t0 = now_ns()
        self.avi.write(r.image)
        r = Rendered(r.seg, r.image, r.panel, r.stamps + (("encode", t0, now_ns()),), r.fps, r.extra)
        if self.csv is not None:
            if self._t0_ns is None:
                self._t0_ns = r.frame.captured_ns
            self.csv.write(frame_row(r, self._t0_ns, now_ns()))
        return r

    def close(self) -> None:
        try:
            self.avi.close()
        finally:
            if self.csv is not None:
                self.csv.close()


class RecorderOp(Operator):
    """Writes each rendered frame into the current :class:`Recording`, if any, and
    passes it on (stamped ``encode`` when written).

    Recordings may be started and stopped while running (:meth:`start`, :meth:`stop`,
    from any thread). The files are opened, written and closed in this operator's
    thread only: a command takes effect at the next frame, or within ``idle_s`` when
    no frames come. What happened is told to ``notices`` (started, saved, failed); a
    recording that fails (disk full, unwritable path) is closed and told, and the
    pipeline runs on."""

    name = "record"
    idle_s = 0.1

    def __init__(self, recording: Recording | None = None,
                 notices: Callable[[Notice], None] | None = None):
        self.recording = recording
        self.notices = notices or (lambda notice: None)
        self.frames = 0  # written, over every recording
        self._commands: queue.SimpleQueue = queue.SimpleQueue()

    @property
    def recorder(self) -> AviRecorder | None:
        return self.recording.avi if self.recording is not None else None

    def start(self, make: Callable[[], Recording], path: str | None = None) -> None:
        """Close any current recording and start the one ``make()`` builds (in this
        operator's thread; a :class:`UserError` or ``OSError`` from it is told, about
        ``path``)."""
        self._commands.put((make, path))

    def stop(self) -> None:
        self._commands.put((None, None))

    def _apply(self) -> None:
        while not self._commands.empty():
            make, path = self._commands.get()
            self._close()
            if make is None:
                continue
            try:
                self.recording = make()
            except (UserError, OSError) as exc:
                self.notices(Notice("error", f"recording not started: {error_line(exc)}", path))
            else:
                self.notices(Notice("recording", f"recording to {self.recording.path}",
                                    str(self.recording.path)))

    def _close(self, failure: BaseException | None = None) -> None:
        """Close the current recording and tell: saved, or (``failure``) why it stopped."""
        recording, self.recording = self.recording, None
        if recording is None:
            return
        path, problem = recording.path, failure
        try:
            recording.close()
        except (OSError, ValueError) as exc:
            problem = problem or exc
        if recording.frames == 0:  # a header without a frame (a full disk at once) plays nowhere
            with contextlib.suppress(OSError):
                Path(path).unlink(missing_ok=True)
        if problem is None and recording.frames == 0:  # the AVI opens at its first frame
            self.notices(Notice("empty", f"{path}: not written (no frame arrived)", str(path)))
        elif problem is None:
            self.notices(Notice("saved", f"saved {path} ({recording.frames} frames)", str(path), recording.frames))
        else:
            self.notices(Notice("error", f"{path}: recording stopped after {recording.frames} frames "
                                         f"({error_line(problem)})", str(path), recording.frames))

    def process(self, r: Rendered) -> Rendered:
        self._apply()
        if self.recording is None:
            return r
        try:
            r = self.recording.write(r)
        except (OSError, ValueError) as exc:
            self._close(failure=exc)  # what was written stays readable (intra-only codec)
            return r
        self.frames += 1
        return r

    def on_idle(self) -> None:
        self._apply()

    def teardown(self) -> None:
        self._apply()
        self._close()


def error_line(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.filename is not None:
        return f"{exc.filename}: {exc.strerror or exc}"
    return " ".join(str(exc).split())


class SubscriberOp(Operator):
    """Calls each subscriber with every rendered frame (the live view subscribes here).
    A subscriber that raises is logged and counted, never allowed to stop the pipeline."""

    name = "subscribers"

    def __init__(self) -> None:
        self._subscribers: list[Callable[[Rendered], None]] = []
        self._lock = threading.Lock()
        self.failures = 0

    def subscribe(self, callback: Callable[[Rendered], None]) -> None:
        with self._lock:
            self._subscribers.append(callback)

    def process(self, r: Rendered) -> None:
        with self._lock:
            subscribers = list(self._subscribers)
        for callback in subscribers:
            try:
                callback(r)
            except Exception as exc:
                self.failures += 1
                log.warning("subscriber %r failed on frame %d: %s", callback, r.index, exc)
        return None
