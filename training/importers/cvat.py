"""CVAT for images 1.1 (``DATA/annotations.xml`` + ``DATA/images/``), as CVAT exports it and
``nerveseg prelabel`` writes it. Each ``<mask>`` (CVAT's RLE: row-major runs over the
object's box, the first a background run) and each ``<polygon>`` is one instance of its
label; ``<tag>`` s (image-level labels) and other shapes are not instances. The classes
are the XML's labels that are not tag-only, in the order the XML lists them.

Read with the standard library's expat parser, which refuses external entities and, in
the Python versions nerveseg supports, caps entity expansion.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from nerveseg.engines.errors import UserError

from .common import finish, gather, image_shape, parallel, rel
from .records import ImportedDataset, Instance, MaskRef, Problem, Sample

ANNOTATIONS = "annotations.xml"
SHAPES = ("mask", "polygon")


def find_xml(root: Path) -> Path:
    path = root / ANNOTATIONS
    if not path.is_file():
        raise UserError(f"{root}: no CVAT {ANNOTATIONS}")
    return path


def _parse(path: Path) -> ET.Element:
    try:
        tree = ET.parse(path)
    except (OSError, ET.ParseError) as exc:
        raise UserError(f"{path}: not readable CVAT XML ({' '.join(str(exc).split())[:160]})") from None
    root = tree.getroot()
    if root.tag != "annotations":
        raise UserError(f"{path}: not CVAT for images XML (root <{root.tag}>, expected <annotations>)")
    return root


def label_names(xml: ET.Element) -> tuple[str, ...]:
    """The labels that may draw shapes (not ``type`` tag), in the XML's order."""
    names = []
    for label in xml.iter("label"):
        name, kind = label.findtext("name"), (label.findtext("type") or "any")
        if name and kind != "tag" and name not in names:
            names.append(name)
    return tuple(names)


def import_cvat(root: Path, classes=None, skip_bad: bool = False, **_) -> ImportedDataset:
    path = find_xml(root)
    xml = _parse(path)
    names = tuple(classes) if classes else label_names(xml)
    where = rel(root, path)
    results = parallel(lambda image: _check(root, image, names, where), list(xml.iter("image")))
    samples, stats, problems = gather(results)
    negatives = sum(1 for s in samples if not s.instances)
    notes = [f"images without shapes (negatives): {negatives}"] if negatives else []
    return finish(root, "cvat", "instance", names, samples, stats, problems, skip_bad,
                  {name: where for name in names}, notes)


def _check(root: Path, image: ET.Element, names: tuple[str, ...], where: str):
    """``(sample | None, instances per class, problems)`` for one ``<image>``."""
    name = image.get("name", "")
    path = next((p for p in (root / "images" / name, root / name) if p.is_file()), root / "images" / name)
    item = rel(root, path)
    shape = image_shape(path) if path.is_file() else None
    if shape is None:
        return None, {}, [Problem("unreadable file", item, "missing or cannot decode image", item)]
    said = (_int(image.get("height")), _int(image.get("width")))
    if said != shape:
        return None, {}, [Problem("mask of another size", where, f"{name}: XML says {said[0]}x{said[1]}, "
                                  f"file is {shape[0]}x{shape[1]}", item)]
    instances, problems = [], []
    for shape_el in (el for el in image if el.tag in SHAPES):
        label = shape_el.get("label")
        if label not in names:
            problems.append(Problem("unknown class id", where, f"{name}: label {label!r} not in "
                                    f"{', '.join(names)}", item))
            continue
        geometry, problem = _geometry(shape_el, shape)
        if problem:
            problems.append(Problem("bad annotation", where, f"{name}: {problem}", item))
        else:
            instances.append(Instance(label, MaskRef("cvat", shape, geometry=geometry)))
    counts: dict[str, int] = {}
    for instance in instances:
        counts[instance.label] = counts.get(instance.label, 0) + 1
    sample = Sample(item, path, shape, instances=tuple(instances))
    return (None if problems else sample), counts, problems


def _int(text: str | None) -> int | None:
    try:
        return int(float(text)) if text is not None else None
    except ValueError:
        return None


def _geometry(el: ET.Element, shape: tuple[int, int]) -> tuple[dict | None, str | None]:
    """Plain data for :class:`MaskRef` (``kind`` mask or polygon), or the problem with it."""
    if el.tag == "polygon":
        try:
            points = [[float(v) for v in pair.split(",")] for pair in el.get("points", "").split(";")]
        except ValueError:
            return None, "polygon points are not 'x,y;x,y;...'"
        if len(points) < 3 or any(len(p) != 2 for p in points):
            return None, "a polygon needs at least three x,y points"
        return {"kind": "polygon", "points": points}, None
    box = [_int(el.get(k)) for k in ("left", "top", "width", "height")]
    try:
        counts = [int(v) for v in el.get("rle", "").split(",")]
    except ValueError:
        return None, "mask rle is not comma-separated counts"
    if None in box or box[2] <= 0 or box[3] <= 0:
        return None, "mask without left, top, width, height"
    x, y, w, h = box
    if x < 0 or y < 0 or x + w > shape[1] or y + h > shape[0]:
        return None, f"mask box {w}x{h} at {x},{y} leaves the {shape[1]}x{shape[0]} image"
    if sum(counts) != w * h or min(counts) < 0:
        return None, f"mask rle covers {sum(counts)} pixels, its box {w * h}"
    return {"kind": "mask", "rle": counts, "box": box}, None
