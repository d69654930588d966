"""DeepLabV3+ (Chen et al., ECCV 2018) on a torchvision backbone.

Backbone at output stride 16: MobileNetV2 ``features[0:18]`` with the last stage
(``features.14``-``17``) dilated by 2 instead of strided, or ResNet50 with torchvision's
``replace_stride_with_dilation`` on ``layer4``. Both keep torchvision's parameter names
under ``backbone.`` so local ImageNet weights load by adding that prefix.

ASPP: a 1×1 branch, three depthwise-separable 3×3 atrous branches (rates 6/12/18 at
stride 16) and image pooling, concatenated and projected to ``aspp_channels``. Decoder:
the ASPP map upsampled to the stride-4 low-level features (reduced to 48 channels by a
1×1 conv), concatenated, two separable 3×3 blocks, 1×1 logits, bilinear to the input.
Separable convolutions in ASPP and decoder follow the paper's Xception variant; here
they also keep the CPU cost close to the U-Net's.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial

import torch
from torch import nn
from torch.nn import functional as F

from .spec import ModelSpec

RATES = (6, 12, 18)
RESNET_LAYERS = ("conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4")


def conv_bn_relu(cin: int, cout: int, kernel: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, kernel, padding=kernel // 2, bias=False),
                         nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


def separable(cin: int, cout: int, dilation: int = 1) -> nn.Sequential:
    """Depthwise 3×3 (dilated) + pointwise 1×1, each with BN and ReLU."""
    return nn.Sequential(
        nn.Conv2d(cin, cin, 3, padding=dilation, dilation=dilation, groups=cin, bias=False),
        nn.BatchNorm2d(cin), nn.ReLU(inplace=True),
        nn.Conv2d(cin, cout, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class ASPP(nn.Module):
    """Atrous spatial pyramid pooling: ``(N, cin, h, w)`` → ``(N, cout, h, w)``."""

    def __init__(self, cin: int, cout: int = 256, rates: Sequence[int] = RATES, dropout: float = 0.1):
        super().__init__()
        self.branches = nn.ModuleList([conv_bn_relu(cin, cout, 1)]
                                      + [separable(cin, cout, r) for r in rates])
        # No BatchNorm on the pooled 1×1 map: it would fail on a training batch of one.
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(cin, cout, 1), nn.ReLU(inplace=True))
        self.project = nn.Sequential(conv_bn_relu(cout * (len(rates) + 2), cout, 1), nn.Dropout(dropout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outs = [branch(x) for branch in self.branches]
        outs.append(self.pool(x).expand_as(outs[0]))  # broadcast, not interpolate: same values, cheaper
        return self.project(torch.cat(outs, dim=1))


def _dilate(blocks: nn.Module, dilation: int) -> None:
    """Turn the 3×3 convolutions of ``blocks`` from strided into dilated (stride 1)."""
    for module in blocks.modules():
        if isinstance(module, nn.Conv2d) and module.kernel_size == (3, 3):
            module.stride, module.dilation, module.padding = (1, 1), (dilation, dilation), (dilation, dilation)


class MobileNetV2Backbone(nn.Module):
    """``(N, 3, H, W)`` → ``(low (N, 24w, H/4, W/4), high (N, 320w, H/16, W/16))``."""

    LOW = 4  # features[0:4] ends at stride 4

    def __init__(self, width_mult: float = 1.0):
        super().__init__()
        from torchvision.models import mobilenet_v2

        self.features = nn.Sequential(*mobilenet_v2(weights=None, width_mult=width_mult).features[:18])
        _dilate(self.features[14:], 2)
        self.low_channels = self.features[self.LOW - 1].out_channels
        self.high_channels = self.features[17].out_channels

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        for index, layer in enumerate(self.features):
            x = layer(x)
            if index == self.LOW - 1:
                low = x
        return low, x


class ResNetBackbone(nn.Module):
    """``(N, 3, H, W)`` → ``(low = layer1 (N, 256, H/4, W/4), high = layer4 (N, 2048, H/16, W/16))``."""

    def __init__(self, depth: int = 50):
        super().__init__()
        from torchvision.models import resnet50, resnet101

        net = {50: resnet50, 101: resnet101}[depth](weights=None,
                                                     replace_stride_with_dilation=[False, False, True])
        for name in RESNET_LAYERS:  # everything but avgpool/fc, under torchvision's names
            setattr(self, name, getattr(net, name))
        self.low_channels, self.high_channels = 256, 2048

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        low = self.layer1(self.maxpool(self.relu(self.bn1(self.conv1(x)))))
        return low, self.layer4(self.layer3(self.layer2(low)))


class Decoder(nn.Module):
    """ASPP map + low-level skip → ``(N, channels, H/4, W/4)``."""

    def __init__(self, low_in: int, aspp: int, low: int = 48, channels: int = 256):
        super().__init__()
        self.reduce = conv_bn_relu(low_in, low, 1)
        self.blocks = nn.Sequential(separable(aspp + low, channels), separable(channels, channels))

    def forward(self, low: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, size=low.shape[-2:], mode="bilinear", align_corners=False)
        return self.blocks(torch.cat([x, self.reduce(low)], dim=1))


class DeepLabV3Plus(nn.Module):
    """``(N, 3, H, W) float32`` normalised → ``(N, num_classes, H, W)`` logits."""

    def __init__(self, backbone: nn.Module, num_classes: int = 1, aspp_channels: int = 256,
                 decoder_channels: int = 256):
        super().__init__()
        self.backbone = backbone
        self.aspp = ASPP(backbone.high_channels, aspp_channels)
        self.decoder = Decoder(backbone.low_channels, aspp_channels, channels=decoder_channels)
        self.head = nn.Conv2d(decoder_channels, num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = x.shape[-2:]
        low, high = self.backbone(x)
        x = self.decoder(low, self.aspp(high))
        return F.interpolate(self.head(x), size=size, mode="bilinear", align_corners=False)


def build_mobilenet_v2(num_classes: int = 1, width_mult: float = 1.0, aspp_channels: int = 256,
                       decoder_channels: int = 256) -> DeepLabV3Plus:
    return DeepLabV3Plus(MobileNetV2Backbone(width_mult), num_classes, aspp_channels, decoder_channels)


def build_resnet(num_classes: int = 1, depth: int = 50, aspp_channels: int = 256,
                 decoder_channels: int = 256) -> DeepLabV3Plus:
    return DeepLabV3Plus(ResNetBackbone(depth), num_classes, aspp_channels, decoder_channels)


def _map_mobilenet(key: str) -> str | None:
    """torchvision ``features.N.*`` (N < 18) → ``backbone.features.N.*``; the rest is unused."""
    if not key.startswith("features."):
        return None
    return "backbone." + key if int(key.split(".")[1]) < 18 else None


def _map_resnet(key: str) -> str | None:
    """torchvision ``conv1/bn1/layerK.*`` → ``backbone.*``; ``fc`` (the 1000 classes) is dropped."""
    return "backbone." + key if key.split(".")[0] in RESNET_LAYERS else None


HEAD = ("aspp", "decoder", "head")
MOBILENET_V2 = ModelSpec(build=build_mobilenet_v2, head=HEAD, unfreeze_from="backbone.features.0",
                         pretrained_map=_map_mobilenet,
                         defaults={"width_mult": 1.0, "aspp_channels": 256, "decoder_channels": 256})
RESNET50 = ModelSpec(build=partial(build_resnet, depth=50), head=HEAD, unfreeze_from="backbone.conv1",
                     pretrained_map=_map_resnet, defaults={"aspp_channels": 256, "decoder_channels": 256})
