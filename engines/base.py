"""The one ``Engine`` interface every backend implements."""

from __future__ import annotations

import functools
from abc import ABC, abstractmethod

import numpy as np

from .calibration import Calibration
from .metadata import EngineMeta, Provenance


class Engine(ABC):
    """A loaded model that maps a batch of frames to raw outputs.

    ``run`` takes ``(N, H, W, 3) uint8 RGB`` at ``meta.input_size`` and returns the
    task's outputs by name (see :mod:`nerveseg.engines.metadata` for the contract):
    ``{"logits": (N, C) float32}`` and/or ``{"mask_logits": (N, 1, H, W) float32}``.
    ``region``: a ``region_segment`` engine's second input, ``(N, H, W, 1)`` or
    ``(N, H, W)`` uint8/bool, > 0 inside (None: the whole field); every other engine
    refuses a region with :meth:`refuse_region`.

    Buffer ownership: a backend may return views of buffers it reuses on the next call
    (TensorRT does); callers that keep outputs past the next ``run`` copy them.

    A gate's ``logits`` come out calibrated: every backend passes its outputs through
    :meth:`calibrated`, which divides them by the temperature in the engine's metadata
    (:mod:`.calibration`; none: unchanged).
    """

    provenance: Provenance

    @property
    def meta(self) -> EngineMeta:
        return self.provenance.meta

    @property
    def input_size(self) -> tuple[int, int]:
        return self.meta.input_size

    @property
    def classes(self) -> tuple[str, ...]:
        return self.meta.classes

    @functools.cached_property
    def calibration(self) -> Calibration:
        """The temperature and unfamiliar-view threshold in the metadata (checked at load)."""
        return Calibration.of(self.meta, self.provenance.path)

    def calibrated(self, outputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """``outputs`` with ``logits`` divided by the temperature (a new array: a backend's
        reused buffer is left as it was); ``T = 1``: returned as they are."""
        t = self.calibration.temperature
        if t != 1.0 and "logits" in outputs:
            outputs["logits"] = (outputs["logits"] / np.float32(t)).astype(np.float32, copy=False)
        return outputs

    @abstractmethod
    def run(self, batch: np.ndarray, *, region: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """Run one batch; see the class docstring for shapes."""

    def refuse_region(self, region: np.ndarray | None) -> None:
        """For backends or engines without a region input: a region is a caller's bug."""
        if region is not None:
            raise ValueError(f"{self.provenance.path}: this {self.meta.task!r} engine "
                             f"({self.provenance.backend}) takes no region input")

    def warmup(self, runs: int = 2) -> None:
        """Run on blank input so first-call allocation stays out of the statistics."""
        h, w = self.input_size
        blank = np.zeros((1, h, w, 3), dtype=np.uint8)
        for _ in range(runs):
            self.run(blank)

    def close(self) -> None:
        """Release backend resources (sessions, device buffers)."""

    def __enter__(self) -> "Engine":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
