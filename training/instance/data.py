"""Instance data, torch-free: the validated import, and one image's masks at a given size.

Data come from :func:`nerveseg.training.importers.import_dataset` (COCO JSON, per-class
image/mask folders, Supervisely objects), which validates and returns per image its
``item`` (the key in split lists), path and ``(class, mask)`` instance records. One rule
is added here for per-class folders: the same image (byte for byte, e.g. the hard links
``nerveseg synth instances`` writes) under several ``image/<Class>/`` folders is **one**
image holding the instances of every such class; otherwise each class folder's copy would
teach the model that the other classes' objects are background.
"""

from __future__ import annotations

import dataclasses
import filecmp
from pathlib import Path

import cv2
import numpy as np

from ..data import read_rgb
from ..importers import ImportedDataset, Sample, import_dataset


def load_instances(root: str | Path, layout: str = "auto", skip_bad: bool = False,
                   annotations: str | Path | None = None) -> ImportedDataset:
    """Import and validate ``root`` for instance training (one-line refusal otherwise)."""
    dataset = import_dataset(root, layout, task="instance", skip_bad=skip_bad, annotations=annotations)
    return merge_shared_images(dataset) if dataset.layout == "class_masks" else dataset


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.samefile(b) or filecmp.cmp(a, b, shallow=False)
    except OSError:
        return False


def merge_shared_images(dataset: ImportedDataset) -> ImportedDataset:
    """Per-class folders: samples whose images are the same file under one name merge into
    the first (sorted) item, with all their instances (see the module docstring)."""
    merged: list[Sample] = []
    by_name: dict[str, list[int]] = {}
    count = 0
    for sample in sorted(dataset.samples, key=lambda s: s.item):
        twin = next((k for k in by_name.get(sample.image.name, ())
                     if merged[k].size == sample.size and _same_file(merged[k].image, sample.image)), None)
        if twin is None:
            by_name.setdefault(sample.image.name, []).append(len(merged))
            merged.append(sample)
            continue
        merged[twin] = dataclasses.replace(merged[twin], instances=merged[twin].instances + sample.instances)
        count += 1
    if not count:
        return dataset
    note = f"{count} copies of images shared by several class folders merged into one image each"
    return dataclasses.replace(dataset, samples=tuple(merged), notes=dataset.notes + (note,))


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
