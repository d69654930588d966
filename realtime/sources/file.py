"""A video file as a frame source: PyAV (FFmpeg) decoding that survives damage.

Undecodable frames are skipped and counted, a demuxer that gives up ends the input
with the reason (``ended_early``), and a decoder that stops answering is cut off by a
deadline (:mod:`.stall`): a replay always ends, with everything that could be decoded.
"""

from __future__ import annotations

import collections
import heapq
import itertools
import logging
import math
import threading
from pathlib import Path
from typing import Iterator

import numpy as np

from nerveseg.engines.errors import UserError

from ..frames import Frame, now_ns
from ..priority import lower_this_thread
from ..stall import Stalled, with_deadline
from .base import Pacer, Source, reduced_size
from .rgb import RgbConverter, display_width, not_square

log = logging.getLogger(__name__)

#: decoded frames waiting for the consumer when a file is not read ahead
IN_STEP = 2
#: the most memory the frames read ahead may hold (1080p side by side: 41 frames)
READ_AHEAD_MB = 256
#: how far a decoder reading ahead is lowered (nice): the lowest priority. Ahead of its
#: clock it can wait; the picture and inference, which cannot, go first.
DECODER_NICE = 19


class VideoFileSource(Source):
    """A video file decoded with PyAV (FFmpeg), frame by frame in order.

    ``pace=True`` releases frames at the file's frame rate (a recorded video played as
    if it were live); otherwise frames come as fast as they decode. Decoding runs in a
    reader thread with a deadline (:mod:`.stall`): a decoder that gives nothing for
    ``stall_timeout`` seconds ends the input (``ended_early``) instead of hanging.

    Damage is counted, not fatal: ``skipped`` is the frames the file holds (its header's
    count, else its packets) that never came out of the decoder; ``concealed`` the
    frames FFmpeg decoded with errors hidden (kept: the picture is mostly right).
    ``Frame.pts`` is each frame's own time from the first frame, so a variable frame
    rate shows in the CSV; ``fps`` (for pacing and the recording) is the file's
    average rate, or the median spacing of its first frames when that is implausible.
    ``Frame.position`` is the frame's place in the file counting undecodable frames too
    (:class:`Positions`), so ``replay --gt`` scores each frame on its own annotation.

    Played live (``pace``) with ``read_ahead_ms``, the reader decodes up to that much of
    the file ahead of its clock (at most :data:`READ_AHEAD_MB` of frames) at the lowest
    priority: the picture and inference go first, and the frames read ahead carry the
    decoder through a stretch of the file that costs more than a frame's time to decode
    (docs/SOURCES.md, *Frames larger than the screen*). ``late`` in the summary counts the
    times the file fell behind its clock anyway. Frames taller than ``reduce_to``'s
    height are reduced in the reader thread, so those read ahead are held at that size.
    """

    def __init__(self, path: str | Path, pace: bool = False, decoder_threads: int = 0,
                 stall_timeout: float = 5.0, read_ahead_ms: int = 0):
        super().__init__()
        import av

        self.path = Path(path)
        self.name = str(self.path)
        self.pace = pace
        self.stall_timeout = stall_timeout
        self._decoder_threads = decoder_threads
        self.read_ahead_ms = read_ahead_ms if pace else 0
        self.max_height = 0  # reduce_to: frames taller are reduced as they are decoded
        self._converter: RgbConverter | None = None  # of the frames being read
        self.lead: dict | None = None  # read ahead: frames, MB, whether the decoder was lowered
        self._pacer: Pacer | None = None
        if not self.path.is_file():
            raise UserError(f"{self.path}: video file not found")
        try:
            with av.open(str(self.path)) as container:
                if not container.streams.video:
                    raise UserError(f"{self.path}: file has no video stream")
                stream = container.streams.video[0]
                self.frame_count = int(stream.frames or 0)
                self.sar = not_square(stream.sample_aspect_ratio)
                self.size = (stream.codec_context.height, display_width(stream.codec_context.width, self.sar))
                self.fps = _frame_rate(container, stream)
        except av.error.FFmpegError as exc:
            raise UserError(f"{self.path}: not a readable video ({_av_message(exc)})") from None
        self.ended_early: str | None = None
        self.concealed = 0
        self._packets = self._decoded_count = 0

    def describe(self) -> dict:
        described = {**super().describe(), "frame_count": self.frame_count, "concealed": self.concealed,
                     "height": self.size[0], "width": self.size[1], "ended_early": self.ended_early,
                     "deinterlaced": self._converter.deinterlaced if self._converter is not None else 0,
                     "sample_aspect_ratio": f"{self.sar.numerator}:{self.sar.denominator}" if self.sar else "1:1"}
        if self._pacer is not None:
            described["late"] = self._pacer.late
        if self.lead is not None:
            described["read_ahead"] = self.lead
        return described

    @property
    def reduced_from(self) -> tuple[int, int] | None:
        """The first reduced frame's ``(H, W)``; None: none was."""
        return self._converter.reduced_from if self._converter is not None else None

    def reduce_to(self, max_height: int) -> bool:
        """Frames reduced in the reader thread, as they are decoded: the frames read
        ahead are held at the size shown, and the reduction's time is the decoder's."""
        self.max_height = max_height
        return True

    def _depth(self) -> int:
        """How many decoded frames may wait: 2 in step; reading ahead, ``read_ahead_ms``
        of frames at the file's rate, no more than :data:`READ_AHEAD_MB` of them."""
        if not self.read_ahead_ms:
            return IN_STEP
        by_time = math.ceil(self.read_ahead_ms / 1000 * self.fps)
        by_memory = READ_AHEAD_MB * 2**20 // max(1, self._frame_bytes())
        return max(IN_STEP, min(by_time, by_memory))

    def _frame_bytes(self) -> int:
        """The memory of one decoded frame as it is held (reduced, where it is)."""
        h, w = reduced_size(*self.size, self.max_height)
        return h * w * 3

    def _decoded(self, halt: threading.Event) -> Iterator[tuple]:
        """``(image, time_s, t0_ns, t1_ns)`` per decoded frame, in the reader thread."""
        import av

        rgb = self._converter = RgbConverter(self.max_height, str(self.path), self.sar)
        if self.lead is not None:
            # Before the file opens, so FFmpeg's decoding threads, started from this
            # thread, are lowered with it (a new thread takes its creator's priority).
            self.lead["lowered"] = lower_this_thread(DECODER_NICE)
        with av.open(str(self.path)) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            stream.codec_context.thread_count = self._decoder_threads
            packets = container.demux(stream)
            positions = Positions()
            while not halt.is_set():
                try:
                    packet = next(packets)
                except StopIteration:
                    break
                except av.error.FFmpegError as exc:
                    self.ended_early = f"demux error: {_av_message(exc)}"
                    log.warning("%s: stopped reading early (%s)", self.path, self.ended_early)
                    break
                if packet.size > 0:  # the last, empty packet only flushes the decoder
                    self._packets += 1
                    positions.add(packet.pts if packet.pts is not None else packet.dts)
                yield from self._decode_packet(packet, rgb, positions)

    def _decode_packet(self, packet, rgb: "RgbConverter", positions: "Positions") -> Iterator[tuple]:
        import av

        t0 = now_ns()
        try:
            frames = packet.decode()
        except av.error.FFmpegError as exc:
            self.skipped += 1
            log.warning("%s: skipped an undecodable packet (%s)", self.path, _av_message(exc))
            return
        for frame in frames:
            if frame.is_corrupt:
                self.concealed += 1
                log.warning("%s: frame at %.3f s decoded with concealed errors (kept)", self.path, frame.time or 0)
            image = rgb(frame)
            self._decoded_count += 1
            t1 = now_ns()
            yield image, frame.time, t0, t1, positions.of(frame.pts)
            t0 = now_ns()

    @staticmethod
    def _primed(items: Iterator[tuple], count: int) -> Iterator[tuple]:
        """``items``, the first ``count`` of them read before the first is given: the
        decoder's lead at the start (a player's buffering before it plays)."""
        first = collections.deque(itertools.islice(items, count))
        yield from first
        del first
        yield from items

    def frames(self, stop: threading.Event) -> Iterator[Frame]:
        self.status.set("ok")
        pacer = self._pacer = Pacer(self.fps) if self.pace else None
        depth = self._depth()
        prime = depth // 2 if self.read_ahead_ms else 0
        if self.read_ahead_ms:
            self.lead = {"frames": depth, "ms": round(1000 * depth / self.fps),
                         "mb": round(depth * self._frame_bytes() / 2**20, 1), "lowered": False}
        index, first = 0, None
        try:
            for image, time_s, t0, t1, position in self._primed(
                    with_deadline(self._decoded, stop, self.stall_timeout, self.name, depth=depth - prime), prime):
                if pacer is not None:
                    pacer.wait(stop)
                first = time_s if first is None else first
                pts = index / self.fps if time_s is None or first is None else time_s - first
                yield Frame(index, now_ns(), image, pts=pts, stamps=(("decode", t0, t1),), position=position)
                index += 1
        except Stalled as exc:
            self.ended_early = f"decoding stalled ({exc})"
            log.warning("%s: stopped reading (%s)", self.path, self.ended_early)
        self._count_missing(stop.is_set())
        self.status.set("ended", self.ended_early or "end of video")

    def _count_missing(self, stopped: bool) -> None:
        """Frames the file holds that never decoded: an undecodable packet may also be
        one the demuxer dropped without a word, so count against what the file says."""
        if stopped or self.ended_early:
            return  # not read to the end: the rest was never asked for
        expected = self.frame_count or self._packets
        self.skipped = max(self.skipped, expected - self._decoded_count)


class Positions:
    """Each decoded frame's place in the file, undecodable frames counted.

    A decoder gives its frames in presentation order (B-frames reordered), and it can give
    a frame only after every packet of an earlier-shown frame was read. So when a frame
    with timestamp ``t`` comes out, the frames shown before it are exactly the packets read
    so far with a timestamp below ``t``, decodable or not: that count is its position. A
    min-heap keeps the packets not yet passed (each enters and leaves once). A packet
    without a timestamp makes positions unknown (``None``) from there on."""

    def __init__(self) -> None:
        self._waiting: list[int] = []
        self._before = 0
        self._known = True

    def add(self, stamp: int | None) -> None:
        if stamp is None:
            self._known = False
        elif self._known:
            heapq.heappush(self._waiting, stamp)

    def of(self, stamp: int | None) -> int | None:
        if not self._known or stamp is None:
            return None
        while self._waiting and self._waiting[0] < stamp:
            heapq.heappop(self._waiting)
            self._before += 1
        return self._before


def _frame_rate(container, stream, plausible: tuple[float, float] = (1.0, 240.0), probe: int = 64) -> float:
    """The file's frame rate: its average rate when plausible; else (a variable-rate
    file whose container reports its time base, 1000 fps, as the rate) the median
    spacing of its first ``probe`` frames; else 30."""
    import av

    rate = stream.average_rate or stream.guessed_rate
    if rate and plausible[0] <= float(rate) <= plausible[1]:
        return float(rate)
    try:
        times = sorted(float(p.pts * p.time_base) for p in itertools.islice(container.demux(stream), probe)
                       if p.pts is not None and p.size > 0)
    except av.error.FFmpegError:
        times = []  # damage near the start: the replay will say so; the rate is a guess
    steps = [b - a for a, b in zip(times, times[1:]) if b > a]
    fps = 1.0 / float(np.median(steps)) if steps else 0.0
    return fps if plausible[0] <= fps <= plausible[1] else 30.0


def _av_message(exc: Exception) -> str:
    text = getattr(exc, "strerror", None) or str(exc)
    return " ".join(str(text).split())

