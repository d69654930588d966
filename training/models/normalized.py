"""The engine contract as a module: uint8 NHWC RGB in, task outputs out."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


class NormalizedModel(nn.Module):
    """Wrap ``model`` so that it takes ``(N, H, W, 3) uint8 RGB``.

    Inside: NHWC→NCHW, ``float``, ``(x/255 - mean)/std`` (folded into one multiply and
    one subtract), then ``model``. Training, the torch backend and the ONNX export all
    run this same module, so the normalisation trained with is the one shipped.
    Returns what ``model`` returns: ``(N, C)`` logits or ``(N, 1, H, W)`` mask logits.
    Extra inputs (the ``region`` of a ``region_segment`` model, ``(N, H, W, 1) uint8``)
    arrive in the engine's NHWC layout too and are passed on as ``(N, 1, H, W) float32``.
    """

    def __init__(self, model: nn.Module, mean: Sequence[float], std: Sequence[float]):
        super().__init__()
        self.model = model
        self.mean, self.std = tuple(mean), tuple(std)
        scale = torch.tensor([1.0 / (255.0 * s) for s in std]).view(1, 3, 1, 1)
        shift = torch.tensor([m / s for m, s in zip(mean, std)]).view(1, 3, 1, 1)
        # Non-persistent buffers: never trained, not in the state dict (mean/std live in
        # EngineMeta), but moved with the module and traced into the export.
        self.register_buffer("scale", scale, persistent=False)
        self.register_buffer("shift", shift, persistent=False)

    def forward(self, image: torch.Tensor, *extra: torch.Tensor) -> torch.Tensor:
        x = image.permute(0, 3, 1, 2).float()
        extra = tuple(e.permute(0, 3, 1, 2).float() for e in extra)
        return self.model(x * self.scale - self.shift, *extra)
