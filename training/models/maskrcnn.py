"""Mask R-CNN parts shared by the instance architectures: the detector's assembly and the
engine-contract wrapper.

The engine contract for task ``instance`` (see :mod:`nerveseg.engines.metadata`): input
``image`` ``(1, H, W, 3) uint8 RGB``; outputs, for that one image, sorted by score:

* ``boxes``  ``(K, 4) float32`` x0, y0, x1, y1 in input pixels;
* ``labels`` ``(K,) int64`` index into ``meta.classes`` (0 is ``background``, never output);
* ``scores`` ``(K,) float32`` in [0, 1];
* ``masks``  ``(K, 1, 28, 28) float32`` mask probabilities *inside each box* (torchvision's
  mask head output before it is pasted into the image). The caller pastes them at the
  resolution it draws at (:func:`nerveseg.engines.instance_masks.paste_masks`): cheaper
  than ``K`` full-size masks, and sharper on a view larger than the engine input.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torchvision.models.detection import MaskRCNN
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.transform import resize_boxes

from nerveseg.engines.metadata import IMAGENET_MEAN, IMAGENET_STD

#: anchor side per FPN level as a fraction of the input side (strides 4, 8, 16, 32, 64)
ANCHOR_FRACTIONS = (1 / 16, 1 / 8, 1 / 4, 1 / 2, 1.0)
ASPECT_RATIOS = (0.25, 0.5, 1.0, 2.0, 4.0)  # height / width


def anchor_generator(size: int, anchor_sizes: Sequence[int] | None = None) -> AnchorGenerator:
    """One anchor size per FPN level, five aspect ratios. torchvision's defaults (32-512 px,
    ratios 1:2 to 2:1) suit 800 px COCO objects; ours are a few hundred px, so anchors scale
    with ``size``, and a nerve or vessel running along an axis has a box 4:1 or longer."""
    sizes = anchor_sizes or [max(4, round(size * f)) for f in ANCHOR_FRACTIONS]
    return AnchorGenerator(tuple((int(s),) for s in sizes), (ASPECT_RATIOS,) * len(sizes))


def detector_kwargs(size: int, detections: int, anchor_sizes=None) -> dict:
    """MaskRCNN keyword arguments common to every backbone.

    ``min_size = max_size = size``: the detector's internal resize is then the identity
    for an input of the engine size, so boxes come out in input pixels. The ImageNet
    mean/std here are the normalisation inside the exported graph (and in the metadata).
    """
    return {"min_size": size, "max_size": size, "image_mean": list(IMAGENET_MEAN),
            "image_std": list(IMAGENET_STD), "box_detections_per_img": detections,
            "rpn_anchor_generator": anchor_generator(size, anchor_sizes)}


class InstanceModel(nn.Module):
    """A torchvision :class:`MaskRCNN` behind the engine contract.

    ``forward(image)``: ``(1, H, W, 3) uint8`` → ``(boxes, labels, scores, masks)`` (module
    docstring), what the torch backend runs and the ONNX export traces. ``losses`` is the
    training entry. ``model`` is the bare detector (its state dict is the checkpoint's).
    """

    def __init__(self, model: MaskRCNN):
        super().__init__()
        self.model = model
        self.mean = tuple(model.transform.image_mean)
        self.std = tuple(model.transform.image_std)

    @staticmethod
    def to_float(image: torch.Tensor) -> torch.Tensor:
        """``(3, H, W) uint8`` → ``float32`` in [0, 1]; mean/std follow inside the detector."""
        return image.float() / 255.0

    def forward(self, image: torch.Tensor):
        if not torch.jit.is_tracing() and image.shape[0] != 1:
            raise ValueError(f"an instance model takes one frame, (1, H, W, 3), not {tuple(image.shape)}")
        h, w = image.shape[1], image.shape[2]
        x = self.to_float(image[0].permute(2, 0, 1))
        # The detector's own forward, minus the final paste of every mask into a full
        # H×W image (``transform.postprocess``): see the module docstring.
        images, _ = self.model.transform([x])
        features = self.model.backbone(images.tensors)
        proposals, _ = self.model.rpn(images, features)
        found, _ = self.model.roi_heads(features, proposals, images.image_sizes)
        boxes = resize_boxes(found[0]["boxes"], images.image_sizes[0], (h, w))
        return boxes, found[0]["labels"], found[0]["scores"], found[0]["masks"]

    def losses(self, images: list[torch.Tensor], targets: list[dict]) -> dict[str, torch.Tensor]:
        """Mask R-CNN's loss dict for ``(3, H, W) uint8`` images and torchvision targets
        (``boxes (K, 4) float32``, ``labels (K,) int64``, ``masks (K, H, W) uint8``)."""
        return self.model([self.to_float(image) for image in images], targets)


def head_keys(key: str) -> bool:
    """The class-specific layers: new for every data set (never loaded pretrained)."""
    return key.startswith(("roi_heads.box_predictor.", "roi_heads.mask_predictor.mask_fcn_logits."))
