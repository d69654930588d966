"""The epoch loops every model family shares: :func:`train_one_epoch` and :func:`evaluate`.

A *step* turns one batch into ``(loss, count, scores)``: the summed-over-batch mean
``loss`` tensor, the number of samples, and an optional ``(count,)`` numpy array of a
per-sample metric (accuracy 0/1, IoU). :func:`supervised_step` is the gate's and the
segmenter's; another family passes its own (``step=``), e.g. Mask R-CNN's loss dict
summed, or an image + region input. The loops add device transfer, mixed precision
(CUDA only, :class:`~torch.amp.GradScaler`), frozen-BatchNorm handling, a progress bar
and the reduction over torchrun processes.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from tqdm import tqdm

from . import distributed, freeze
from .metrics import iou_dice

METRIC = {"classify": "accuracy", "segment": "iou"}
Step = Callable[..., tuple[torch.Tensor, int, "np.ndarray | None"]]


def device_of(model: torch.nn.Module) -> torch.device:
    return next(model.parameters()).device


def score(task: str, output: torch.Tensor, target: torch.Tensor) -> np.ndarray:
    """Per-sample task metric: correct (0/1) or IoU at logit 0 (= probability 0.5)."""
    if task == "classify":
        return (output.argmax(1) == target).float().cpu().numpy()
    return iou_dice((output[:, 0] > 0).cpu().numpy(), (target[:, 0] > 0).cpu().numpy())[0]


def supervised_step(model, batch, criterion, args) -> tuple[torch.Tensor, int, np.ndarray]:
    """``batch = (images (N, 3, H, W) uint8, targets)``: class indices ``(N,)`` int64 or
    masks ``(N, 1, H, W)`` uint8. The forward runs under autocast; the loss in float32
    (a Dice sum over a large mask can overflow float16). A model that answers a tuple
    in training (:func:`set_aux_outputs`) is deeply supervised: loss = criterion(first)
    + ``args.aux_weight`` × criterion(each other); the score is the first's."""
    device = device_of(model)
    images, targets = (t.to(device, non_blocking=True) for t in batch)
    with distributed.autocast(device, distributed.use_amp(args, device)):
        output = model(images.permute(0, 2, 3, 1))  # (N,3,H,W) → the engine's (N,H,W,3)
    output, *aux = output if isinstance(output, tuple) else (output,)
    targets_f = targets.float() if args.task != "classify" else targets
    loss = criterion(output.float(), targets_f)
    for extra in aux:
        loss = loss + args.aux_weight * criterion(extra.float(), targets_f)
    return loss, len(images), score(args.task, output.detach(), targets)


def set_aux_outputs(model: torch.nn.Module, on: bool) -> bool:
    """Switch the auxiliary training outputs of every submodule that has them (DoubleUNet's
    first mask); True when ``model`` has any."""
    found = [m for m in model.modules() if hasattr(m, "aux_outputs")]
    for module in found:
        module.aux_outputs = on
    return bool(found)


class _Totals:
    """Sample-weighted sums, reduced over torchrun processes at the end."""

    def __init__(self):
        self.loss = self.count = self.score = self.scored = 0.0

    def add(self, loss: float, count: int, scores: np.ndarray | None) -> None:
        self.loss += loss * count
        self.count += count
        if scores is not None:
            self.score += float(np.sum(scores))
            self.scored += len(scores)

    def result(self, metric: str, device: torch.device) -> dict[str, float]:
        loss, count, total, scored = distributed.all_reduce_sums(
            [self.loss, self.count, self.score, self.scored], device)
        # nan when nothing was scored (an empty split, or a step without a per-sample metric)
        nan = float("nan")
        return {"loss": loss / count if count else nan, metric: total / scored if scored else nan}


def train_one_epoch(model, criterion, optimizer, loader, epoch: int, args, *,
                    scaler: torch.amp.GradScaler | None = None, step: Step | None = None) -> dict[str, float]:
    """One pass over ``loader``; returns ``{"loss", <metric>}`` averaged over samples
    (over every process under torchrun). ``model`` may be DDP-wrapped; its bare
    :class:`NormalizedModel` (``.model``) gets frozen BatchNorm layers put back in eval."""
    step = step or supervised_step
    model.train()
    freeze.freeze_batchnorm_stats(distributed.unwrap(model).model)
    device, totals = device_of(model), _Totals()
    scaler = scaler or distributed.grad_scaler(device, enabled=False)
    bar = tqdm(loader, desc=f"epoch {epoch + 1} train", leave=False, disable=None)
    for batch in bar:
        loss, count, scores = step(model, batch, criterion, args)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        totals.add(loss.item(), count, scores)
        bar.set_postfix(loss=f"{totals.loss / max(totals.count, 1):.4f}")
    return totals.result(METRIC.get(args.task, "score"), device)


@torch.inference_mode()
def evaluate(model, criterion, loader, args, *, step: Step | None = None) -> dict[str, float]:
    """Loss and task metric over ``loader`` (every process's shard under torchrun)."""
    step = step or supervised_step
    model.eval()
    device, totals = device_of(model), _Totals()
    for batch in tqdm(loader, desc="val", leave=False, disable=None):
        loss, count, scores = step(model, batch, criterion, args)
        totals.add(loss.item(), count, scores)
    return totals.result(METRIC.get(args.task, "score"), device)
