"""Supervisely projects: ``DATA/meta.json``, ``DATA/obj_class_to_machine_color.json`` and
per dataset ``<ds>/img/x.png``, ``<ds>/masks_machine/x.png``, ``<ds>/ann/x.png.json``.

The semantic mask is ``masks_machine`` (pixel value = class id: the machine colour's
grey level; without the colour file, the class's position in ``meta.json``; without
``meta.json``, binary background/nerve). Each ``bitmap`` or ``polygon`` object of the
``ann`` file is one instance. ``DATA`` may also be a single dataset folder (``DATA/img``).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from nerveseg.engines.errors import UserError

from .common import check_pair, images_in, parallel, rel
from .folders import SEG_CLASSES, _semantic
from .records import ImportedDataset, Instance, MaskRef, Problem, read_json

INSTANCE_GEOMETRIES = ("bitmap", "polygon")


def project_classes(root: Path, classes=None) -> tuple[str, ...]:
    """Class names indexed by mask value, ``[0]`` = background (see the module docstring)."""
    if classes:
        return tuple(classes)
    meta_path, colour_path = root / "meta.json", root / "obj_class_to_machine_color.json"
    if not meta_path.is_file():
        return SEG_CLASSES
    meta = read_json(meta_path)
    if not isinstance(meta, dict) or not isinstance(meta.get("classes"), list):
        raise UserError(f"{meta_path}: not a Supervisely meta.json (needs a 'classes' list)")
    titles = [c.get("title") for c in meta["classes"] if isinstance(c, dict)]
    if not colour_path.is_file():
        return ("background", *titles)
    colours = read_json(colour_path)
    if not isinstance(colours, dict) or any(len(set(v)) != 1 for v in colours.values()):
        raise UserError(f"{colour_path}: expected {{class: [v, v, v]}} grey machine colours")
    by_id = {int(v[0]): name for name, v in colours.items()}
    if sorted(by_id) != list(range(1, len(by_id) + 1)):
        raise UserError(f"{colour_path}: machine colours must be 1..{len(by_id)}, got {sorted(by_id)}")
    return ("background", *(by_id[i] for i in range(1, len(by_id) + 1)))


def import_supervisely(root: Path, classes=None, skip_bad: bool = False, **_) -> ImportedDataset:
    names = project_classes(root, classes)
    datasets = [root] if (root / "img").is_dir() else sorted(p.parent for p in root.glob("*/img"))
    if not datasets:
        raise UserError(f"{root}: no Supervisely dataset (expected <ds>/img/ and <ds>/masks_machine/)")
    jobs = [(ds, image) for ds in datasets for image in images_in(ds / "img")]
    results = parallel(lambda job: _check(root, job[0], job[1], names), jobs)
    ignored = sum(n for *_, n in results)
    notes = [f"annotation objects that are not bitmaps or polygons, ignored: {ignored}"] if ignored else []
    paths = {name: "meta.json" for name in names}
    return _semantic(root, "supervisely", names, [r[:3] for r in results], skip_bad, notes, paths)


def _check(root: Path, ds: Path, image: Path, names: tuple[str, ...]):
    """``(sample | None, pixels per class, problems, objects ignored)`` for one image."""
    group = "" if ds == root else rel(root, ds)
    sample, stats, problems = check_pair(root, image, ds / "masks_machine" / f"{image.stem}.png",
                                         names, group)
    if sample is None or not (ds / "ann").is_dir():
        return sample, stats, problems, 0
    ann_path = ds / "ann" / f"{image.name}.json"
    ann = read_json(ann_path)
    item, where = sample.item, rel(root, ann_path)
    if not isinstance(ann, dict) or not isinstance(ann.get("objects"), list):
        return None, {}, [Problem("bad annotation", where, "missing or not Supervisely JSON", item)], 0
    size = ann.get("size", {})
    if (size.get("height"), size.get("width")) != sample.size:
        detail = f"size {size.get('height')}x{size.get('width')}, image {sample.size[0]}x{sample.size[1]}"
        return None, {}, [Problem("mask of another size", where, detail, item)], 0
    unknown = sorted({o.get("classTitle") for o in ann["objects"]} - set(names[1:]), key=str)
    if unknown:
        detail = f"class {', '.join(map(repr, unknown))} not in {', '.join(names[1:])}"
        return None, {}, [Problem("unknown class id", where, detail, item)], 0
    objects = [o for o in ann["objects"] if o.get("geometryType") in INSTANCE_GEOMETRIES]
    instances = tuple(Instance(o["classTitle"], MaskRef("supervisely", sample.size, geometry=o))
                      for o in objects)
    return dataclasses.replace(sample, instances=instances), stats, [], len(ann["objects"]) - len(objects)
