"""Folder layouts: class folders (classification), image/mask folder pairs (semantic),
and per-class image/mask folders (instances).

* ``classes``:     ``DATA/<class>/*.png``
* ``pairs``:       ``DATA/images/x.png`` + ``DATA/masks/x.png`` (pixel value = class id)
* ``class_masks``: ``DATA/image/<Class>/x.png`` + ``DATA/mask/<Class>/x.png``; every
  distinct non-zero value of a mask is one instance of ``<Class>``, and a mask with a
  single value is split into its 8-connected components (one object per blob).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import cv2
import numpy as np

from nerveseg.engines.errors import UserError

from ..split_keys import file_digest
from .common import check_pair, find_mask, finish, gather, image_shape, images_in, parallel, rel
from .records import ImportedDataset, Instance, MaskRef, Problem, Sample, read_label_png

SEG_CLASSES = ("background", "nerve")
IMAGE_DIRS = ("images", "image")
MASK_DIRS = ("masks", "mask")


def subfolders(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def first_dir(root: Path, names: tuple[str, ...]) -> Path | None:
    return next((root / n for n in names if (root / n).is_dir()), None)


def import_classes(root: Path, classes=None, skip_bad: bool = False, **_) -> ImportedDataset:
    """``DATA/<class>/*``; ``classes`` fixes names and logit order (default: every folder)."""
    found = subfolders(root)
    names = tuple(classes) if classes else tuple(found)
    if not names:
        raise UserError(f"{root}: no class folders (expected DATA/<class>/*.png)")
    candidates = [(name, path) for name in names for path in images_in(root / name)]
    shapes = parallel(image_shape, [path for _, path in candidates])
    samples, stats, problems = [], {}, []
    for (name, path), shape in zip(candidates, shapes):
        item = rel(root, path)
        if shape is None:
            problems.append(Problem("unreadable file", item, "cannot decode image", item))
            continue
        samples.append(Sample(item, path, shape, label=name, group=name))
        stats[item] = {name: 1}
    ignored = [name for name in found if name not in names]
    notes = [f"folders not in the class list, ignored: {', '.join(ignored)}"] if ignored else []
    paths = {name: f"{name}/" + ("" if (root / name).is_dir() else " (folder missing)") for name in names}
    return finish(root, "classes", "classify", names, samples, stats, problems, skip_bad, paths, notes)


def import_pairs(root: Path, classes=None, skip_bad: bool = False, **_) -> ImportedDataset:
    """``DATA/images/*`` + ``DATA/masks/<same stem>.png``; ``classes[0]`` is background."""
    images, masks = first_dir(root, IMAGE_DIRS), first_dir(root, MASK_DIRS)
    if images is None or masks is None:
        raise UserError(f"{root}: expected {'|'.join(IMAGE_DIRS)}/ and {'|'.join(MASK_DIRS)}/ folders")
    names = tuple(classes) if classes else SEG_CLASSES
    pairs = [(path, find_mask(masks, path.stem) or masks / f"{path.stem}.png") for path in images_in(images)]
    results = parallel(lambda pair: check_pair(root, pair[0], pair[1], names), pairs)
    return _semantic(root, "pairs", names, results, skip_bad)


def _semantic(root, layout, names, results, skip_bad, notes=None, class_paths=None) -> ImportedDataset:
    samples, stats, problems = gather(results)
    return finish(root, layout, "segment", names, samples, stats, problems, skip_bad, class_paths, notes)


def png_instances(path: Path, labels: np.ndarray, label: str) -> list[Instance]:
    """One :class:`Instance` per non-zero value, or per blob when there is one value."""
    values = [int(v) for v in np.unique(labels) if v != 0]
    shape = labels.shape[:2]
    if len(values) == 1:
        count, _ = cv2.connectedComponents((labels == values[0]).astype(np.uint8), connectivity=8)
        return [Instance(label, MaskRef("png", shape, str(path), values[0], c)) for c in range(count - 1)]
    return [Instance(label, MaskRef("png", shape, str(path), v)) for v in values]


def import_class_masks(root: Path, classes=None, skip_bad: bool = False, **_) -> ImportedDataset:
    """``DATA/image/<Class>/x`` + ``DATA/mask/<Class>/x.png`` → instance samples."""
    images, masks = first_dir(root, ("image", "images")), first_dir(root, ("mask", "masks"))
    if images is None or masks is None:
        raise UserError(f"{root}: expected image/<Class>/ and mask/<Class>/ folders")
    found = subfolders(images)
    names = tuple(classes) if classes else tuple(found)
    problems = [Problem("unknown class id", rel(root, images / name) + "/",
                        f"class folder not in the class list {', '.join(names)}")
                for name in found if name not in names]
    jobs = [(name, path, find_mask(masks / name, path.stem) or masks / name / f"{path.stem}.png")
            for name in names for path in images_in(images / name)]
    samples, stats = [], {}
    for sample, count, found_problems in parallel(lambda job: _instance_pair(root, *job), jobs):
        problems += found_problems
        if sample is not None:
            samples.append(sample)
            stats[sample.item] = {sample.group: count}
    samples, stats, merged = merge_copies(samples, stats)
    notes = [f"{merged} copies of images shared by several class folders merged into one image each"] \
        if merged else []
    paths = {name: rel(root, images / name) + "/" for name in names}
    return finish(root, "class_masks", "instance", names, samples, stats, problems, skip_bad, paths, notes)


def merge_copies(samples: list[Sample], stats: dict[str, dict[str, int]]):
    """Per-class folders: the same image (by content, e.g. the hard links ``nerveseg synth
    instances`` writes) under several ``image/<Class>/`` folders is **one** image holding
    every class's instances (else each copy would teach that the other classes' objects
    are background, and a split could put the copies on two sides). The first item (sorted)
    keeps the sample; the others become its ``aliases``. Returns ``(samples, stats, merged)``."""
    kept: dict[tuple[str, str], Sample] = {}
    merged_stats: dict[str, dict[str, int]] = {}
    digests = parallel(lambda s: file_digest(s.image), samples)
    classes_of: dict[str, set[str]] = {}
    for sample, digest in sorted(zip(samples, digests), key=lambda pair: pair[0].item):
        # A copy within one class folder stays a sample of its own (a split still keeps
        # it with its twin): merging would double that class's instances.
        seen = classes_of.setdefault(digest, set())
        key = (digest, "") if sample.group not in seen else (digest, sample.item)
        seen.add(sample.group)
        first = kept.get(key)
        if first is None:
            kept[key] = sample
            merged_stats[sample.item] = dict(stats.get(sample.item, {}))
            continue
        kept[key] = dataclasses.replace(first, instances=first.instances + sample.instances,
                                           aliases=first.aliases + (sample.item,))
        for name, amount in stats.get(sample.item, {}).items():
            merged_stats[first.item][name] = merged_stats[first.item].get(name, 0) + amount
    return list(kept.values()), merged_stats, len(samples) - len(kept)


def _instance_pair(root: Path, name: str, image: Path, mask: Path):
    """Check one per-class image/mask pair: ``(Sample | None, instances, problems)``."""
    item = rel(root, image)
    shape = image_shape(image)
    if shape is None:
        return None, 0, [Problem("unreadable file", item, "cannot decode image", item)]
    if not mask.is_file():
        return None, 0, [Problem("image without mask", item, f"expected {rel(root, mask)}", item)]
    labels = read_label_png(mask)
    if labels is None:
        return None, 0, [Problem("unreadable file", rel(root, mask), "cannot decode mask", item)]
    if labels.shape != shape:
        detail = f"{labels.shape[0]}x{labels.shape[1]}, image {shape[0]}x{shape[1]}"
        return None, 0, [Problem("mask of another size", rel(root, mask), detail, item)]
    instances = tuple(png_instances(mask, labels, name))
    return Sample(item, image, shape, instances=instances, group=name), len(instances), []
