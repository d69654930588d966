"""Segmentation loss: BCE + soft Dice on the mask logits."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


class BCEDiceLoss(nn.Module):
    """``bce + dice_weight * (1 - soft Dice)``.

    BCE gives every pixel a gradient; Dice counters the class imbalance of a nerve
    band that covers a few percent of the frame. Soft Dice is computed per image and
    averaged, with ``smooth`` so an empty mask predicted empty scores ≈ 1 (matches the
    empty-vs-empty = 1 convention of :mod:`nerveseg.training.metrics`).

    ``logits``: ``(N, 1, H, W) float32``; ``target``: ``(N, 1, H, W)`` in {0, 1}.
    """

    def __init__(self, dice_weight: float = 1.0, smooth: float = 1.0):
        super().__init__()
        self.dice_weight, self.smooth = dice_weight, smooth

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        target = target.float()
        bce = F.binary_cross_entropy_with_logits(logits, target)
        prob = torch.sigmoid(logits).flatten(1)
        flat = target.flatten(1)
        inter = (prob * flat).sum(1)
        dice = (2 * inter + self.smooth) / (prob.sum(1) + flat.sum(1) + self.smooth)
        return bce + self.dice_weight * (1 - dice.mean())
