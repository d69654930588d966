"""Region-conditioned U-Net: segment only what lies inside a given region.

The MobileNetV2 U-Net of :mod:`.unet_mobilenet_v2` with a second input, a binary region
mask (a vessel, a tissue area the surgeon marked). The mask enters through its own
3×3 stride-2 convolution (+ BN + sigmoid) and is merged with the first feature map (the
stride-2 stem) by element-wise multiplication, so every later feature, and the
stride-2 skip the decoder sharpens its edges with, is gated by the region.

Inputs: image ``(N, 3, H, W) float32`` normalised; region ``(N, 1, H, W) float32``
(> 0 inside; ``None`` means the whole field). Output ``(N, 1, H, W)`` mask logits of the
structures inside the region. Instances are the connected components of the thresholded
mask (:mod:`nerveseg.training.region.instances`), not a second head.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from .spec import ModelSpec
from .unet_mobilenet_v2 import STAGES, UNetMobileNetV2


class RegionUNet(nn.Module):
    """``(image, region)`` → ``(N, num_classes, H, W)`` logits; see the module docstring."""

    def __init__(self, num_classes: int = 1, width_mult: float = 1.0,
                 decoder_channels: Sequence[int] = (64, 48, 32, 16)):
        super().__init__()
        self.unet = UNetMobileNetV2(num_classes, width_mult, tuple(decoder_channels))
        stem = self.unet.encoder[0].out_channels
        self.region = nn.Sequential(nn.Conv2d(1, stem, 3, stride=2, padding=1, bias=False),
                                    nn.BatchNorm2d(stem), nn.Sigmoid())

    def forward(self, x: torch.Tensor, region: torch.Tensor | None = None) -> torch.Tensor:
        size = x.shape[-2:]
        region = torch.ones_like(x[:, :1]) if region is None else (region > 0).to(x.dtype)
        encoder, skips = self.unet.encoder, []
        for a, b in STAGES:
            for index in range(a, b):
                x = encoder[index](x)
                if index == 0:
                    x = x * self.region(region)  # the merge: gate the first feature map
            skips.append(x)
        x = skips.pop()
        for block in self.unet.decoder:
            skip = skips.pop()
            x = F.interpolate(x, size=skip.shape[-2:], mode="nearest")
            x = block(torch.cat([x, skip], dim=1))
        return F.interpolate(self.unet.head(x), size=size, mode="bilinear", align_corners=False)


def build(num_classes: int = 1, width_mult: float = 1.0,
          decoder_channels: Sequence[int] = (64, 48, 32, 16)) -> RegionUNet:
    return RegionUNet(num_classes, width_mult, tuple(decoder_channels))


def _map(key: str) -> str | None:
    """torchvision ``features.N.*`` → ``unet.encoder.N.*`` for N < 18; the rest is unused."""
    if not key.startswith("features."):
        return None
    return "unet.encoder." + key[len("features."):] if int(key.split(".")[1]) < STAGES[-1][1] else None


SPEC = ModelSpec(build=build, head=("unet.decoder", "unet.head", "region"), unfreeze_from="unet.encoder.0",
                 pretrained_map=_map, defaults={"width_mult": 1.0, "decoder_channels": [64, 48, 32, 16]})
