"""Dataset importers with validation: one function per layout, one registry.

``import_dataset(root, layout="auto")`` detects or takes the layout, reads and checks
every file, and returns an :class:`ImportedDataset` of :class:`Sample` records, or
refuses with one line naming the files (images without masks, masks of another size,
unknown class ids, empty classes, unreadable files, bad annotations). With
``skip_bad=True`` it goes on without them and lists them in ``dataset.skipped``.

Torch-free: ``nerveseg data check``, the training commands and every model family
(gate, semantic, instance, region) read data through here.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from pathlib import Path

from nerveseg.engines.errors import UserError

from .coco import find_annotations, import_coco
from .cvat import ANNOTATIONS as CVAT_XML
from .cvat import import_cvat
from .common import ImportRefused, images_in, write_skipped
from .folders import first_dir, import_class_masks, import_classes, import_pairs, subfolders
from .records import ImportedDataset, Instance, MaskRef, Problem, Sample, mask_box
from .supervisely import import_supervisely

# layout: (importer, what it yields, the layout in one line). Order = detection order.
IMPORTERS: dict[str, tuple[Callable[..., ImportedDataset], str, str]] = {
    "supervisely": (import_supervisely, "segment",
                    "DATA/<ds>/img/x.png + masks_machine/x.png (+ ann/x.png.json, meta.json)"),
    "class_masks": (import_class_masks, "instance", "DATA/image/<Class>/x.png + DATA/mask/<Class>/x.png"),
    "pairs": (import_pairs, "segment", "DATA/images/x.png + DATA/masks/x.png (value = class id)"),
    "coco": (import_coco, "instance", "DATA/annotations.json (COCO instances) + images"),
    "cvat": (import_cvat, "instance", "DATA/annotations.xml (CVAT for images 1.1) + DATA/images/"),
    "classes": (import_classes, "classify", "DATA/<class>/x.png"),
}
# What each training task can read: Supervisely objects are instances too.
LAYOUTS_FOR = {"classify": ("classes",), "segment": ("supervisely", "pairs"),
               "instance": ("coco", "cvat", "class_masks", "supervisely")}

__all__ = ["IMPORTERS", "LAYOUTS_FOR", "ImportRefused", "ImportedDataset", "Instance", "MaskRef",
           "Problem", "Sample", "detect_layout", "format_report", "import_dataset", "mask_box",
           "write_skipped"]


def detect_layout(root: Path) -> str:
    """The layout of ``root`` from its folder names (see :data:`IMPORTERS`)."""
    if (root / "meta.json").is_file() or (root / "img").is_dir() or any(root.glob("*/img")):
        return "supervisely"
    images = first_dir(root, ("image", "images"))
    if images is not None and first_dir(root, ("mask", "masks")) is not None:
        return "class_masks" if any(images_in(images / name) for name in subfolders(images)) else "pairs"
    if (root / CVAT_XML).is_file():
        return "cvat"
    try:
        find_annotations(root)
        return "coco"
    except UserError:
        pass
    if any(images_in(root / name) for name in subfolders(root)):
        return "classes"
    known = "; ".join(f"{name}: {spec[2]}" for name, spec in IMPORTERS.items())
    raise UserError(f"{root}: cannot tell the dataset layout (expected one of {known})")


def import_dataset(root: str | Path, layout: str = "auto", *, task: str | None = None,
                   classes=None, skip_bad: bool = False, annotations=None) -> ImportedDataset:
    """Import and validate ``root``; ``task`` (classify/segment/instance) refuses a layout
    that task cannot train from. ``classes``: names in order (layout default otherwise)."""
    root = Path(root)
    if not root.is_dir():
        raise UserError(f"{root}: dataset folder not found")
    layout = detect_layout(root) if layout == "auto" else layout
    if layout not in IMPORTERS:
        close = difflib.get_close_matches(layout, IMPORTERS, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise UserError(f"unknown data layout {layout!r}{hint}; choose auto or one of {', '.join(IMPORTERS)}")
    if task is not None and layout not in LAYOUTS_FOR.get(task, (layout,)):
        raise UserError(f"{root}: a {layout} dataset ({IMPORTERS[layout][2]}) cannot train a {task} "
                        f"model; expected {' or '.join(LAYOUTS_FOR[task])}")
    return IMPORTERS[layout][0](root, classes=classes, skip_bad=skip_bad, annotations=annotations)


def format_report(dataset: ImportedDataset, skipped_file: str | Path | None = None) -> str:
    """The text report: layout, per-class counts, notes and what was skipped."""
    units = [k for k in ("instances", "pixels") if any(k in c for c in dataset.counts.values())]
    lines = [f"{dataset.root}: {dataset.layout} layout ({dataset.kind}), {len(dataset.samples)} images, "
             f"{len(dataset.classes)} classes", "",
             f"{'class':<24}{'images':>8}" + "".join(f"{u:>12}" for u in units)]
    for name, count in dataset.counts.items():
        lines.append(f"{name:<24}{count['images']:>8}" + "".join(f"{count[u]:>12}" for u in units))
    lines += [""] + [f"note: {note}" for note in dataset.notes]
    if dataset.skipped:
        where = f" (list in {skipped_file})" if skipped_file else ""
        count = len(dataset.skipped)
        lines.append(f"skipped {count} problem{'s' if count != 1 else ''}{where}:")
        lines += [f"  {p.kind}: {p.path}" + (f" ({p.detail})" if p.detail else "") for p in dataset.skipped]
    else:
        lines.append("no problems found")
    return "\n".join(lines) + "\n"
