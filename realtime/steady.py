"""A steady overlay: the gate's nerve decision with hysteresis, the mask's probabilities
averaged over time, neither adding delay (each frame is decided when it arrives, from
itself and what came before).

* :class:`Hysteresis`: "nerve" is entered when the gate's nerve probability is at least
  ``enter`` for ``frames_in`` frames in a row, and left when it is below ``leave`` for
  ``frames_out`` frames in a row. One noisy frame neither paints nor erases the label.
* :class:`MaskSmoother`: an exponential average of the segmenter's probability map,
  ``p = alpha * new + (1 - alpha) * previous``, the newest frame weighted most
  (``alpha`` ≥ 0.5); restarted when the gate leaves nerve or the map's size changes, so
  a mask never carries over from another picture.

Both are plain state machines fed in frame order by the one thread of their stage.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class SteadyConfig:
    """``enter``/``leave``: the nerve-probability band; ``frames_in``/``frames_out``:
    consecutive frames to enter and leave "nerve"; ``alpha``: the newest mask's weight
    (1: no smoothing). The defaults (band at the gate's own decision, one frame, alpha 1)
    change nothing."""

    enter: float = 0.5
    leave: float = 0.5
    frames_in: int = 1
    frames_out: int = 1
    alpha: float = 1.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.leave <= self.enter <= 1.0:
            raise ValueError(f"steady band needs 0 <= leave <= enter <= 1, not leave {self.leave}, "
                             f"enter {self.enter}")
        if not (1 <= self.frames_in <= 100 and 1 <= self.frames_out <= 100):
            raise ValueError(f"steady frames_in/frames_out must be within 1..100, not {self.frames_in}, "
                             f"{self.frames_out}")
        if not 0.5 <= self.alpha <= 1.0:
            raise ValueError(f"steady alpha (the newest mask's weight) must be within [0.5, 1], not {self.alpha}")

    @property
    def off(self) -> bool:
        return self.frames_in == self.frames_out == 1 and self.enter == self.leave and self.alpha == 1.0


#: the view's "Steady" switch when the YAML sets none: a 0.4-0.6 band, 2 frames in, 3 out,
#: the newest mask weighted 0.6 (docs/BENCHMARKS.md measures it against "off")
PRESET = SteadyConfig(enter=0.6, leave=0.4, frames_in=2, frames_out=3, alpha=0.6)


class Hysteresis:
    """``update(p_nerve) -> bool``: whether the frame is "nerve", given its probability."""

    def __init__(self, config: SteadyConfig):
        self.config = config
        self.nerve: bool | None = None  # None: no frame yet
        self._run = 0  # consecutive frames arguing for a change

    def update(self, p_nerve: float) -> bool:
        c = self.config
        if self.nerve is None:  # the first frame has no history to be steady against
            self.nerve = p_nerve >= (c.enter + c.leave) / 2
            return self.nerve
        arguing = p_nerve < c.leave if self.nerve else p_nerve >= c.enter
        self._run = self._run + 1 if arguing else 0
        if self._run >= (c.frames_out if self.nerve else c.frames_in):
            self.nerve, self._run = not self.nerve, 0
        return self.nerve


class MaskSmoother:
    """``update(prob) -> prob``: the averaged ``(H, W) float32`` probability map; ``reset()``
    forgets (the gate left nerve, the picture changed)."""

    def __init__(self, alpha: float):
        self.alpha = alpha
        self._mean: np.ndarray | None = None

    def reset(self) -> None:
        self._mean = None

    def update(self, prob: np.ndarray) -> np.ndarray:
        if self.alpha >= 1.0:
            return prob
        if self._mean is None or self._mean.shape != prob.shape:
            self._mean = prob.astype(np.float32, copy=True)
        else:
            self._mean *= 1.0 - self.alpha
            self._mean += self.alpha * prob
        return self._mean
