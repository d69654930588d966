"""Pre-labels in the formats annotators work in: COCO, CVAT for images 1.1, Supervisely, and
the gate's answers as class folders.

Each format is a self-contained folder a tool uploads as it is (images beside the
annotations: hard links where the file system allows, else copies), and each reads back
through nerveseg's importers (``nerveseg.training.importers``: ``coco``, ``cvat``,
``supervisely``), so corrected labels train without conversion. Masks are exact: COCO as
uncompressed RLE (column-major runs, starting with background), CVAT as its mask RLE
(row-major runs over the object's box, starting with background), Supervisely as a bitmap
(zlib-compressed PNG, coverage in alpha). Each 8-connected piece of the mask is one object,
so an annotator deletes a wrong piece with one click. The gate's answer rides along as an
image-level label: COCO ``images[].nerveseg``, a CVAT ``<tag>``, a Supervisely image tag.

Plain JSON and XML, numpy and OpenCV: the runtime install writes them (no pycocotools).
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import xml.etree.ElementTree as ET
import zlib
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from nerveseg.engines.errors import UserError

NERVE_COLOR = "#E6194B"  # Supervisely display colour of the mask class (as `nerveseg synth`)


@dataclass(frozen=True)
class Prelabel:
    """One image's pre-label: ``mask`` ``(H, W) bool`` of ``mask_class``; the gate's
    ``label`` and ``confidence``; ``image`` the file it was computed on."""

    image: Path
    mask: np.ndarray
    label: str
    confidence: float


def pieces(mask: np.ndarray) -> list[np.ndarray]:
    """The 8-connected components of ``(H, W) bool`` ``mask``, each ``(H, W) bool``."""
    n, labels = cv2.connectedComponents(mask.astype(np.uint8), connectivity=8)
    return [labels == k for k in range(1, n)]


def runs(flat: np.ndarray) -> list[int]:
    """Run lengths of a 1-D bool array, the first a run of ``False`` (0 when it starts True)."""
    change = np.flatnonzero(np.diff(flat.astype(np.int8))) + 1
    edges = np.concatenate([[0], change, [flat.size]])
    lengths = np.diff(edges).tolist()
    return ([0] + lengths) if flat.size and flat[0] else lengths


def box_of(mask: np.ndarray) -> tuple[int, int, int, int]:
    """``(x, y, width, height)`` of the pixels set in ``(H, W) bool`` ``mask`` (not empty)."""
    ys, xs = np.nonzero(mask)
    return int(xs.min()), int(ys.min()), int(xs.max() - xs.min() + 1), int(ys.max() - ys.min() + 1)


def place_image(source: Path, target: Path) -> None:
    """``source`` at ``target``: a hard link (no copy of the pixels), else a copy."""
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.exists():
        target.unlink()
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def write_json(path: Path, obj) -> None:
    from nerveseg.engines.outputs import write_text_atomic

    write_text_atomic(path, json.dumps(obj, indent=1) + "\n")


def write_coco(out: Path, labels: list[Prelabel], mask_class: str, gate_classes: tuple[str, ...]) -> Path:
    """``out/annotations.json`` + ``out/images/``: one uncompressed-RLE annotation per piece."""
    images, annotations = [], []
    for i, p in enumerate(labels, start=1):
        h, w = p.mask.shape
        place_image(p.image, out / "images" / p.image.name)
        images.append({"id": i, "file_name": p.image.name, "height": h, "width": w,
                       "nerveseg": {"gate": p.label, "confidence": round(p.confidence, 4)}})
        for piece in pieces(p.mask):
            rle = {"size": [h, w], "counts": runs(piece.T.ravel())}  # column-major, as COCO
            annotations.append({"id": len(annotations) + 1, "image_id": i, "category_id": 1,
                                "segmentation": rle, "area": int(piece.sum()), "bbox": list(box_of(piece)),
                                "iscrowd": 0})
    coco = {"info": {"description": f"nerveseg prelabel: {mask_class} masks and gate labels "
                     f"({', '.join(gate_classes)})"},
            "images": images, "annotations": annotations,
            "categories": [{"id": 1, "name": mask_class, "supercategory": "tissue"}]}
    path = out / "annotations.json"
    write_json(path, coco)
    return path


def write_cvat(out: Path, labels: list[Prelabel], mask_class: str, gate_classes: tuple[str, ...]) -> Path:
    """``out/annotations.xml`` (CVAT for images 1.1) + ``out/images/``: a ``<mask>`` per
    piece, the gate's class as a ``<tag>``."""
    root = ET.Element("annotations")
    ET.SubElement(root, "version").text = "1.1"
    task = ET.SubElement(ET.SubElement(root, "meta"), "task")
    ET.SubElement(task, "size").text = str(len(labels))
    ET.SubElement(task, "mode").text = "annotation"
    names = ET.SubElement(task, "labels")
    for name in dict.fromkeys((mask_class, *gate_classes)):
        label = ET.SubElement(names, "label")
        ET.SubElement(label, "name").text = name
        # The mask class is also a gate class (nerve): one label, "any" kind, serves both.
        ET.SubElement(label, "type").text = "any" if name == mask_class else "tag"
        ET.SubElement(label, "attributes")
    for i, p in enumerate(labels):
        h, w = p.mask.shape
        place_image(p.image, out / "images" / p.image.name)
        image = ET.SubElement(root, "image", id=str(i), name=p.image.name, width=str(w), height=str(h))
        ET.SubElement(image, "tag", label=p.label, source="auto")
        for piece in pieces(p.mask):
            x, y, bw, bh = box_of(piece)
            rle = runs(piece[y:y + bh, x:x + bw].ravel())  # row-major over the box, as CVAT
            ET.SubElement(image, "mask", label=mask_class, source="auto", occluded="0", z_order="0",
                          rle=", ".join(map(str, rle)), left=str(x), top=str(y), width=str(bw), height=str(bh))
    ET.indent(root)
    path = out / "annotations.xml"
    from nerveseg.engines.outputs import write_text_atomic

    write_text_atomic(path, '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n")
    return path


def supervisely_bitmap(piece: np.ndarray, mask_class: str) -> dict:
    """One Supervisely ``bitmap`` object: base64 of a zlib-compressed RGBA PNG of the
    piece's box, coverage in alpha, placed at ``origin`` ``[x, y]``."""
    x, y, bw, bh = box_of(piece)
    rgba = np.zeros((bh, bw, 4), np.uint8)
    rgba[piece[y:y + bh, x:x + bw]] = 255
    ok, png = cv2.imencode(".png", rgba)
    if not ok:
        raise UserError("cannot encode a Supervisely bitmap (OpenCV PNG encoder)")
    return {"classTitle": mask_class, "description": "", "tags": [], "geometryType": "bitmap",
            "bitmap": {"data": base64.b64encode(zlib.compress(png.tobytes())).decode("ascii"), "origin": [x, y]}}


def write_supervisely(out: Path, labels: list[Prelabel], mask_class: str, gate_classes: tuple[str, ...],
                      dataset: str = "prelabel") -> Path:
    """A Supervisely project: ``out/meta.json``, ``out/obj_class_to_machine_color.json``,
    ``out/<dataset>/{img,ann,masks_machine}``; the gate's class as the image tag ``gate``."""
    write_json(out / "meta.json", {
        "classes": [{"title": mask_class, "shape": "bitmap", "color": NERVE_COLOR, "geometry_config": {},
                     "hotkey": ""}],
        "tags": [{"name": "gate", "value_type": "oneof_string", "values": list(gate_classes), "color": "#0F8A5F"}],
        "projectType": "images"})
    write_json(out / "obj_class_to_machine_color.json", {mask_class: [1, 1, 1]})
    for p in labels:
        h, w = p.mask.shape
        place_image(p.image, out / dataset / "img" / p.image.name)
        masks = out / dataset / "masks_machine"
        masks.mkdir(parents=True, exist_ok=True)
        if not cv2.imwrite(str(masks / f"{p.image.stem}.png"), p.mask.astype(np.uint8)):
            raise UserError(f"{masks / p.image.stem}.png: cannot write")
        ann = {"description": "", "size": {"height": h, "width": w},
               "tags": [{"name": "gate", "value": p.label}],
               "objects": [supervisely_bitmap(piece, mask_class) for piece in pieces(p.mask)]}
        (out / dataset / "ann").mkdir(parents=True, exist_ok=True)
        write_json(out / dataset / "ann" / f"{p.image.name}.json", ann)
    return out / "meta.json"


def write_classes(out: Path, labels: list[Prelabel], mask_class: str, gate_classes: tuple[str, ...]) -> Path:
    """``out/<gate class>/<image>``: the gate's answers as class folders (the layout the gate
    trains on); correcting one is moving the file to another folder."""
    for name in gate_classes:
        (out / name).mkdir(parents=True, exist_ok=True)
    for p in labels:
        place_image(p.image, out / p.label / p.image.name)
    return out


WRITERS = {"coco": write_coco, "cvat": write_cvat, "supervisely": write_supervisely, "classes": write_classes}
