"""What the training code needs to know about one architecture."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable


class ModelConfigError(ValueError):
    """A wrong model name, layer name or pretrained file: user input, reported in one line."""


@dataclass(frozen=True)
class ModelSpec:
    """One registered architecture.

    ``build(num_classes, **kwargs)`` returns an ``nn.Module``. ``head`` holds the
    prefixes of the parameters that are new for our task (trained alone in phase 1
    while the pretrained base is frozen). ``unfreeze_from`` is the default first layer trained in phase 2.
    ``pretrained_map(key) -> key | None`` renames a torchvision ImageNet state-dict key
    to this model's key (``None`` drops it, e.g. the 1000-class head).
    """

    build: Callable
    head: tuple[str, ...]
    unfreeze_from: str
    pretrained_map: Callable[[str], str | None]
    defaults: dict = field(default_factory=dict)


def drop_prefix(prefix: str) -> Callable[[str], str | None]:
    """A ``pretrained_map`` that keeps every key except those under ``prefix``."""
    return lambda key: None if key.startswith(prefix + ".") else key
