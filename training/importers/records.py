"""What an import returns: one frozen record per image, per instance, per problem.

Torch-free (numpy, OpenCV, pycocotools only where COCO needs it), so ``nerveseg data
check`` stays light and every model family reads the same records:

* :class:`Sample` — one image: its dataset-relative ``item`` (the key written in split
  lists), absolute ``image`` path, ``(H, W)`` size, and what the layout annotates:
  a class ``label`` (classification), a semantic ``mask`` PNG whose pixel values are
  class ids (0 = background), and/or ``instances``.
* :class:`Instance` — one object: its class name and a :class:`MaskRef` that decodes the
  ``(H, W) bool`` mask on demand (masks are not held in memory).
* :class:`ImportedDataset` — the samples that passed validation, the class list, the
  per-class counts and what ``--skip-bad`` left out.
"""

from __future__ import annotations

import base64
import json
import warnings
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np


@dataclass(frozen=True, eq=False)
class MaskRef:
    """Where one instance mask comes from; :meth:`decode` gives ``(H, W) bool``.

    ``kind`` is ``"png"`` (pixels of ``path`` equal to ``value``; with ``component >= 0``
    only that 8-connected component of them), ``"coco"`` (``geometry`` is a COCO polygon
    list or RLE dict), ``"supervisely"`` (``geometry`` is one Supervisely object) or
    ``"cvat"`` (``geometry``: ``{"kind": "mask", "rle", "box"}`` or ``{"kind": "polygon", "points"}``).
    """

    kind: str
    size: tuple[int, int]
    path: str = ""
    value: int = 0
    component: int = -1
    geometry: Any = None

    def decode(self) -> np.ndarray:
        return DECODERS[self.kind](self)


@dataclass(frozen=True)
class Instance:
    """One object of class ``label`` (a name in :attr:`ImportedDataset.classes`)."""

    label: str
    mask: MaskRef


@dataclass(frozen=True)
class Sample:
    """One image that passed validation. ``size`` is ``(height, width)``."""

    item: str
    image: Path
    size: tuple[int, int]
    label: str | None = None
    mask: Path | None = None
    instances: tuple[Instance, ...] = ()
    group: str = ""
    aliases: tuple[str, ...] = ()  # items of identical copies merged into this one

    @property
    def stratum(self) -> str:
        """What a split is stratified by: the class (classification) or the group."""
        return self.label or self.group


@dataclass(frozen=True)
class Problem:
    """A file refused by validation: ``kind`` (one of :data:`PROBLEM_KINDS`), the file and
    a short detail. ``item`` names the sample it removes (``""``: none, e.g. an empty class)."""

    kind: str
    path: str
    detail: str = ""
    item: str = ""

    def line(self) -> str:
        return f"{self.kind}\t{self.path}\t{self.detail}"


PROBLEM_KINDS = ("image without mask", "mask of another size", "unknown class id", "empty class",
                 "unreadable file", "bad annotation")


@dataclass(frozen=True)
class ImportedDataset:
    """The validated dataset. ``kind``: ``classify``, ``segment`` or ``instance``.

    ``classes``: for ``segment``, index = mask pixel value (``classes[0]`` is background);
    for ``instance``, the object classes (no background; a Mask R-CNN label is
    ``classes.index(name) + 1``); for ``classify``, the labels in logit order.
    ``counts[name]`` holds ``images`` (images showing the class) and, where they apply,
    ``instances`` and ``pixels``.
    """

    root: Path
    layout: str
    kind: str
    classes: tuple[str, ...]
    samples: tuple[Sample, ...]
    counts: dict[str, dict[str, int]]
    skipped: tuple[Problem, ...] = ()
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def items(self) -> list[str]:
        return [s.item for s in self.samples]

    def by_item(self) -> dict[str, Sample]:
        return {s.item: s for s in self.samples}

    def to_dict(self) -> dict:
        """Plain data for ``import_report.json``."""
        return {"root": str(self.root), "layout": self.layout, "kind": self.kind,
                "classes": list(self.classes), "images": len(self.samples), "counts": self.counts,
                "skipped": [{"kind": p.kind, "path": p.path, "detail": p.detail} for p in self.skipped],
                "notes": list(self.notes)}


def mask_box(mask: np.ndarray) -> tuple[float, float, float, float] | None:
    """``(x0, y0, x1, y1)`` pixel-edge box of a ``(H, W)`` bool mask (x1, y1 exclusive,
    as torchvision's ``masks_to_boxes`` + 1), or ``None`` when the mask is empty."""
    ys, xs = np.nonzero(mask)
    if xs.size == 0:
        return None
    return float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)


def read_label_png(path: str | Path) -> np.ndarray | None:
    """``(H, W)`` integer label image (first channel of a colour PNG), ``None`` if unreadable."""
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if image is None:
        return None
    return image[..., 0] if image.ndim == 3 else image


def _decode_png(ref: MaskRef) -> np.ndarray:
    labels = read_label_png(ref.path)
    if labels is None:
        raise OSError(f"{ref.path}: cannot read mask")
    mask = labels == ref.value
    if ref.component >= 0:
        _, components = cv2.connectedComponents(mask.astype(np.uint8), connectivity=8)
        mask = components == ref.component + 1
    return mask


def _decode_coco(ref: MaskRef) -> np.ndarray:
    from pycocotools import mask as coco_mask

    h, w = ref.size
    segm = ref.geometry
    if isinstance(segm, list):  # polygons: one RLE per part, merged
        rle = coco_mask.merge(coco_mask.frPyObjects(segm, h, w))
    elif isinstance(segm.get("counts"), list):  # uncompressed RLE
        rle = coco_mask.frPyObjects(segm, h, w)
    else:
        rle = segm
    with warnings.catch_warnings():  # pycocotools 2.0 vs numpy 2's copy keyword: harmless
        warnings.simplefilter("ignore", DeprecationWarning)
        return coco_mask.decode(rle).astype(bool)


def _decode_supervisely(ref: MaskRef) -> np.ndarray:
    """A Supervisely ``bitmap`` (base64 of a zlib-compressed PNG placed at ``origin``
    ``[x, y]``, coverage in alpha) or ``polygon`` (``exterior`` minus ``interior``)."""
    h, w = ref.size
    obj = ref.geometry
    mask = np.zeros((h, w), np.uint8)
    if obj["geometryType"] == "bitmap":
        png = zlib.decompress(base64.b64decode(obj["bitmap"]["data"]))
        patch = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_UNCHANGED)
        patch = patch[..., 3] if patch.ndim == 3 and patch.shape[2] == 4 else patch
        patch = (patch if patch.ndim == 2 else patch.max(axis=2)) > 0
        x, y = (int(v) for v in obj["bitmap"]["origin"])
        region = mask[y:y + patch.shape[0], x:x + patch.shape[1]]
        region[patch[:region.shape[0], :region.shape[1]]] = 1
    else:
        points = obj["points"]
        cv2.fillPoly(mask, [np.round(np.asarray(points["exterior"], np.float64)).astype(np.int32)], 1)
        for hole in points.get("interior", []):
            cv2.fillPoly(mask, [np.round(np.asarray(hole, np.float64)).astype(np.int32)], 0)
    return mask.astype(bool)


def _decode_cvat(ref: MaskRef) -> np.ndarray:
    """A CVAT ``mask`` (runs over its box, row-major, the first of background) or ``polygon``."""
    h, w = ref.size
    g = ref.geometry
    mask = np.zeros((h, w), bool)
    if g["kind"] == "polygon":
        canvas = np.zeros((h, w), np.uint8)
        cv2.fillPoly(canvas, [np.round(np.asarray(g["points"], np.float64)).astype(np.int32)], 1)
        return canvas.astype(bool)
    x, y, bw, bh = g["box"]
    values = np.arange(len(g["rle"])) % 2 == 1  # runs alternate, background first
    mask[y:y + bh, x:x + bw] = np.repeat(values, g["rle"]).reshape(bh, bw)
    return mask


DECODERS = {"png": _decode_png, "coco": _decode_coco, "supervisely": _decode_supervisely, "cvat": _decode_cvat}


def read_json(path: Path) -> Any:
    """Parsed JSON or ``None`` when the file is unreadable or not JSON."""
    try:
        return json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
