"""torch backend: the reference a training checkpoint runs on (CPU), for parity checks
and for evaluating a model before export. Imports torch and the training stack inside."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from nerveseg.engines.base import Engine
from nerveseg.engines.metadata import OUTPUT_NAMES, EngineError, Provenance, file_sha256, region_feed


class TorchEngine(Engine):
    """A nerveseg checkpoint (``best.pt``/``last.pt``) rebuilt from the model registry.

    The model runs inside the same ``NormalizedModel`` that training used and export
    traces, so ``run`` takes ``(N, H, W, 3) uint8 RGB`` and returns the contract's outputs
    (``logits`` or ``mask_logits``) as fresh float32 arrays; an ``instance`` checkpoint
    (Mask R-CNN) takes one frame and returns ``boxes``, ``labels``, ``scores``, ``masks``.
    ``threads > 0`` sets torch's CPU threads for the whole process (torch has no
    per-model setting).
    """

    backend_name = "torch"

    def __init__(self, path: str | Path, threads: int = 0, reason: str = ""):
        import torch

        from nerveseg.training.checkpoint import model_from_checkpoint

        if threads > 0:
            torch.set_num_threads(threads)
        from nerveseg.training.instance.model import checkpoint_task, instance_from_checkpoint

        # Mask R-CNN checkpoints rebuild from their own registry (outputs: boxes, labels, ...).
        load = instance_from_checkpoint if checkpoint_task(path) == "instance" else model_from_checkpoint
        self._model, meta, _ = load(path)
        self._outputs = OUTPUT_NAMES.get(meta.task, ())
        if meta.task not in OUTPUT_NAMES or (len(self._outputs) != 1 and meta.task not in ("instance",
                                                                                             "gate_segment")):
            raise EngineError(f"{path}: the torch backend runs classify, segment, gate_segment, instance and "
                              f"region_segment checkpoints, not {meta.task!r}")
        self._output = OUTPUT_NAMES[meta.task][0]
        self._torch = torch
        self.provenance = Provenance(str(path), file_sha256(path), self.backend_name, meta,
                                     device="cpu", reason=reason)

    def run(self, batch: np.ndarray, *, region: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """``region``: as :meth:`OnnxRuntimeEngine.run` (``region_segment`` checkpoints only)."""
        h, w = self.input_size
        if batch.dtype != np.uint8 or batch.ndim != 4 or batch.shape[1:] != (h, w, 3):
            raise ValueError(f"expected (N, {h}, {w}, 3) uint8, got {batch.shape} {batch.dtype}")
        inputs = [self._torch.from_numpy(np.ascontiguousarray(batch))]
        if self.meta.task == "region_segment":
            inputs.append(self._torch.from_numpy(region_feed(batch, region)))
        else:
            self.refuse_region(region)
        with self._torch.inference_mode():
            output = self._model(*inputs)
        if isinstance(output, tuple):  # instance: boxes, labels (int64), scores, masks; gate_segment: logits, mask
            return self.calibrated({name: value.numpy() for name, value in zip(self._outputs, output)})
        return self.calibrated({self._output: output.numpy().astype(np.float32, copy=False)})

    def close(self) -> None:
        self._model = None
