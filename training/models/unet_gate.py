"""The gate and the segmenter in one forward pass: a U-Net with a MobileNetV2 encoder
(:mod:`.unet_mobilenet_v2`) and a classification head on its deepest features.

One engine instead of two: the classifier shares the segmenter's encoder, so a frame
costs one encoder pass whatever the gate decides, and a nerve frame's mask is ready as
soon as its class is (task ``gate_segment``: outputs ``logits`` ``(N, C)`` and
``mask_logits`` ``(N, 1, H, W)``; ``classes`` are the gate's, the mask is the nerve's).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from .spec import ModelSpec
from .unet_mobilenet_v2 import STAGES, UNetMobileNetV2, _map


class UNetGate(UNetMobileNetV2):
    """``(N, 3, H, W) float32`` normalised → ``(logits (N, num_classes), mask_logits (N, 1, H, W))``."""

    def __init__(self, num_classes: int = 3, width_mult: float = 1.0,
                 decoder_channels: Sequence[int] = (64, 48, 32, 16), dropout: float = 0.2):
        super().__init__(1, width_mult, decoder_channels)
        deepest = self.encoder[STAGES[-1][1] - 1].out_channels
        self.classifier = nn.Sequential(nn.Dropout(dropout), nn.Linear(deepest, num_classes))

    def classify(self, x: torch.Tensor) -> torch.Tensor:
        """The class logits alone (training the gate needs no decoder)."""
        return self.classifier(self.encode(x)[-1].mean(dim=(2, 3)))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        skips = self.encode(x)
        logits = self.classifier(skips[-1].mean(dim=(2, 3)))
        return logits, self.decode(skips, x.shape[-2:])


def build(num_classes: int = 3, width_mult: float = 1.0,
          decoder_channels: Sequence[int] = (64, 48, 32, 16), dropout: float = 0.2) -> UNetGate:
    return UNetGate(num_classes, width_mult, tuple(decoder_channels), dropout)


SPEC = ModelSpec(build=build, head=("classifier",), unfreeze_from="encoder.14", pretrained_map=_map,
                 defaults={"width_mult": 1.0, "decoder_channels": [64, 48, 32, 16]})
