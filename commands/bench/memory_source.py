"""Frames decoded once into memory, and a source that offers them like a camera."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Iterator

import cv2
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
            image = self.image(index)
            yield Frame(index, t, image, pts=index / self.fps, stamps=(("decode", t, now_ns()),))
        self.status.set("ended", "end of frames")

    def image(self, index: int) -> np.ndarray:
        """Frame ``index`` as offered (its time is the frame's ``decode`` stamp)."""
        return self.images[index % len(self.images)]


def card_frames_of(video: str | Path, limit: int) -> tuple[list[np.ndarray], float]:
    """The first ``limit`` frames of ``video`` as a capture card delivers them: 4:2:0 planes
    (I420, ``(H·3/2, W) uint8``, half an RGB frame's bytes), and the video's frame rate."""
    images, fps = decode_frames(video, limit)
    return [cv2.cvtColor(image, cv2.COLOR_RGB2YUV_I420) for image in images], fps


class CardSource(MemorySource):
    """A live capture card, modelled: ``planes`` (I420, from :func:`card_frames_of`) offered
    ``loops`` times over at ``fps``, each converted to RGB as it is offered, as the camera
    source converts a driver's frame (``to_rgb``). The capture stamp is the moment a frame is
    offered; the conversion is the source's ``decode`` stamp, and in the video delay."""

    def __init__(self, planes: list[np.ndarray], fps: float, loops: int = 1, name: str = "capture card"):
        super().__init__(planes, fps, loops, name, live=True)
        height, width = planes[0].shape[:2]
        self.size = (height * 2 // 3, width)

    def image(self, index: int) -> np.ndarray:
        return cv2.cvtColor(super().image(index), cv2.COLOR_YUV2RGB_I420)
