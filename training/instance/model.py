"""Building an instance model from the ``INSTANCE`` registry, fresh or from a checkpoint."""

from __future__ import annotations

from pathlib import Path

import torch

from nerveseg.engines.metadata import EngineError, EngineMeta

from ..checkpoint import read_checkpoint
from ..models import INSTANCE, ModelConfigError, ModelSpec
from ..models.maskrcnn import InstanceModel


def get_instance_spec(name: str) -> ModelSpec:
    """The spec registered as ``name``; a wrong name lists the valid ones."""
    if name not in INSTANCE:
        raise ModelConfigError(f"unknown instance model {name!r}; choose one of {', '.join(sorted(INSTANCE))}")
    return INSTANCE[name]


def build_instance_model(name: str, classes: tuple[str, ...], size: int, **kwargs) -> InstanceModel:
    """A fresh ``name`` detector for ``classes`` (``classes[0]`` is ``background``) at
    ``size`` px, inside the engine-contract wrapper."""
    if not classes or classes[0] != "background":
        raise ModelConfigError(f"instance classes must start with 'background', not {list(classes)[:3]}")
    detector = get_instance_spec(name).build(num_classes=len(classes), size=size, **kwargs)
    return InstanceModel(detector)


def checkpoint_task(path: str | Path) -> str | None:
    """The task a nerveseg checkpoint was trained for, or None when it cannot tell.
    Memory-mapped, so peeking before the real load costs no tensor reads."""
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        return ckpt["meta"]["task"]
    except Exception:  # unreadable or foreign files: the real loader reports them properly
        return None


def instance_from_checkpoint(path: str | Path) -> tuple[InstanceModel, EngineMeta, dict]:
    """Rebuild ``(InstanceModel in eval mode, meta, checkpoint)``; :class:`EngineError`
    (one line naming the file) when it is not an instance checkpoint or does not rebuild."""
    ckpt = read_checkpoint(path)
    meta = EngineMeta.from_dict(ckpt["meta"], path)
    meta.expect(path, task="instance")
    try:
        model = build_instance_model(ckpt["arch"], meta.classes, meta.input_size[0], **ckpt["arch_kwargs"])
        model.model.load_state_dict(ckpt["model"])
    except (ValueError, RuntimeError, TypeError) as exc:
        detail = " ".join(str(exc).split())[:200]
        raise EngineError(f"{path}: checkpoint does not rebuild ({detail})") from None
    return model.eval(), meta, ckpt
