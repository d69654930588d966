"""Small real video files written with PyAV, for replay tests."""

from __future__ import annotations

from pathlib import Path

import av
import cv2
import numpy as np


def stereo_frame(i: int, height: int = 240, width: int = 640, nerve: bool = True) -> np.ndarray:
    """``(H, W, 3) uint8`` side-by-side frame: grey tissue, a white glare band at the left
    eye's outer edge and, when ``nerve``, a bright horizontal band (channel mean > 200)
    whose row moves with ``i`` (see :func:`band_row`). Non-nerve frames are dark (the tiny gate says
    opening_wound)."""
    frame = np.full((height, width, 3), 150 if nerve else 60, np.uint8)
    frame[:, : width // 16] = 255  # glare band at the left eye's outer edge
    if nerve:
        row = band_row(i, height)
        frame[row:row + 16, :] = 235
    return frame


def band_row(i: int, height: int = 240) -> int:
    """First row of frame ``i``'s nerve band (16 rows tall)."""
    return height // 3 + (i % 40)


def write_video(path: Path, frames: int = 24, fps: int = 24, nerve_every: int = 2,
                height: int = 240, width: int = 640, codec: str = "mpeg4") -> Path:
    """An MP4/AVI of ``frames`` frames; frame i is nerve when ``i % nerve_every == 0``."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height = width, height
        stream.pix_fmt = "yuvj420p" if codec == "mjpeg" else "yuv420p"
        for i in range(frames):
            image = stereo_frame(i, height, width, nerve=(i % nerve_every == 0))
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def scribble(src: Path, dst: Path, at=(0.3, 0.5, 0.7), length: int = 2000) -> Path:
    """``src`` with ``length`` bytes overwritten at each fraction ``at`` of the file, as ``dst``."""
    data = bytearray(src.read_bytes())
    for where in at:
        i = int(len(data) * where)
        data[i:i + length] = bytes((7 * k) % 251 for k in range(length))
    dst.write_bytes(bytes(data))
    return dst


def decodable_positions(path: Path) -> list[int]:
    """The places in the file (0 = first packet) of the frames PyAV can decode, for a file
    with one frame per packet and no reordering (MJPEG)."""
    good = []
    with av.open(str(path)) as container:
        for k, packet in enumerate(p for p in container.demux(video=0) if p.size > 0):
            try:
                if packet.decode():
                    good.append(k)
            except av.error.InvalidDataError:
                continue
    return good


def count_frames(path: Path) -> int:
    """Frames PyAV can decode from ``path`` (undecodable packets are passed over)."""
    n = 0
    with av.open(str(path)) as container:
        for packet in container.demux(video=0):
            try:
                n += len(packet.decode())
            except av.error.InvalidDataError:
                continue
    return n


def pipeline_box(frame: np.ndarray, input_size: int = 32):
    """The box the pipeline's preprocessor cuts from ``frame`` for an engine of
    ``input_size`` (the tiny test engines: 32), in frame pixels."""
    from nerveseg.engines.preprocess import PreprocessConfig, Preprocessor

    return Preprocessor(PreprocessConfig(), (input_size, input_size))(frame)[2]


def write_truth(video: Path, frames: int, nerve_every: int, height: int = 240, width: int = 640) -> Path:
    """``<stem>.gt/`` for a :func:`write_video` video: its nerve band, left eye."""
    gt = video.parent / f"{video.stem}.gt"
    (gt / "masks").mkdir(parents=True)
    rows = ["frame,class"]
    for i in range(frames):
        nerve = i % nerve_every == 0
        mask = np.zeros((height, width // 2), np.uint8)
        if nerve:
            mask[band_row(i, height):band_row(i, height) + 16] = 1
        cv2.imwrite(str(gt / "masks" / f"{i:06d}.png"), mask)
        rows.append(f"{i},{'nerve' if nerve else 'opening_wound'}")
    (gt / "labels.csv").write_text("\n".join(rows) + "\n")
    return gt
