"""The one ``Engine`` interface every backend implements."""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np

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
