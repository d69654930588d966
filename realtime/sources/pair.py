"""Two devices as one stereo source: a left and a right camera (or stream), each read in
its own thread, paired by capture time into one side-by-side frame (left | right), so the
rest of the pipeline sees the ``side-by-side`` layout.

A left frame is paired with the right frame captured nearest to it, within
``tolerance`` (half a frame period by default). One that finds no partner in time is
dropped and counted, never shown half: a stereo picture whose eyes were taken at
different moments misleads. Either side lost is "no signal", saying which side.
"""

from __future__ import annotations

import collections
import threading
from typing import Iterator

import cv2
import numpy as np

from ..frames import Frame, now_ns
from .base import Source


class PairedSource(Source):
    live = True

    def __init__(self, left: Source, right: Source, tolerance: float | None = None):
        super().__init__()
        self.left, self.right = left, right
        self.name = f"{left.name} + {right.name}"
        self.fps = min(left.fps, right.fps)
        self.tolerance_ns = int((tolerance if tolerance is not None else 0.5 / self.fps) * 1e9)
        self.pairs = self.unpaired = 0
        self.max_skew_ms = 0.0
        self._queues = {"left": collections.deque(maxlen=16), "right": collections.deque(maxlen=16)}
        self._cond = threading.Condition()

    def describe(self) -> dict:
        return {**super().describe(), "left": self.left.describe(), "right": self.right.describe(),
                "pairs": self.pairs, "unpaired": self.unpaired, "max_skew_ms": round(self.max_skew_ms, 2),
                "tolerance_ms": self.tolerance_ns / 1e6}

    def _read(self, side: str, source: Source, stop: threading.Event) -> None:
        for frame in source.frames(stop):
            with self._cond:
                self._queues[side].append(frame)
                self._cond.notify_all()

    def _mirror(self) -> None:
        """One status for both: ok only while both deliver; else which side, and why."""
        states = {side: s.status.snapshot()[:2] for side, s in (("left", self.left), ("right", self.right))}
        bad = [(side, state, message) for side, (state, message) in states.items() if state != "ok"]
        if not bad:
            self.status.set("ok")
        elif all(state == "ended" for _, state, _ in bad) and len(bad) == 2:
            self.status.set("ended", "both cameras stopped")
        else:
            side, state, message = bad[0]
            self.status.set("starting" if state == "starting" else "no signal",
                            f"{side} camera: {message or state}")

    def _take_pair(self, now: int) -> tuple[Frame, Frame] | None:
        """The oldest left frame with its nearest right partner, if it has one by now."""
        left, right = self._queues["left"], self._queues["right"]
        while left:
            t = left[0].captured_ns
            best = min(right, key=lambda f: abs(f.captured_ns - t), default=None)
            if best is not None and abs(best.captured_ns - t) <= self.tolerance_ns:
                while right and right[0] is not best:
                    right.popleft()
                right.popleft()
                self.max_skew_ms = max(self.max_skew_ms, abs(best.captured_ns - t) / 1e6)
                return left.popleft(), best
            newer_right = bool(right) and right[-1].captured_ns > t + self.tolerance_ns
            if newer_right or now - t > 2 * self.tolerance_ns + 200_000_000:
                left.popleft()  # its partner will not come
                self.unpaired += 1
                continue
            return None
        return None

    def frames(self, stop: threading.Event) -> Iterator[Frame]:
        threads = [threading.Thread(target=self._read, args=(side, source, stop), daemon=True,
                                    name=f"nerveseg:{side}-camera")
                   for side, source in (("left", self.left), ("right", self.right))]
        for thread in threads:
            thread.start()
        index = 0
        while not stop.is_set() and any(t.is_alive() for t in threads):
            with self._cond:
                self._cond.wait(0.05)
                pair = self._take_pair(now_ns())
            self._mirror()
            if pair is None:
                continue
            yield self._join(index, *pair)
            self.pairs += 1
            index += 1
        for thread in threads:
            thread.join(1.0)
        self.status.set("ended", "stopped")

    @staticmethod
    def _join(index: int, left: Frame, right: Frame) -> Frame:
        """``left | right`` as one frame; the right eye resized to the left's size if it differs."""
        image = right.image
        if image.shape[:2] != left.image.shape[:2]:
            image = cv2.resize(image, (left.image.shape[1], left.image.shape[0]), interpolation=cv2.INTER_AREA)
        t0 = min(s[1] for s in left.stamps + right.stamps) if left.stamps and right.stamps else left.captured_ns
        captured = max(left.captured_ns, right.captured_ns)
        return Frame(index, captured, np.concatenate([left.image, image], axis=1), pts=None,
                     stamps=(("decode", t0, captured),), connection=left.connection + right.connection)
