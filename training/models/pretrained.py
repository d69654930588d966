"""Loading ImageNet weights from a local torchvision state dict (never downloaded)."""

from __future__ import annotations

import logging
from pathlib import Path

from .spec import ModelConfigError, ModelSpec

log = logging.getLogger(__name__)


def load_pretrained(model, spec: ModelSpec, path: str | Path) -> int:
    """Copy the tensors of the torchvision state dict at ``path`` into ``model``.

    Keys are renamed by ``spec.pretrained_map``; the task head is left at its random
    init. Returns the number of tensors loaded. Raises :class:`ModelConfigError` (one line naming
    the file) if the file is not a state dict or its shapes do not fit this model,
    e.g. weights for width 1.0 given to a width-0.5 network.
    """
    import torch

    path = Path(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle, zip and torch errors alike: the file is unusable
        raise ModelConfigError(f"{path}: cannot read pretrained weights ({type(exc).__name__})") from None
    if isinstance(state, dict) and "model" in state and isinstance(state["model"], dict):
        state = state["model"]  # a torchvision-references checkpoint
    if not isinstance(state, dict):
        raise ModelConfigError(f"{path}: pretrained weights are not a state dict")
    own = model.state_dict()
    mapped, wrong = {}, []
    for key, tensor in state.items():
        target = spec.pretrained_map(key)
        if target is None or target not in own:
            continue
        if own[target].shape != tensor.shape:
            wrong.append(f"{key} {tuple(tensor.shape)} vs {tuple(own[target].shape)}")
            continue
        mapped[target] = tensor
    if wrong or not mapped:
        detail = wrong[0] if wrong else "no key matches this model"
        raise ModelConfigError(f"{path}: pretrained weights do not fit this model ({len(wrong)} shape "
                         f"mismatches, e.g. {detail})")
    model.load_state_dict(mapped, strict=False)
    log.info("loaded %d pretrained tensors from %s", len(mapped), path)
    return len(mapped)
