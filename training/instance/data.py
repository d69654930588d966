"""Instance data, torch-free: the validated import, and one image's masks at a given size.

Data come from :func:`nerveseg.training.importers.import_dataset` (COCO JSON, per-class
image/mask folders, Supervisely objects), which validates and returns per image its
``item`` (the key in split lists), path and ``(class, mask)`` instance records. Per-class
folders holding the same image under several classes are merged into one image by the
importer (:func:`nerveseg.training.importers.folders.merge_copies`), so ``data check``,
``data split``, training and evaluation all see the same images.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from ..data import read_rgb
from ..importers import ImportedDataset, Sample, import_dataset


def load_instances(root: str | Path, layout: str = "auto", skip_bad: bool = False,
                   annotations: str | Path | None = None) -> ImportedDataset:
    """Import and validate ``root`` for instance training (one-line refusal otherwise)."""
    return import_dataset(root, layout, task="instance", skip_bad=skip_bad, annotations=annotations)


def read_instances(dataset: ImportedDataset, sample: Sample,
                   size: tuple[int, int] | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(image (H, W, 3) uint8 RGB, labels (K,) int64, masks (K, H, W) bool)`` of ``sample``,
    resized to ``size = (H, W)`` if given: the image with ``INTER_AREA`` as the runtime
    resizes frames, masks with nearest neighbour. Labels index ``("background", *classes)``."""
    image = read_rgb(sample.image, size)
    h, w = image.shape[:2]
    labels = np.array([dataset.classes.index(i.label) + 1 for i in sample.instances], np.int64)
    masks = np.zeros((len(labels), h, w), bool)
    for k, instance in enumerate(sample.instances):
        mask = instance.mask.decode().astype(np.uint8)
        if mask.shape != (h, w):
            mask = cv2.resize(mask, (w, h), interpolation=cv2.INTER_NEAREST)
        masks[k] = mask > 0
    return image, labels, masks


def engine_classes(dataset: ImportedDataset) -> tuple[str, ...]:
    """The class list an instance engine carries: ``background`` first, as the labels count."""
    return ("background", *dataset.classes)
