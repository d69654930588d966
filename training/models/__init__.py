"""Model registries: one dict per task, one architecture per module.

``GATES`` build classifiers that output ``(N, C)`` logits, ``SEGMENTERS`` build
segmenters that output ``(N, 1, H, W)`` mask logits; both take a normalised
``(N, 3, H, W) float32`` batch. ``REGION_SEGMENTERS`` also take a region mask
``(N, 1, H, W) float32`` (> 0 inside; omitted = the whole field) and segment only inside
it. ``GATE_SEGMENTERS`` return both a gate's logits and a nerve mask from one forward. Wrap one in :class:`NormalizedModel` to get the engine contract (``(N, H, W, 3)
uint8 RGB`` in, plus ``(N, H, W, 1) uint8`` region for ``region_segment``).
"""

from __future__ import annotations

from . import deeplabv3plus, densenet, double_unet, mobilenet_v2, region_unet, resnet, unet_gate, unet_mobilenet_v2
from . import maskrcnn_mobilenet_v3, maskrcnn_resnet50
from .normalized import NormalizedModel
from .pretrained import load_pretrained
from .spec import ModelConfigError, ModelSpec

GATES: dict[str, ModelSpec] = {
    "mobilenet_v2": mobilenet_v2.SPEC,
    "resnet50": resnet.RESNET50,
    "resnet101": resnet.RESNET101,
    "densenet169": densenet.DENSENET169,
    "densenet201": densenet.DENSENET201,
}
SEGMENTERS: dict[str, ModelSpec] = {
    "unet_mobilenet_v2": unet_mobilenet_v2.SPEC,
    "deeplabv3plus_mobilenet_v2": deeplabv3plus.MOBILENET_V2,
    "deeplabv3plus_resnet50": deeplabv3plus.RESNET50,
    "double_unet": double_unet.SPEC,
}
REGION_SEGMENTERS: dict[str, ModelSpec] = {
    "region_unet_mobilenet_v2": region_unet.SPEC,
}
# Gate and segmenter in one forward pass: ``(logits (N, C), mask_logits (N, 1, H, W))``.
GATE_SEGMENTERS: dict[str, ModelSpec] = {
    "unet_gate_mobilenet_v2": unet_gate.SPEC,
}
REGISTRIES = {"classify": GATES, "segment": SEGMENTERS, "region_segment": REGION_SEGMENTERS,
              "gate_segment": GATE_SEGMENTERS}
# Instance segmenters (torchvision Mask R-CNN): their own contract (training/models/maskrcnn.py),
# so they are not in REGISTRIES, whose models map a tensor batch to one tensor (gate_segment: a pair).
INSTANCE: dict[str, ModelSpec] = {
    "maskrcnn_mobilenet_v3": maskrcnn_mobilenet_v3.SPEC,
    "maskrcnn_resnet50": maskrcnn_resnet50.SPEC,
}

__all__ = ["GATES", "SEGMENTERS", "REGION_SEGMENTERS", "GATE_SEGMENTERS", "REGISTRIES", "ModelSpec", "NormalizedModel",
           "get_spec", "build_model", "load_pretrained", "ModelConfigError"]


def get_spec(task: str, name: str) -> ModelSpec:
    """The spec registered as ``name`` for ``task``; a wrong name lists the valid ones."""
    registry = REGISTRIES.get(task)
    if registry is None:
        raise ModelConfigError(f"unknown task {task!r}; expected one of {', '.join(REGISTRIES)}")
    if name not in registry:
        raise ModelConfigError(f"unknown {task} model {name!r}; choose one of {', '.join(sorted(registry))}")
    return registry[name]


def build_model(task: str, name: str, num_classes: int, **kwargs):
    """A fresh (randomly initialised) ``name`` model for ``task``."""
    return get_spec(task, name).build(num_classes=num_classes, **kwargs)
