"""ResNet gates (ResNet50/101): torchvision networks with a new ``fc`` head."""

from __future__ import annotations

from functools import partial

from .spec import ModelSpec, drop_prefix


def build(num_classes: int, depth: int = 50):
    """torchvision ResNet-``depth`` (random init); ``(N, 3, H, W)`` → ``(N, num_classes)``."""
    from torchvision.models import resnet50, resnet101

    constructors = {50: resnet50, 101: resnet101}
    return constructors[depth](weights=None, num_classes=num_classes)


RESNET50 = ModelSpec(build=partial(build, depth=50), head=("fc",), unfreeze_from="layer4",
                     pretrained_map=drop_prefix("fc"))
RESNET101 = ModelSpec(build=partial(build, depth=101), head=("fc",), unfreeze_from="layer4",
                      pretrained_map=drop_prefix("fc"))
