"""The annotated AVI: PyAV, crash-safe (every written frame survives a kill).

Each output records which engines made it (model, classes, input size, file hash):
the AVI in its ``comment`` tag, the CSV in per-row hash columns, the JSON in full.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np

from nerveseg.engines.errors import UserError

from .common import check_writable

log = logging.getLogger(__name__)

CODECS = {"mjpeg": "yuvj420p", "ffv1": "bgr0", "h264": "yuv420p"}


class AviRecorder:
    """Writes ``(h, w, 3) uint8 RGB`` frames to an AVI with PyAV.

    ``mjpeg`` (default) is intra-only: every frame stands alone, so a recording cut
    short still decodes up to its last written frame. Its frames are JPEG-encoded by
    OpenCV's libjpeg-turbo (SIMD; about half the CPU time of FFmpeg's MJPEG encoder
    here, which matters on a 2-core machine) and muxed as ready packets; ``quality`` is
    the JPEG quality, 1-100. ``ffv1`` is lossless (for measuring codec loss), ``h264``
    small. The stream opens at the first frame, whose size fixes the recording's size;
    later frames of another size are refused (:class:`.recording.Recording` starts a new
    segment for them instead of stretching them).

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

        if self._container is None:
            self._open(*image.shape[:2])
        s = self._stream
        if not self.fits(image):
            raise ValueError(f"{self.path}: frame is {image.shape[1]}x{image.shape[0]}, "
                             f"the recording {s.width}x{s.height}")
        if image.shape[0] != s.height or image.shape[1] != s.width:  # an odd side: 4:2:0 needs even ones
            image = np.ascontiguousarray(image[:s.height, :s.width])
        if self.codec == "mjpeg":
            self._mux_jpeg(image)
        else:
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
            frame.pts = self.frames
            for packet in s.encode(frame):
                self._container.mux(packet)
        self.frames += 1

    def fits(self, image: np.ndarray) -> bool:
        """Whether ``image`` has this recording's size (any size before the first frame)."""
        if self._stream is None:
            return True
        h, w = image.shape[:2]
        return (h - h % 2, w - w % 2) == (self._stream.height, self._stream.width)

    def next_segment(self, number: int) -> "AviRecorder":
        """A recorder for segment ``number`` beside this file (``NAME.partN.avi``), same settings."""
        path = self.path.with_name(f"{self.path.stem}.part{number}{self.path.suffix}")
        return AviRecorder(path, self.fps, self.codec, self.quality, self.metadata)

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
