"""torch side of the region set: the dataset and the training step for a two-input model.

The shared loops of :mod:`nerveseg.training.loop` take a ``step``; :func:`region_step`
feeds ``model(image, region)`` (the exported ``NormalizedModel``) where the gate's and
segmenter's step feed ``model(image)``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from nerveseg.training import distributed
from nerveseg.training.loop import device_of, score

from .data import load_sample


class RegionDataset(Dataset):
    """Sample ``i``: ``(image (3, H, W) uint8 RGB, region (1, H, W) uint8 0/1, target (1, H, W) uint8 0/1)``.

    ``augment``: a random quarter turn and flip (moving image, region and answer
    together; the nesting is unchanged) and ±20 % brightness/contrast on the image.
    Randomness comes from torch's generator, which the training loop seeds per epoch.
    """

    def __init__(self, root: str | Path, samples: list[dict], size: tuple[int, int], augment: bool = False):
        self.root, self.samples, self.size, self.augment = Path(root), list(samples), tuple(size), augment

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        image, region, mask = load_sample(self.root, self.samples[index], self.size)
        if self.augment:
            image, region, mask = self._augment(image, region, mask)
        return tuple(torch.from_numpy(np.ascontiguousarray(a)) for a in
                     (image.transpose(2, 0, 1), region[None], mask[None]))

    @staticmethod
    def _augment(image, region, mask):
        turns, flip = int(torch.randint(4, ())), bool(torch.rand(()) < 0.5)
        arrays = [np.rot90(a, turns) for a in (image, region, mask)]
        if flip:
            arrays = [a[:, ::-1] for a in arrays]
        gain, shift = 1 + 0.4 * (torch.rand(2).numpy() - 0.5)
        mean = arrays[0].mean()
        arrays[0] = np.clip((arrays[0] - mean) * gain + mean * shift, 0, 255).astype(np.uint8)
        return arrays


def region_step(model, batch, criterion, args) -> tuple[torch.Tensor, int, np.ndarray]:
    """The loops' step for ``(images, regions, targets)`` batches: ``model(image (N, H, W, 3),
    region (N, H, W, 1))`` (engine layout), BCE + Dice in float32, per-sample IoU."""
    device = device_of(model)
    images, regions, targets = (t.to(device, non_blocking=True) for t in batch)
    with distributed.autocast(device, distributed.use_amp(args, device)):
        output = model(images.permute(0, 2, 3, 1), regions.permute(0, 2, 3, 1))
    loss = criterion(output.float(), targets.float())
    return loss, len(images), score("segment", output.detach(), targets)
