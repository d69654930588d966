"""COCO instance JSON (``images``, ``annotations``, ``categories``), read and indexed by
pycocotools; each non-crowd annotation is one instance.

The JSON is ``--annotations FILE`` or found in ``DATA`` (``annotations.json``, or the one
``*.json`` in ``DATA`` or ``DATA/annotations/``). An image's ``file_name`` is looked up
under ``DATA``, then ``DATA/images``. An image without annotations is a negative (counted,
not refused); crowd regions are not instances (as in torchvision's references).
"""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

from nerveseg.engines.errors import UserError

from .common import finish, image_shape, parallel, rel
from .records import ImportedDataset, Instance, MaskRef, Problem, Sample, read_json

# JSON files that are not COCO: Supervisely metadata, `nerveseg synth`'s look statistics,
# `nerveseg extract`'s index.
SKIP_JSON = ("meta.json", "obj_class_to_machine_color.json", "synth_stats.json", "extract.json")


def find_annotations(root: Path, given: str | Path | None = None) -> Path:
    if given:
        return Path(given)
    if (root / "annotations.json").is_file():
        return root / "annotations.json"
    for folder in (root, root / "annotations"):
        found = sorted(p for p in folder.glob("*.json") if p.name not in SKIP_JSON) if folder.is_dir() else []
        if len(found) == 1:
            return found[0]
    raise UserError(f"{root}: no COCO annotation file (annotations.json, or give --annotations FILE)")


def load_coco(path: Path):
    """A pycocotools ``COCO`` index of ``path``; one-line error if it is not COCO instances."""
    from pycocotools.coco import COCO

    data = read_json(path)
    if not isinstance(data, dict) or not all(isinstance(data.get(k), list)
                                             for k in ("images", "annotations", "categories")):
        raise UserError(f"{path}: not a COCO instance file (needs images, annotations, categories lists)")
    coco = COCO()
    coco.dataset = data
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints progress
            coco.createIndex()
    except (KeyError, TypeError) as exc:
        raise UserError(f"{path}: malformed COCO JSON ({type(exc).__name__}: {exc})") from None
    return coco


def import_coco(root: Path, classes=None, skip_bad: bool = False, annotations=None, **_) -> ImportedDataset:
    path = find_annotations(root, annotations)
    coco = load_coco(path)
    categories = sorted(coco.cats.values(), key=lambda c: c["id"])
    names = tuple(c["name"] for c in categories)
    where = rel(root, path)
    problems = [Problem("bad annotation", where, f"annotation {a.get('id')} names image "
                        f"{a.get('image_id')}, not in images") for a in coco.dataset["annotations"]
                if a.get("image_id") not in coco.imgs]
    results = parallel(lambda img: _check(root, path, coco, img), list(coco.imgs.values()))
    samples, stats, crowd = [], {}, 0
    for sample, counts, found, crowds in results:
        problems += found
        crowd += crowds
        if sample is not None:
            samples.append(sample)
            stats[sample.item] = counts
    negatives = sum(1 for s in samples if not s.instances)
    notes = [f"images without annotations (negatives): {negatives}"] if negatives else []
    notes += [f"crowd regions ignored: {crowd}"] if crowd else []
    return finish(root, "coco", "instance", names, samples, stats, problems, skip_bad,
                  {name: where for name in names}, notes)


def _image_path(root: Path, json_path: Path, file_name: str) -> Path:
    for base in (root, root / "images", json_path.parent):
        if (base / file_name).is_file():
            return base / file_name
    return root / file_name


def _check(root: Path, json_path: Path, coco, img: dict):
    """``(sample | None, instances per class, problems, crowd regions)`` for one image."""
    image = _image_path(root, json_path, str(img.get("file_name", "")))
    item = rel(root, image)
    shape = image_shape(image) if image.is_file() else None
    if shape is None:
        return None, {}, [Problem("unreadable file", item, "missing or cannot decode image", item)], 0
    if (img.get("height"), img.get("width")) != shape:
        detail = f"JSON says {img.get('height')}x{img.get('width')}, file is {shape[0]}x{shape[1]}"
        return None, {}, [Problem("mask of another size", item, detail, item)], 0
    instances, problems, crowd = [], [], 0
    for ann in coco.imgToAnns.get(img["id"], []):
        if ann.get("iscrowd", 0):
            crowd += 1
            continue
        problem = _check_annotation(coco, ann, shape, rel(root, json_path), item)
        if problem:
            problems.append(problem)
        else:
            name = coco.cats[ann["category_id"]]["name"]
            instances.append(Instance(name, MaskRef("coco", shape, geometry=ann["segmentation"])))
    counts: dict[str, int] = {}
    for instance in instances:
        counts[instance.label] = counts.get(instance.label, 0) + 1
    sample = Sample(item, image, shape, instances=tuple(instances))
    return (None if problems else sample), counts, problems, crowd


def _check_annotation(coco, ann: dict, shape, where: str, item: str) -> Problem | None:
    from pycocotools import mask as coco_mask

    label = f"annotation {ann.get('id')} of {item}"
    if ann.get("category_id") not in coco.cats:
        return Problem("unknown class id", where, f"{label}: category_id {ann.get('category_id')}", item)
    segm = ann.get("segmentation")
    if isinstance(segm, dict) and list(segm.get("size", [])) != list(shape):
        return Problem("mask of another size", where, f"{label}: RLE size {segm.get('size')}, "
                       f"image {shape[0]}x{shape[1]}", item)
    try:
        area = float(coco_mask.area(coco.annToRLE(ann))) if segm else 0.0
    except Exception as exc:  # pycocotools raises bare Exception/TypeError on bad polygons
        return Problem("bad annotation", where, f"{label}: segmentation does not decode ({exc})", item)
    if area <= 0:
        return Problem("bad annotation", where, f"{label}: empty segmentation", item)
    return None
