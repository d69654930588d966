"""The original stream kept, the masks beside it: ``replay IN --out OUT.mkv``.

A recorded case replayed to an annotated AVI is decoded, drawn on and encoded again: at 4K
the encode is a large part of the work, and every pixel of the result has been through a
second lossy codec. This output does neither. ``OUT.mkv`` (Matroska) holds:

* **track 1, the input's own video packets, copied**: not decoded for the file, not
  re-encoded; a player shows exactly the recording that came in, and every pixel outside
  the overlay is the input's by construction;
* **track 2, the masks, lossless**: FFV1, 8-bit grey, one picture per frame the run
  processed, of the view the engines saw (the eye, borders cropped: the only part of the
  frame a mask can cover, so a 4K frame's mask is 1888x1888, not 3840x2160), in the
  pixels the run worked at (the input's, or ``source.max_height``'s): 255 where the
  segmenter found nerve, 0 elsewhere (a frame the gate did not call nerve: all 0). The
  track's ``box`` tag says where the view lies in the frame; each mask carries its
  frame's timestamp, so a script pairs them (docs/SOURCES.md);
* the engines that made it in the file's ``comment`` tag (model, classes, input size, file
  hash), as in the AVI.

The masks are written while the run goes (:class:`MaskTrackOp`, a tap of the overlay's
output, into a partial file beside ``OUT``); :func:`keep_stream` then copies the input's
packets and the masks' into ``OUT`` in time order: a remux, about as fast as the disk.
"""

from __future__ import annotations

import heapq
import json
import logging
import os
from fractions import Fraction
from pathlib import Path
from typing import Iterator

import numpy as np

from nerveseg.engines.errors import UserError

from ..frames import Rendered
from ..graph import Operator
from .common import check_writable

log = logging.getLogger(__name__)

#: the mask track's timestamps: milliseconds, Matroska's own unit
MASK_TIME_BASE = Fraction(1, 1000)
NERVE, BACKGROUND = 255, 0


def mask_picture(r: Rendered) -> np.ndarray:
    """The frame's mask as an ``(h, w) uint8`` picture of its view: 255 where the
    segmenter found nerve, 0 elsewhere."""
    box = r.seg.gate.box
    if r.seg.mask is None:
        return np.zeros((box.height, box.width), np.uint8)
    return np.where(r.seg.mask, NERVE, BACKGROUND).astype(np.uint8)


def box_tag(box, frame_shape: tuple[int, ...]) -> str:
    """The mask track's ``box`` tag: where its pictures lie in the frame."""
    return f"x0={box.x0} y0={box.y0} x1={box.x1} y1={box.y1} in a {frame_shape[1]}x{frame_shape[0]} frame"


class MaskTrackOp(Operator):
    """Writes each rendered frame's mask (:func:`mask_picture`) to an FFV1 grey stream in
    ``path`` (Matroska), stamped with the frame's time from the input's first frame. It
    needs no drawn frame (``draws = False``): the overlay is not drawn for it."""

    name = "mask_track"
    draws = False

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.frames = 0
        self.box: str | None = None  # box_tag of the first frame: every mask's place in its frame
        self._container = self._stream = None
        self._last_pts = -1

    def _open(self, height: int, width: int) -> None:
        import av

        self._container = av.open(str(self.path), "w", format="matroska")
        stream = self._container.add_stream("ffv1", rate=30)
        stream.width, stream.height, stream.pix_fmt = width, height, "gray"
        stream.codec_context.time_base = MASK_TIME_BASE
        self._stream = stream

    def process(self, r: Rendered) -> None:
        import av

        picture, box = mask_picture(r), box_tag(r.seg.gate.box, r.frame.image.shape)
        if self._container is None:
            self._open(*picture.shape)
            self.box = box
        if box != self.box:  # one file, one view: a mask elsewhere would be read in the wrong place
            raise ValueError(f"{self.path}: frame {r.index}'s view is {box}, the mask track's {self.box}")
        pts = round((r.frame.pts or 0.0) / MASK_TIME_BASE)
        pts = max(pts, self._last_pts + 1)  # strictly increasing, as the muxer needs
        frame = av.VideoFrame.from_ndarray(picture, format="gray")
        frame.pts, frame.time_base = pts, MASK_TIME_BASE
        for packet in self._stream.encode(frame):
            self._container.mux(packet)
        self._last_pts = pts
        self.frames += 1
        return None

    def teardown(self) -> None:
        if self._container is None:
            return
        try:
            for packet in self._stream.encode():
                self._container.mux(packet)
        finally:
            self._container.close()


def check_stream_input(spec: str) -> None:
    """Only a video file has a stream to keep: anything else is one line at start-up."""
    import av

    path = Path(spec)
    if not path.is_file():
        raise UserError(f"{spec}: --out .mkv keeps the input's video stream; give a video file, "
                        f"not a folder or a camera")
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise UserError(f"{spec}: no video stream to keep")
    except av.error.FFmpegError as exc:
        raise UserError(f"{spec}: not a readable video ({' '.join(str(exc).split())[:160]})") from None


def partial_path(out: Path) -> Path:
    """Where the masks are written during the run: beside ``out``, hidden."""
    return out.with_name(f".{out.stem}.masks.partial.mkv")


def keep_stream(video: str | Path, masks: Path, out: Path, metadata: dict, box: str = "") -> dict:
    """``out``: the video stream of ``video`` copied packet for packet, and the mask track
    of ``masks`` (shifted to the video's first frame), interleaved by time, with
    ``metadata`` as the file's tags; written beside ``out`` and renamed onto it whole.
    Returns what was copied (``video_packets``, ``mask_frames``, ``stopped``: why the
    video's copy ended early, if it did)."""
    import av

    check_writable(out)
    partial = out.with_name(f".{out.stem}.partial.mkv")
    copied = {"video_packets": 0, "mask_frames": 0, "stopped": None}
    try:
        with av.open(str(video)) as src, av.open(str(masks)) as mask_file, \
                av.open(str(partial), "w", format="matroska") as dst:
            vin, min_ = src.streams.video[0], mask_file.streams.video[0]
            vout = dst.add_stream_from_template(vin)
            mout = dst.add_stream_from_template(min_)
            for key, value in metadata.items():
                dst.metadata[key] = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
            mout.metadata["title"] = "nerve mask of the view (255 nerve, 0 elsewhere)"
            mout.metadata["box"] = box
            vout.metadata["title"] = "original video (copied, not re-encoded)"
            shift = _first_frame_time(vin)
            tracks = (_packets(src, vin, vout, 0, copied, "video_packets"),
                      _packets(mask_file, min_, mout, round(shift / min_.time_base), copied, "mask_frames"))
            for packet in heapq.merge(*tracks, key=lambda p: float((p.dts if p.dts is not None else p.pts)
                                                                      * p.time_base)):
                dst.mux(packet)
        os.replace(partial, out)
    finally:
        partial.unlink(missing_ok=True)
    return copied


def _first_frame_time(stream) -> Fraction:
    """When the stream's first frame is shown (its start time), in seconds: the masks'
    timestamps count from there."""
    if stream.start_time is None or stream.time_base is None:
        return Fraction(0)
    return stream.start_time * stream.time_base


def _packets(container, stream, out, shift: int, counts: dict, key: str) -> Iterator:
    """``stream``'s packets as ``out``'s, timestamps moved by ``shift`` (its time base);
    a demuxer that gives up ends the copy with the reason (every packet before it kept)."""
    import av

    demuxed = container.demux(stream)
    while True:
        try:
            packet = next(demuxed)
        except StopIteration:
            return
        except av.error.FFmpegError as exc:
            counts["stopped"] = f"{container.name}: stopped reading ({' '.join(str(exc).split())[:160]})"
            log.warning("%s", counts["stopped"])
            return
        if packet.size == 0 or (packet.dts is None and packet.pts is None):
            continue  # the flush packet: nothing to copy
        if shift:
            packet.pts = None if packet.pts is None else packet.pts + shift
            packet.dts = None if packet.dts is None else packet.dts + shift
        packet.stream = out
        counts[key] += 1
        yield packet
