"""Shared by every importer: reading files in parallel, counting, and the one refusal.

An importer scans its layout into candidate :class:`Sample` records, per-sample class
statistics and a list of :class:`Problem`; :func:`finish` drops the samples a problem
names, counts per class, adds empty classes, and either refuses in one line naming the
files or (``skip_bad``) returns the rest with the problems as the skipped list.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from nerveseg.engines.errors import UserError

from ..threads import parallel  # noqa: F401  (the importers take it from here)

from .records import PROBLEM_KINDS, ImportedDataset, Problem, Sample, read_label_png

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
SHOWN = 3  # files named per problem kind in the one-line refusal
PLURALS = {"image without mask": "images without mask", "mask of another size": "masks of another size",
           "unknown class id": "unknown class ids", "empty class": "empty classes",
           "unreadable file": "unreadable files", "bad annotation": "bad annotations"}


class ImportRefused(UserError):
    """Validation failed; the message names the files (one line)."""


def images_in(folder: Path) -> list[Path]:
    """Image files directly in ``folder``, sorted (hidden files skipped)."""
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir()
                  if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file() and not p.name.startswith("."))


def image_shape(path: Path) -> tuple[int, int] | None:
    """``(H, W)`` of an image decoded as training decodes it, ``None`` if unreadable."""
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    return None if image is None else image.shape[:2]


def rel(root: Path, path: Path) -> str:
    """``path`` relative to ``root`` with ``/`` separators (as split lists hold it)."""
    try:
        return Path(path).relative_to(root).as_posix()
    except ValueError:
        return str(path)


def label_stats(labels: np.ndarray, classes: tuple[str, ...]) -> dict[str, int] | None:
    """Pixels per class of an ``(H, W)`` id mask, or ``None`` if it holds an unknown id.

    Two classes (background + one) are binary: any non-zero value is the second class,
    as 0/255 PNGs are common; with more classes a value must be a class index."""
    if len(classes) == 2:
        fg = int(np.count_nonzero(labels))
        return {classes[0]: labels.size - fg, classes[1]: fg}
    counts = np.bincount(labels.ravel().astype(np.int64), minlength=len(classes))
    if counts.size > len(classes) and counts[len(classes):].any():
        return None
    return {name: int(counts[k]) for k, name in enumerate(classes)}


def unknown_ids(labels: np.ndarray, classes: tuple[str, ...]) -> list[int]:
    values = np.unique(labels)
    return [int(v) for v in values if v >= len(classes)]


def gather(results) -> tuple[list, dict, list]:
    """``(samples, stats, problems)`` from each image's ``(sample or None, counts, problems)``:
    the samples that passed, their counts by item, every problem."""
    samples, stats, problems = [], {}, []
    for sample, counts, found in results:
        problems += found
        if sample is not None:
            samples.append(sample)
            stats[sample.item] = counts
    return samples, stats, problems


def finish(root: Path, layout: str, kind: str, classes: tuple[str, ...], samples: list[Sample],
           stats: dict[str, dict[str, int]], problems: list[Problem], skip_bad: bool,
           class_paths: dict[str, str] | None = None, notes: list[str] | None = None,
           countable: tuple[str, ...] | None = None) -> ImportedDataset:
    """Validate what an importer found and build the dataset (see the module docstring).

    ``stats[item][class]`` is that sample's amount of the class (pixels, instances or 1);
    ``countable`` the classes that must not be empty (default: all but a segmentation
    background); ``class_paths[class]`` the file or folder an empty class is reported at.
    """
    bad = {p.item for p in problems if p.item}
    kept = [s for s in samples if s.item not in bad]
    counts = _counts(kind, classes, kept, stats)
    countable = countable if countable is not None else (classes[1:] if kind == "segment" else classes)
    for name in countable:
        if counts[name]["images"] == 0:
            problems.append(Problem("empty class", (class_paths or {}).get(name, str(root)),
                                    f"class {name!r} has no examples"))
    if problems and not skip_bad:
        raise ImportRefused(refusal(root, problems))
    if not kept:
        raise ImportRefused(f"{root}: no usable images ({layout} layout)"
                            + (f"; {len(problems)} problems skipped" if problems else ""))
    return ImportedDataset(root, layout, kind, tuple(classes), tuple(kept), counts,
                           tuple(problems), tuple(notes or ()))


def _counts(kind: str, classes, kept: list[Sample], stats) -> dict[str, dict[str, int]]:
    unit = {"segment": "pixels", "instance": "instances"}.get(kind)
    counts = {name: {"images": 0, **({unit: 0} if unit else {})} for name in classes}
    for sample in kept:
        for name, amount in stats.get(sample.item, {}).items():
            if amount > 0 and name in counts:
                counts[name]["images"] += 1
                if unit:
                    counts[name][unit] += int(amount)
    return counts


def refusal(root: Path, problems: list[Problem]) -> str:
    """One line: per problem kind, how many and the first files, then the way out."""
    parts = []
    for kind in PROBLEM_KINDS:
        found = [p for p in problems if p.kind == kind]
        if not found:
            continue
        names = ", ".join(f"{p.path}{f' ({p.detail})' if p.detail else ''}" for p in found[:SHOWN])
        more = f", +{len(found) - SHOWN} more" if len(found) > SHOWN else ""
        plural = kind if len(found) == 1 else PLURALS[kind]
        parts.append(f"{len(found)} {plural}: {names}{more}")
    return f"{root}: refused: " + "; ".join(parts) + " (fix them, or --skip-bad to go on without them)"


def write_skipped(path: Path, dataset: ImportedDataset) -> Path | None:
    """``kind<TAB>file<TAB>detail`` per skipped problem; ``None`` (no file) if none."""
    if not dataset.skipped:
        return None
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(p.line() + "\n" for p in dataset.skipped))
    return path


def check_pair(root: Path, image: Path, mask: Path | None, classes: tuple[str, ...],
               group: str = "") -> tuple[Sample | None, dict[str, int], list[Problem]]:
    """Validate one image and its semantic id mask (pixel value = class index).

    Returns the sample (``None`` if refused), its pixels per class and its problems."""
    item = rel(root, image)
    shape = image_shape(image)
    if shape is None:
        return None, {}, [Problem("unreadable file", item, "cannot decode image", item)]
    if mask is None or not mask.is_file():
        expected = rel(root, mask) if mask is not None else "no mask file"
        return None, {}, [Problem("image without mask", item, f"expected {expected}", item)]
    labels = read_label_png(mask)
    if labels is None:
        return None, {}, [Problem("unreadable file", rel(root, mask), "cannot decode mask", item)]
    if labels.shape != shape:
        detail = f"{labels.shape[0]}x{labels.shape[1]}, image {shape[0]}x{shape[1]}"
        return None, {}, [Problem("mask of another size", rel(root, mask), detail, item)]
    stats = label_stats(labels, classes)
    if stats is None:
        bad = ", ".join(map(str, unknown_ids(labels, classes)[:5]))
        detail = f"values {bad} not in 0..{len(classes) - 1} ({', '.join(classes)})"
        return None, {}, [Problem("unknown class id", rel(root, mask), detail, item)]
    return Sample(item, image, shape, mask=mask, group=group), stats, []


def find_mask(folder: Path, stem: str) -> Path | None:
    """``folder/<stem>.png``, else ``<stem>`` with another image suffix, else ``None``."""
    for suffix in (".png", *IMAGE_SUFFIXES):
        path = folder / f"{stem}{suffix}"
        if path.is_file():
            return path
    return None
