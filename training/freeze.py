"""The two-phase schedule of the original study: head alone, then fine-tune from a layer.

Phase 1 trains only the new head (``ModelSpec.head``) with the base frozen; phase 2
trains every parameter from ``unfreeze_from`` on (in registration order, which is
forward order for torchvision networks) at a tenth of the learning rate.
"""

from __future__ import annotations

from torch import nn

from .models import ModelConfigError


def layer_names(model: nn.Module, depth: int = 2) -> list[str]:
    """Module names down to ``depth`` dots (``features``, ``features.14``), for messages."""
    return [name for name, _ in model.named_modules() if name and name.count(".") < depth]


def freeze_head_only(model: nn.Module, head: tuple[str, ...]) -> int:
    """Phase 1: only parameters under a ``head`` prefix train. Returns how many tensors do."""
    count = 0
    for name, param in model.named_parameters():
        param.requires_grad = _under(name, head)
        count += param.requires_grad
    return count


def unfreeze_from(model: nn.Module, layer: str) -> int:
    """Phase 2: parameters from ``layer`` on train, those before it stay frozen.

    Raises :class:`ModelConfigError` listing the valid layer names if ``layer`` is not one.
    """
    names = [name for name, _ in model.named_parameters()]
    first = next((i for i, name in enumerate(names) if _under(name, (layer,))), None)
    if first is None:
        raise ModelConfigError(f"--unfreeze-from {layer!r} is not a layer of this model; choose one of "
                         f"{', '.join(layer_names(model))}")
    for index, (_, param) in enumerate(model.named_parameters()):
        param.requires_grad = index >= first
    return len(names) - first


def freeze_batchnorm_stats(model: nn.Module) -> None:
    """Put BatchNorm layers whose parameters are all frozen into eval mode.

    A frozen layer must not change: BN running statistics are buffers, not parameters,
    and would otherwise keep drifting in ``train()`` mode (Keras freezes them too).
    Call after every ``model.train()``.
    """
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            params = list(module.parameters(recurse=False))
            if params and not any(p.requires_grad for p in params):
                module.eval()


def _under(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)
