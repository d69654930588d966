"""torch datasets and torchvision.transforms.v2 augmentation for both tasks.

A sample is ``(image, target)``: ``image`` a ``(3, H, W) uint8`` tensor (RGB), target a
class index (classification) or a ``(1, H, W) uint8`` mask in {0, 1} (segmentation).
Images stay uint8 until :class:`~nerveseg.training.models.NormalizedModel` so that the
normalisation lives in one place: the model that gets exported.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch.utils.data import Dataset
from torchvision import tv_tensors
from torchvision.transforms import v2

from .data import label_of, mask_path, read_mask, read_rgb


@dataclass(frozen=True)
class Augment:
    """Training augmentation; a zero switches a step off. Rotation in degrees, the
    rest are probabilities (flips) or ± fractions (brightness, contrast), and
    ``scale_min`` the smallest crop area fraction for the random resized crop."""

    hflip: float = 0.5
    vflip: float = 0.5
    rotate: float = 10.0
    brightness: float = 0.2
    contrast: float = 0.2
    scale_min: float = 0.8


def build_transforms(size: tuple[int, int], augment: Augment | None) -> v2.Compose | None:
    """The v2 pipeline (``None`` for evaluation). Geometric steps move image and
    ``tv_tensors.Mask`` together; colour steps touch the image only."""
    if augment is None:
        return None
    steps = []
    if augment.hflip > 0:
        steps.append(v2.RandomHorizontalFlip(augment.hflip))
    if augment.vflip > 0:
        steps.append(v2.RandomVerticalFlip(augment.vflip))
    if augment.rotate > 0:
        steps.append(v2.RandomRotation(augment.rotate))
    if augment.scale_min < 1:
        steps.append(v2.RandomResizedCrop(size, scale=(augment.scale_min, 1.0),
                                          ratio=(0.9, 1.1), antialias=True))
    if augment.brightness > 0 or augment.contrast > 0:
        steps.append(v2.ColorJitter(brightness=augment.brightness, contrast=augment.contrast))
    return v2.Compose(steps) if steps else None


class _Base(Dataset):
    def __init__(self, root: str | Path, items: list[str], size: tuple[int, int],
                 transforms: v2.Compose | None = None):
        self.root, self.items = Path(root), list(items)
        self.size, self.transforms = tuple(size), transforms

    def __len__(self) -> int:
        return len(self.items)

    def _image(self, index: int) -> tv_tensors.Image:
        array = read_rgb(self.root / self.items[index], self.size)
        return tv_tensors.Image(torch.from_numpy(array).permute(2, 0, 1).contiguous())


class ClassificationDataset(_Base):
    """Items ``<class>/<file>``; target is the index of ``<class>`` in ``classes``."""

    def __init__(self, root, items, size, classes: tuple[str, ...], transforms=None):
        super().__init__(root, items, size, transforms)
        self.classes = tuple(classes)
        self.targets = [label_of(item, self.classes) for item in self.items]

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        image = self._image(index)
        if self.transforms is not None:
            image = self.transforms(image)
        return image.as_subclass(torch.Tensor), self.targets[index]


class SegmentationDataset(_Base):
    """Items ``<ds>/img/<file>``; target the ``(1, H, W) uint8`` mask from ``masks_machine``."""

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        image = self._image(index)
        mask = read_mask(mask_path(self.root, self.items[index]), self.size)
        mask = tv_tensors.Mask(torch.from_numpy(mask)[None])
        if self.transforms is not None:
            image, mask = self.transforms(image, mask)
        return image.as_subclass(torch.Tensor), mask.as_subclass(torch.Tensor)
