"""Mask R-CNN with torchvision's ResNet50-FPN: the reference instance segmenter.

The torchvision architecture unchanged (``maskrcnn_resnet50_fpn``, built with
``weights=None``: nothing is downloaded), except anchors and internal resize scaled to
our input size (:func:`.maskrcnn.detector_kwargs`). ~44 M parameters: accurate but slow
on a CPU (docs/INSTANCE.md has the figures); :mod:`.maskrcnn_mobilenet_v3` is the fast one.
"""

from __future__ import annotations

from torch import nn
from torchvision.models import resnet50
from torchvision.models.detection import MaskRCNN
from torchvision.models.detection.backbone_utils import _resnet_fpn_extractor
from torchvision.ops import FrozenBatchNorm2d

from .maskrcnn import detector_kwargs, head_keys
from .spec import ModelSpec


def build(num_classes: int, size: int = 256, detections: int = 50, anchor_sizes=None,
          frozen_bn: bool = False) -> MaskRCNN:
    """``num_classes`` counts the background. ``frozen_bn``: frozen BatchNorm statistics,
    as torchvision does for pretrained backbones (from scratch they must train)."""
    norm = FrozenBatchNorm2d if frozen_bn else nn.BatchNorm2d
    backbone = _resnet_fpn_extractor(resnet50(weights=None, norm_layer=norm), trainable_layers=5)
    return MaskRCNN(backbone, num_classes, **detector_kwargs(size, detections, anchor_sizes))


def _map(key: str) -> str | None:
    """Two kinds of local file load: a torchvision Mask R-CNN state dict (COCO; same keys,
    class-specific layers dropped) or an ImageNet ResNet50 (into ``backbone.body``)."""
    if key.startswith(("backbone.", "rpn.", "roi_heads.")):
        return None if head_keys(key) else key
    return None if key.startswith("fc.") else "backbone.body." + key


SPEC = ModelSpec(build=build, head=("roi_heads.box_predictor", "roi_heads.mask_predictor.mask_fcn_logits"),
                 unfreeze_from="backbone.body.layer1", pretrained_map=_map,
                 defaults={"detections": 50, "anchor_sizes": None, "frozen_bn": False})
