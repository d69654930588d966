"""Sinks: the annotated AVI, the per-frame CSV log and its JSON summary, subscribers.

Each output records which engines made it (model, classes, input size, file hash):
the AVI in its ``comment`` tag, the CSV in per-row hash columns, the JSON in full.
"""

from __future__ import annotations

import csv
import json
import logging
import threading
from pathlib import Path
from typing import Callable

import numpy as np

from .errors import UserError
from .frames import Rendered, now_ns
from .graph import Operator
from .stats import LatencyStats, frame_row

log = logging.getLogger(__name__)

CODECS = {"mjpeg": "yuvj420p", "ffv1": "bgr0", "h264": "yuv420p"}


def check_writable(path: Path) -> None:
    """Fail at start-up, not after an hour of video, when ``path`` cannot be written."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "ab"):
            pass
    except OSError as exc:
        raise UserError(f"{path}: cannot write output ({exc.strerror or exc})") from None


class AviRecorder:
    """Writes ``(h, w, 3) uint8 RGB`` frames to an AVI with PyAV.

    ``mjpeg`` (default) is intra-only: every frame stands alone, so a recording cut
    short still decodes up to its last written frame. ``ffv1`` is lossless (for
    measuring codec loss). The stream opens at the first frame, whose size fixes the
    recording's size; later frames of another size are resized to it.
    """

    def __init__(self, path: str | Path, fps: float, codec: str = "mjpeg", quality: int = 3,
                 metadata: dict | None = None):
        if codec not in CODECS:
            raise UserError(f"{path}: unknown codec {codec!r}; choose one of {', '.join(CODECS)}")
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

        self._container = av.open(str(self.path), "w", format="avi")
        for key, value in self.metadata.items():
            self._container.metadata[key] = value if isinstance(value, str) else json.dumps(value)
        rate = Fraction(self.fps).limit_denominator(1001)
        stream = self._container.add_stream(self.codec, rate=rate)
        stream.width, stream.height = width - width % 2, height - height % 2
        stream.pix_fmt = CODECS[self.codec]
        if self.codec == "mjpeg":
            stream.codec_context.qmin = stream.codec_context.qmax = self.quality
        stream.codec_context.time_base = 1 / rate
        self._stream = stream

    def write(self, image: np.ndarray) -> None:
        import av
        import cv2

        if self._container is None:
            self._open(*image.shape[:2])
        s = self._stream
        if image.shape[0] != s.height or image.shape[1] != s.width:
            image = cv2.resize(image, (s.width, s.height), interpolation=cv2.INTER_AREA)
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
        frame.pts = self.frames
        for packet in s.encode(frame):
            self._container.mux(packet)
        self.frames += 1

    def close(self) -> None:
        if self._container is None:
            return
        try:
            for packet in self._stream.encode():
                self._container.mux(packet)
        finally:
            self._container.close()
            self._container = None


class RecorderOp(Operator):
    """Encodes each rendered frame into the AVI; passes the frame on, stamped ``encode``."""

    name = "record"

    def __init__(self, recorder: AviRecorder):
        self.recorder = recorder

    def process(self, r: Rendered) -> Rendered:
        t0 = now_ns()
        self.recorder.write(r.image)
        return Rendered(r.seg, r.image, r.panel, r.stamps + (("encode", t0, now_ns()),), r.fps, r.extra)

    def teardown(self) -> None:
        self.recorder.close()


class LogOp(Operator):
    """The per-frame CSV, the latency statistics and, at the end, the JSON summary."""

    name = "log"

    def __init__(self, csv_path: Path | None, provenance: dict, t0_ns: int | None = None):
        self.csv_path = csv_path
        self.provenance = provenance
        self.stats = LatencyStats()
        self.t0_ns = t0_ns
        self._file = None
        self._writer = None
        self._hashes = {f"{k}_sha256": v["sha256"][:12] for k, v in provenance.items() if "sha256" in v}
        if csv_path is not None:
            check_writable(csv_path)

    def setup(self) -> None:
        if self.csv_path is not None:
            self._file = open(self.csv_path, "w", newline="")

    def process(self, r: Rendered) -> Rendered:
        if self.t0_ns is None:
            self.t0_ns = r.frame.captured_ns
        row = frame_row(r, self.t0_ns, now_ns())
        self.stats.add(row)
        if self._file is not None:
            full = {**row, **self._hashes}
            if self._writer is None:
                self._writer = csv.DictWriter(self._file, fieldnames=list(full))
                self._writer.writeheader()
            self._writer.writerow(full)
            # A log that survives a crash is worth a syscall per frame.
            self._file.flush()
        return r

    def teardown(self) -> None:
        if self._file is not None:
            self._file.close()


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
