"""torch datasets over imported samples, and torchvision.transforms.v2 augmentation.

A sample is ``(image, target)``: ``image`` a ``(3, H, W) uint8`` tensor (RGB), target a
class index (classification) or a ``(1, H, W) uint8`` mask in {0, 1} (segmentation).
Images stay uint8 until :class:`~nerveseg.training.models.NormalizedModel` so that the
normalisation lives in one place: the model that gets exported. Samples are
:class:`~nerveseg.training.importers.Sample` records (validated by the importers).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch.utils.data import Dataset
from torchvision import tv_tensors
from torchvision.transforms import v2

from .data import read_class_mask, read_rgb
from .experiment import Augment
from .importers import Sample

__all__ = ["Augment", "build_transforms", "ClassificationDataset", "SegmentationDataset"]


def build_transforms(size: tuple[int, int], augment: Augment | None, boxes: bool = False) -> v2.Compose | None:
    """The v2 pipeline (``None`` for evaluation). Geometric steps move the image, every
    ``tv_tensors.Mask`` and ``tv_tensors.BoundingBoxes`` together; colour steps touch the
    image only.

    ``boxes=True`` (detection targets, called as ``t(image, {"boxes", "masks", "labels"})``)
    appends clamping to the canvas and :class:`~torchvision.transforms.v2.SanitizeBoundingBoxes`,
    which drops the boxes a crop or rotation pushed out (with their masks and labels). A
    rotated box is the box around the rotated corners: it contains the object, loosely.
    """
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
    if boxes:
        steps += [v2.ClampBoundingBoxes(), v2.SanitizeBoundingBoxes(min_size=1)]
    return v2.Compose(steps) if steps else None


class _Base(Dataset):
    def __init__(self, samples: Sequence[Sample], size: tuple[int, int],
                 transforms: v2.Compose | None = None):
        self.samples, self.size, self.transforms = list(samples), tuple(size), transforms

    def __len__(self) -> int:
        return len(self.samples)

    def _image(self, index: int) -> tv_tensors.Image:
        array = read_rgb(self.samples[index].image, self.size)
        return tv_tensors.Image(torch.from_numpy(array).permute(2, 0, 1).contiguous())


class ClassificationDataset(_Base):
    """Target: the index of ``sample.label`` in ``classes``."""

    def __init__(self, samples, size, classes: Sequence[str], transforms=None):
        super().__init__(samples, size, transforms)
        self.classes = tuple(classes)
        self.targets = [self.classes.index(s.label) for s in self.samples]

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        image = self._image(index)
        if self.transforms is not None:
            image = self.transforms(image)
        return image.as_subclass(torch.Tensor), self.targets[index]


class SegmentationDataset(_Base):
    """Target: the ``(1, H, W) uint8`` mask of ``sample.mask``: any non-zero pixel, or
    with ``foreground`` only that class id (see :func:`~nerveseg.training.data.read_class_mask`)."""

    def __init__(self, samples, size, transforms=None, foreground: int | None = None):
        super().__init__(samples, size, transforms)
        self.foreground = foreground

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        image = self._image(index)
        mask = read_class_mask(self.samples[index].mask, self.size, self.foreground)
        mask = tv_tensors.Mask(torch.from_numpy(mask)[None])
        if self.transforms is not None:
            image, mask = self.transforms(image, mask)
        return image.as_subclass(torch.Tensor), mask.as_subclass(torch.Tensor)
