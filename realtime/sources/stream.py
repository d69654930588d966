"""A network stream (RTSP, RTMP, HTTP, TCP, UDP, SRT) through PyAV/FFmpeg.

Opened with FFmpeg's low-latency options (no input buffering, a small probe), an open
and a read timeout, so a stream that stops is "no signal" within about a second and
``stop`` is never blocked for longer than the read timeout. A lost stream is reopened
with exponential back-off; the source never ends on its own. Frames after a reconnect
may have another size: the preprocessor finds its crop again and a recording starts a
new segment (:mod:`nerveseg.realtime.sinks.recording`), nothing is stretched.
"""

from __future__ import annotations

import logging
import re
import threading
from typing import Iterator

from ..frames import Frame, now_ns
from .base import Source
from .rgb import RgbConverter, not_square

log = logging.getLogger(__name__)

SCHEMES = ("rtsp", "rtsps", "rtmp", "rtmps", "http", "https", "tcp", "udp", "srt")

#: FFmpeg demuxer options: start on the first decodable frame, do not queue input
LOW_LATENCY = {"fflags": "nobuffer", "flags": "low_delay", "probesize": "32768", "analyzeduration": "200000"}


def url_scheme(spec: str) -> str | None:
    """The scheme of a URL-like ``spec`` (``rtsp`` of ``RTSP://cam/1``), lower case; None
    for anything else (a path, a device, ``C:\\video.mp4``)."""
    match = re.match(r"([A-Za-z][A-Za-z0-9+.-]*)://", spec)
    return match.group(1).lower() if match else None


def is_stream(spec: str) -> bool:
    return url_scheme(spec) in SCHEMES


def redact(url: str) -> str:
    """``url`` without a password (logs, the screen and the summary must not show it)."""
    scheme, sep, rest = url.partition("://")
    if sep and "@" in rest.split("/", 1)[0]:
        credentials, host = rest.split("@", 1)
        return f"{scheme}://{credentials.split(':', 1)[0]}:***@{host}"
    return url


class StreamSource(Source):
    """Frames from ``url`` as ``(H, W, 3) uint8 RGB``, newest-frame policy (live).

    ``timeout``: seconds for opening and for each read; ``backoff``: first and longest
    wait between reconnects; ``rtsp_transport``: ``tcp`` (default: no lost packets, no
    smeared frames on a busy network) or ``udp``."""

    live = True

    def __init__(self, url: str, timeout: float = 1.0, backoff: tuple[float, float] = (0.25, 4.0),
                 rtsp_transport: str = "tcp"):
        super().__init__()
        self.url = url
        self.name = redact(url)
        self.fps = 30.0  # until the stream says
        self.timeout = timeout
        self.backoff = backoff
        self.options = dict(LOW_LATENCY)
        if url.lower().startswith(("rtsp://", "rtsps://")):
            self.options["rtsp_transport"] = rtsp_transport
        self.reconnects = 0
        self.sizes: list[tuple[int, int]] = []  # (width, height) per connection, for the summary
        self.max_height = 0  # reduce_to: frames taller are reduced as they are converted
        self._converter: RgbConverter | None = None

    def describe(self) -> dict:
        return {**super().describe(), "reconnects": self.reconnects,
                "sizes": [f"{w}x{h}" for w, h in self.sizes],
                "deinterlaced": self._converter.deinterlaced if self._converter is not None else 0}

    @property
    def reduced_from(self) -> tuple[int, int] | None:
        """The first reduced frame's ``(H, W)``; None: none was."""
        return self._converter.reduced_from if self._converter is not None else None

    def reduce_to(self, max_height: int) -> bool:
        """Frames reduced as they are converted to RGB (a 4K stream's 4:2:0 frames in their
        planes: a quarter of the conversion's work)."""
        self.max_height = max_height
        return True

    def _open(self, stop: threading.Event):
        import av

        delay = self.backoff[0]
        while not stop.is_set():
            try:
                container = av.open(self.url, options=self.options, timeout=(self.timeout, self.timeout))
                stream = container.streams.video[0]
            except (av.FFmpegError, OSError, IndexError) as exc:
                why = "no video stream" if isinstance(exc, IndexError) else " ".join(str(exc).split())[:120]
                self.status.set("no signal", f"{self.name}: not available ({why}); retrying in {delay:.2f} s")
                stop.wait(delay)
                delay = min(delay * 2, self.backoff[1])
                continue
            stream.thread_type = "AUTO"
            if stream.average_rate:
                self.fps = float(stream.average_rate)
            return container, stream
        return None

    def frames(self, stop: threading.Event) -> Iterator[Frame]:
        import av

        index = 0
        rgb = self._converter = RgbConverter(self.max_height, self.name)
        while not stop.is_set():
            opened = self._open(stop)
            if opened is None:
                break
            container, stream = opened
            rgb.sar = not_square(stream.sample_aspect_ratio)  # this connection's: a new mode may bring another
            delivered, why = False, "stream ended"
            try:
                for packet in container.demux(stream):
                    if stop.is_set():
                        break
                    t0 = now_ns()
                    for decoded in packet.decode():
                        image = rgb(decoded)
                        t1 = now_ns()
                        if not delivered:
                            delivered = True
                            self.sizes.append((decoded.width, decoded.height))
                            self.status.set("ok")
                        yield Frame(index, t1, image, pts=decoded.time, stamps=(("decode", t0, t1),),
                                    connection=self.reconnects)
                        index += 1
            except (av.FFmpegError, OSError) as exc:  # a read timeout, a reset connection, bad data
                why = " ".join(str(exc).split())[:120]
            finally:
                container.close()
            if stop.is_set():
                break
            self.reconnects += 1
            self.status.set("no signal", f"{self.name}: {why}; reconnecting")
            if not delivered:
                stop.wait(self.backoff[0])
        self.status.set("ended", "stopped")
