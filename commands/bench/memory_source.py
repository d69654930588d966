"""Frames decoded once into memory, and a source that offers them like a camera."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Iterator

import numpy as np

from nerveseg.realtime.frames import Frame, now_ns
from nerveseg.realtime.sources import Pacer, Source
from nerveseg.realtime.sources import VideoFileSource


def decode_frames(video: str | Path, limit: int | None = None) -> tuple[list[np.ndarray], float]:
    """The first ``limit`` frames of ``video`` as ``(H, W, 3) uint8 RGB`` and its frame rate."""
    source = VideoFileSource(video)
    frames = []
    stop = threading.Event()
    for frame in source.frames(stop):
        frames.append(frame.image)
        if limit is not None and len(frames) >= limit:
            stop.set()
            break
    return frames, source.fps


class MemorySource(Source):
    """Offers in-memory frames ``loops`` times over: ``live`` at ``fps`` as a camera would,
    else as fast as the pipeline takes them (a replay without decoding).

    The capture stamp is the moment a frame is offered, so latency is measured from
    there, never from the pacing sleep."""

    def __init__(self, images: list[np.ndarray], fps: float, loops: int = 1, name: str = "memory",
                 live: bool = True):
        super().__init__()
        if not images:
            raise ValueError("MemorySource needs at least one frame")
        self.images, self.fps, self.loops, self.name, self.live = images, fps, loops, name, live
        self.frame_count = len(images) * loops

    def frames(self, stop: threading.Event) -> Iterator[Frame]:
        self.status.set("ok")
        pacer = Pacer(self.fps) if self.live else None
        for index in range(self.frame_count):
            if stop.is_set():
                break
            if pacer is not None:
                pacer.wait(stop)
            t = now_ns()
            yield Frame(index, t, self.images[index % len(self.images)], pts=index / self.fps,
                        stamps=(("decode", t, t),))
        self.status.set("ended", "end of frames")
