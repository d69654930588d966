"""MobileNetV2 gate: torchvision's network with a new classifier for our classes."""

from __future__ import annotations

from .spec import ModelSpec, drop_prefix


def build(num_classes: int, width_mult: float = 1.0, dropout: float = 0.2):
    """torchvision MobileNetV2 (random init) with a ``num_classes`` head.

    Input ``(N, 3, H, W) float32`` normalised; output ``(N, num_classes)`` logits.
    """
    from torchvision.models import mobilenet_v2

    return mobilenet_v2(weights=None, num_classes=num_classes, width_mult=width_mult,
                        dropout=dropout)


# features.14 starts the last two inverted-residual stages (stride 32), the part the
# original study fine-tuned; the classifier is the new head.
SPEC = ModelSpec(build=build, head=("classifier",), unfreeze_from="features.14",
                 pretrained_map=drop_prefix("classifier"), defaults={"width_mult": 1.0})
