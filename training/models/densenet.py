"""DenseNet gates (DenseNet169/201): torchvision networks with a new ``classifier``."""

from __future__ import annotations

import re
from functools import partial

from .spec import ModelSpec

# Old torchvision DenseNet checkpoints name layers "norm.1"; the module names "norm1".
_OLD_KEY = re.compile(r"^(.*denselayer\d+\.(?:norm|relu|conv))\."
                      r"((?:[12])\.(?:weight|bias|running_mean|running_var))$")


def build(num_classes: int, depth: int = 169):
    """torchvision DenseNet-``depth`` (random init); ``(N, 3, H, W)`` → ``(N, num_classes)``."""
    from torchvision.models import densenet169, densenet201

    constructors = {169: densenet169, 201: densenet201}
    return constructors[depth](weights=None, num_classes=num_classes)


def _map(key: str) -> str | None:
    if key.startswith("classifier."):
        return None
    match = _OLD_KEY.match(key)
    return match.group(1) + match.group(2) if match else key


DENSENET169 = ModelSpec(build=partial(build, depth=169), head=("classifier",),
                        unfreeze_from="features.denseblock4", pretrained_map=_map)
DENSENET201 = ModelSpec(build=partial(build, depth=201), head=("classifier",),
                        unfreeze_from="features.denseblock4", pretrained_map=_map)
