"""An image folder: every image, in name order (numbers by value), one frame each."""

from __future__ import annotations

import logging
import re
import threading
from pathlib import Path
from typing import Iterator

import cv2

from nerveseg.engines.errors import UserError

from ..frames import Frame, now_ns
from .base import IMAGE_SUFFIXES, Pacer, Source

log = logging.getLogger(__name__)


def natural_key(path: Path) -> tuple:
    """Name order with the numbers in a name compared by value: ``frame2.png`` before
    ``frame10.png``, as FFmpeg's ``out%d.png`` and most exporters number their images
    (plain string order would play frame 10 after frame 1). Zero-padded names keep
    their order; case is ignored, then the name itself breaks ties."""
    parts = re.split(r"(\d+)", path.name.lower())
    return tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in parts), path.name


class ImageFolderSource(Source):
    """Every image in a folder, in name order (:func:`natural_key`), as one frame each.
    ``Frame.position`` is the image's place in that order, unreadable ones included, so
    ``--gt`` scores each frame on its own annotation after a skipped image."""

    def __init__(self, path: str | Path, fps: float = 30.0, pace: bool = False):
        super().__init__()
        self.path = Path(path)
        self.name = str(self.path)
        self.fps = fps
        self.pace = pace
        if not self.path.is_dir():
            raise UserError(f"{self.path}: image folder not found")
        self.files = sorted((p for p in self.path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES), key=natural_key)
        if not self.files:
            raise UserError(f"{self.path}: no images in folder (looked for {', '.join(IMAGE_SUFFIXES)})")
        self.frame_count = len(self.files)

    def frames(self, stop: threading.Event) -> Iterator[Frame]:
        self.status.set("ok")
        pacer = Pacer(self.fps) if self.pace else None
        index = 0
        for position, file in enumerate(self.files):
            if stop.is_set():
                break
            t0 = now_ns()
            bgr = cv2.imread(str(file), cv2.IMREAD_COLOR)
            if bgr is None:
                self.skipped += 1
                log.warning("%s: not a readable image, skipped", file)
                continue
            image = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
            decoded = now_ns()
            if pacer is not None:
                pacer.wait(stop)
            yield Frame(index, now_ns(), image, pts=position / self.fps, stamps=(("decode", t0, decoded),),
                        position=position)
            index += 1
        self.status.set("ended", "end of images")
