"""DoubleUNet (Jha et al., CBMS 2020): two stacked encoder-decoders with ASPP.

Network 1: MobileNetV2 ``features[0:14]`` encoder (skips at strides 2/4/8, ASPP at
stride 16), a decoder of separable blocks with squeeze-and-excitation (SE), and
``logits_1``. Network 2 is fed the input multiplied by ``sigmoid(logits_1)``: its own
small encoder (two 3×3 conv + SE per stage, strides 2/4/8/16), ASPP, and a decoder that
concatenates the skips of *both* encoders, giving ``logits_2``.

Differences from the paper, on purpose:

* Encoder 1 is MobileNetV2 (width multiplier, local ImageNet weights), not VGG19, and
  encoder 2 has half the paper's channels (16/32/64/128): VGG19 alone costs ~20 GFLOPs
  at 224 px, far from real time on a CPU.
* Decoders stop at stride 2 and the logits are bilinearly upsampled ×2, as in the U-Net
  here: the full-resolution convolutions cost most and add little to a mask.
* **Output**: the paper concatenates both masks into a 2-channel output. The engine
  contract is one mask channel, so the model outputs ``logits_2`` (the last, refined
  mask). Network 1 is trained end to end through the multiplication (its sigmoid acts
  as a learned attention map), without a loss of its own: the shared training loop has
  one output and one criterion.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from .deeplabv3plus import ASPP, separable
from .spec import ModelSpec

# features[a:b] of torchvision MobileNetV2 per stage; stage i ends at stride 2**(i+1).
STAGES = ((0, 2), (2, 4), (4, 7), (7, 14))


class SqueezeExcite(nn.Module):
    """Channel reweighting: ``x * sigmoid(fc(relu(fc(avgpool(x)))))``; shape unchanged."""

    def __init__(self, channels: int, reduction: int = 8):
        super().__init__()
        hidden = max(channels // reduction, 4)
        self.fc = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(channels, hidden, 1), nn.ReLU(inplace=True),
                                nn.Conv2d(hidden, channels, 1), nn.Sigmoid())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.fc(x)


def conv_block(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    """The paper's encoder-2 block: two 3×3 conv-BN-ReLU and SE (the first may stride)."""
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
        nn.Conv2d(cout, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
        SqueezeExcite(cout))


class Decoder(nn.Module):
    """Per stage: upsample to the skip's size, concatenate the skip(s), separable block + SE."""

    def __init__(self, cin: int, skips: Sequence[int], channels: Sequence[int]):
        super().__init__()
        ins = [cin] + list(channels[:-1])
        self.blocks = nn.ModuleList(nn.Sequential(separable(i + s, c), SqueezeExcite(c))
                                    for i, s, c in zip(ins, skips, channels))

    def forward(self, x: torch.Tensor, skips: list[list[torch.Tensor]]) -> torch.Tensor:
        """``skips[k]``: the tensors to concatenate at stage ``k`` (deepest first)."""
        for block, parts in zip(self.blocks, skips):
            x = F.interpolate(x, size=parts[0].shape[-2:], mode="nearest")
            x = block(torch.cat([x, *parts], dim=1))
        return x


class DoubleUNet(nn.Module):
    """``(N, 3, H, W) float32`` normalised → ``(N, num_classes, H, W)``: network 2's logits.

    With ``aux_outputs`` set (the training loop sets it for ``--aux-weight`` > 0) a forward
    in training mode returns ``(logits 2, logits 1)``: network 1's mask gets a loss of its
    own, the paper's deep supervision. Evaluation and export always see one tensor.
    """

    def __init__(self, num_classes: int = 1, width_mult: float = 1.0, aspp_channels: int = 64,
                 encoder2_channels: Sequence[int] = (16, 32, 64, 128),
                 decoder_channels: Sequence[int] = (64, 48, 32)):
        super().__init__()
        from torchvision.models import mobilenet_v2

        features = mobilenet_v2(weights=None, width_mult=width_mult).features
        self.encoder1 = nn.Sequential(*features[:STAGES[-1][1]])  # torchvision indices: weights load
        skips1 = [features[b - 1].out_channels for _, b in STAGES]
        self.aspp1 = ASPP(skips1[-1], aspp_channels)
        self.decoder1 = Decoder(aspp_channels, skips1[-2::-1], decoder_channels)
        self.head1 = nn.Conv2d(decoder_channels[-1], num_classes, 1)
        c2 = list(encoder2_channels)
        self.encoder2 = nn.ModuleList(conv_block(cin, cout, 2) for cin, cout in zip([3] + c2[:-1], c2))
        self.aspp2 = ASPP(c2[-1], aspp_channels)
        both = [a + b for a, b in zip(skips1[-2::-1], c2[-2::-1])]
        self.decoder2 = Decoder(aspp_channels, both, decoder_channels)
        self.head2 = nn.Conv2d(decoder_channels[-1], num_classes, 1)
        self.aux_outputs = False

    def _encode1(self, x: torch.Tensor) -> list[torch.Tensor]:
        outs = []
        for a, b in STAGES:
            for index in range(a, b):
                x = self.encoder1[index](x)
            outs.append(x)
        return outs

    def _encode2(self, x: torch.Tensor) -> list[torch.Tensor]:
        outs = []
        for block in self.encoder2:
            x = block(x)
            outs.append(x)
        return outs

    def forward(self, x: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        size = x.shape[-2:]
        e1 = self._encode1(x)
        y = self.decoder1(self.aspp1(e1[-1]), [[s] for s in e1[-2::-1]])
        logits1 = F.interpolate(self.head1(y), size=size, mode="bilinear", align_corners=False)
        e2 = self._encode2(x * torch.sigmoid(logits1))
        y = self.decoder2(self.aspp2(e2[-1]), [[a, b] for a, b in zip(e1[-2::-1], e2[-2::-1])])
        logits2 = F.interpolate(self.head2(y), size=size, mode="bilinear", align_corners=False)
        if self.aux_outputs and self.training:
            return logits2, logits1
        return logits2


def build(num_classes: int = 1, width_mult: float = 1.0, aspp_channels: int = 64,
          encoder2_channels: Sequence[int] = (16, 32, 64, 128),
          decoder_channels: Sequence[int] = (64, 48, 32)) -> DoubleUNet:
    return DoubleUNet(num_classes, width_mult, aspp_channels, tuple(encoder2_channels), tuple(decoder_channels))


def _map(key: str) -> str | None:
    """torchvision ``features.N.*`` → ``encoder1.N.*`` for N < 14; the rest is unused."""
    if not key.startswith("features."):
        return None
    return "encoder1." + key[len("features."):] if int(key.split(".")[1]) < STAGES[-1][1] else None


SPEC = ModelSpec(build=build, head=("aspp1", "decoder1", "head1", "encoder2", "aspp2", "decoder2", "head2"),
                 unfreeze_from="encoder1.0", pretrained_map=_map,
                 defaults={"width_mult": 1.0, "aspp_channels": 64, "encoder2_channels": [16, 32, 64, 128],
                           "decoder_channels": [64, 48, 32]})
