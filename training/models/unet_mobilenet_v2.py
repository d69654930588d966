"""U-Net with a MobileNetV2 encoder: the CPU-fast nerve segmenter.

Encoder: torchvision MobileNetV2 ``features[0:18]`` (the 1280-channel 1×1 conv is
dropped), cut into five stages at strides 2/4/8/16/32. Decoder: at each stride,
upsample, concatenate the encoder skip, then one depthwise-separable 3×3 block.
Logits are predicted at stride 2 and bilinearly upsampled to the input size, which
saves the most expensive full-resolution convolutions.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F
from torchvision.models import mobilenet_v2

from .spec import ModelSpec

# features[a:b] of torchvision MobileNetV2 per stage; stage i ends at stride 2**(i+1).
STAGES = ((0, 2), (2, 4), (4, 7), (7, 14), (14, 18))


def separable(cin: int, cout: int) -> nn.Sequential:
    """Depthwise 3×3 + pointwise 1×1, each with BN and ReLU6: ~9× cheaper than a dense 3×3."""
    return nn.Sequential(
        nn.Conv2d(cin, cin, 3, padding=1, groups=cin, bias=False), nn.BatchNorm2d(cin),
        nn.ReLU6(inplace=True),
        nn.Conv2d(cin, cout, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU6(inplace=True))


class UNetMobileNetV2(nn.Module):
    """``(N, 3, H, W) float32`` normalised → ``(N, num_classes, H, W)`` logits."""

    def __init__(self, num_classes: int = 1, width_mult: float = 1.0,
                 decoder_channels: Sequence[int] = (64, 48, 32, 16)):
        super().__init__()
        features = mobilenet_v2(weights=None, width_mult=width_mult).features
        # Keep torchvision's indices (encoder.0 ... encoder.17) so ImageNet weights
        # load by renaming features.* → encoder.*.
        self.encoder = nn.Sequential(*features[:STAGES[-1][1]])
        skips = [features[b - 1].out_channels for _, b in STAGES]
        ins = [skips[-1]] + list(decoder_channels[:-1])
        self.decoder = nn.ModuleList(
            separable(cin + skip, cout)
            for cin, skip, cout in zip(ins, reversed(skips[:-1]), decoder_channels))
        self.head = nn.Conv2d(decoder_channels[-1], num_classes, 1)

    def encode(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The encoder's stage outputs, strides 2 to 32."""
        skips = []
        for a, b in STAGES:
            for index in range(a, b):
                x = self.encoder[index](x)
            skips.append(x)
        return skips

    def decode(self, skips: list[torch.Tensor], size) -> torch.Tensor:
        """Mask logits at ``size`` from :meth:`encode`'s outputs (the list is consumed)."""
        x = skips.pop()
        for block in self.decoder:
            skip = skips.pop()
            # To the skip's size, not ×2, so inputs that are not a multiple of 32 still fit.
            x = F.interpolate(x, size=skip.shape[-2:], mode="nearest")
            x = block(torch.cat([x, skip], dim=1))
        return F.interpolate(self.head(x), size=size, mode="bilinear", align_corners=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x), x.shape[-2:])


def build(num_classes: int = 1, width_mult: float = 1.0,
          decoder_channels: Sequence[int] = (64, 48, 32, 16)) -> UNetMobileNetV2:
    return UNetMobileNetV2(num_classes, width_mult, tuple(decoder_channels))


def _map(key: str) -> str | None:
    """torchvision ``features.N.*`` → ``encoder.N.*`` for N < 18; the rest is unused."""
    if not key.startswith("features."):
        return None
    index = int(key.split(".")[1])
    return "encoder." + key[len("features."):] if index < STAGES[-1][1] else None


SPEC = ModelSpec(build=build, head=("decoder", "head"), unfreeze_from="encoder.0",
                 pretrained_map=_map, defaults={"width_mult": 1.0,
                                                "decoder_channels": [64, 48, 32, 16]})
