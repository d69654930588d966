"""Mask R-CNN on a MobileNetV3-Large FPN with slim heads: the CPU-fast instance segmenter.

Backbone: torchvision MobileNetV3-Large ``features`` (``weights=None``), tapped at strides
4/8/16/32 (after blocks 3, 6, 12 and the last 1×1 conv, 16) into a
``fpn_channels``-wide FPN plus the max-pool level. torchvision's own
``mobilenet_backbone`` taps only strides 16/32 at 256 channels: our structures are a
few percent of a small frame wide, so the stride-4 level matters, and 64 channels cut the
RoI heads (the bulk of Mask R-CNN's time at this input size) by 16×. Box head: two
``representation``-wide FC layers; mask head: four ``fpn_channels`` 3×3 convs, as
torchvision's but narrower. docs/INSTANCE.md has the measured speed of both architectures.
"""

from __future__ import annotations

from torch import nn
from torchvision.models import mobilenet_v3_large
from torchvision.models.detection import MaskRCNN
from torchvision.models.detection.backbone_utils import BackboneWithFPN
from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead
from torchvision.models.detection.mask_rcnn import MaskRCNNHeads, MaskRCNNPredictor
from torchvision.ops import FrozenBatchNorm2d, MultiScaleRoIAlign
from torchvision.ops.feature_pyramid_network import LastLevelMaxPool

from .maskrcnn import detector_kwargs, head_keys
from .spec import ModelSpec

TAPS = (3, 6, 12, 16)  # features[i] ends at stride 4, 8, 16, 32
LEVELS = ["0", "1", "2", "3"]  # RoIs pool from the four tapped levels, not the pool level


def build(num_classes: int, size: int = 256, width_mult: float = 1.0, fpn_channels: int = 64,
          representation: int = 256, detections: int = 50, anchor_sizes=None,
          frozen_bn: bool = False) -> MaskRCNN:
    """``num_classes`` counts the background; see the module docstring for the rest."""
    norm = FrozenBatchNorm2d if frozen_bn else nn.BatchNorm2d
    features = mobilenet_v3_large(weights=None, width_mult=width_mult, norm_layer=norm).features
    channels = [features[i].out_channels for i in TAPS]
    backbone = BackboneWithFPN(features, {str(i): str(k) for k, i in enumerate(TAPS)}, channels,
                               fpn_channels, extra_blocks=LastLevelMaxPool())
    c = fpn_channels
    return MaskRCNN(
        backbone, None,
        box_roi_pool=MultiScaleRoIAlign(LEVELS, 7, 2),
        box_head=TwoMLPHead(c * 7 * 7, representation),
        box_predictor=FastRCNNPredictor(representation, num_classes),
        mask_roi_pool=MultiScaleRoIAlign(LEVELS, 14, 2),
        mask_head=MaskRCNNHeads(c, (c, c, c, c), 1),
        mask_predictor=MaskRCNNPredictor(c, c, num_classes),
        # Few objects per frame: 1000 proposals (the default) would only feed the box head.
        rpn_pre_nms_top_n_test=300, rpn_post_nms_top_n_test=100, box_batch_size_per_image=128,
        **detector_kwargs(size, detections, anchor_sizes))


def _map(key: str) -> str | None:
    """An ImageNet MobileNetV3-Large (``features.N.*`` → ``backbone.body.N.*``) or the
    backbone of a torchvision detection state dict (``backbone.body.*``); the FPN and heads
    here are narrower than torchvision's, so they always start fresh."""
    if key.startswith("features."):
        return "backbone.body." + key[len("features."):]
    if key.startswith("backbone.body.") and not head_keys(key):
        return key
    return None


SPEC = ModelSpec(build=build, head=("roi_heads.box_predictor", "roi_heads.mask_predictor.mask_fcn_logits"),
                 unfreeze_from="backbone.body.0", pretrained_map=_map,
                 defaults={"width_mult": 1.0, "fpn_channels": 64, "representation": 256,
                           "detections": 50, "anchor_sizes": None, "frozen_bn": False})
