"""The torch side of instance data: a dataset of torchvision detection targets, and collate.

A sample is ``(image, target)``: ``image`` ``(3, S, S) uint8`` RGB (uint8 until the model,
which normalises inside, as the engine does) and ``target`` torchvision's detection dict:
``boxes (K, 4) float32`` x0, y0, x1, y1 (pixel edges: x1 is one past the last column),
``labels (K,) int64`` (1-based; 0 is background) and ``masks (K, S, S) uint8``.

Augmentation is :func:`nerveseg.training.datasets.build_transforms` (torchvision.transforms.v2:
flips, rotation, random resized crop, brightness/contrast) applied to the image and the
``tv_tensors.Mask`` stack together. Boxes are then *derived from the moved masks*, so they
stay tight and aligned whatever the geometry (a rotated box would only grow); an instance
that the crop leaves with fewer than ``min_pixels`` pixels is dropped.
"""

from __future__ import annotations

import torch
from torch.utils.data import Dataset
from torchvision import tv_tensors
from torchvision.transforms import v2

from ..importers import ImportedDataset
from .data import read_instances

MIN_PIXELS = 4


def targets_from_masks(labels: torch.Tensor, masks: torch.Tensor, min_pixels: int = MIN_PIXELS) -> dict:
    """torchvision target dict from ``labels (K,)`` and ``masks (K, H, W)`` (any dtype, > 0 =
    inside): instances under ``min_pixels`` dropped, tight pixel-edge boxes computed."""
    masks = masks > 0
    keep = masks.flatten(1).sum(1) >= min_pixels if len(masks) else torch.zeros(0, dtype=torch.bool)
    masks, labels = masks[keep], labels[keep]
    boxes = torch.zeros((len(masks), 4), dtype=torch.float32)
    for k, mask in enumerate(masks):
        ys, xs = torch.nonzero(mask, as_tuple=True)
        boxes[k] = torch.stack([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]).float()
    return {"boxes": boxes, "labels": labels.to(torch.int64), "masks": masks.to(torch.uint8)}


class InstanceDataset(Dataset):
    """``items`` of an imported instance ``dataset`` at ``size = (S, S)``; see the module docstring."""

    def __init__(self, dataset: ImportedDataset, items: list[str], size: tuple[int, int],
                 transforms: v2.Compose | None = None, min_pixels: int = MIN_PIXELS):
        samples = dataset.by_item()
        missing = [item for item in items if item not in samples]
        if missing:
            raise KeyError(f"{dataset.root}: {len(missing)} split items are not in the dataset "
                           f"(first: {missing[0]})")
        self.dataset, self.samples = dataset, [samples[item] for item in items]
        self.size, self.transforms, self.min_pixels = tuple(size), transforms, min_pixels

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, dict]:
        image, labels, masks = read_instances(self.dataset, self.samples[index], self.size)
        image = tv_tensors.Image(torch.from_numpy(image).permute(2, 0, 1).contiguous())
        masks = tv_tensors.Mask(torch.from_numpy(masks).to(torch.uint8))
        if self.transforms is not None:
            image, masks = self.transforms(image, masks)
        target = targets_from_masks(torch.from_numpy(labels), masks.as_subclass(torch.Tensor), self.min_pixels)
        return image.as_subclass(torch.Tensor), target


def collate(batch: list[tuple[torch.Tensor, dict]]) -> tuple[list[torch.Tensor], list[dict]]:
    """Lists, not stacks: every image has its own number of instances."""
    images, targets = zip(*batch)
    return list(images), list(targets)
