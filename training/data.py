"""Reading the two dataset layouts, without torch (``nerveseg eval``/``validate`` reuse it).

* classification: ``DATA/<class>/*.png`` (one folder per class name);
* segmentation (Supervisely): ``DATA/<ds>/img/<name>.<ext>`` with the mask
  ``DATA/<ds>/masks_machine/<name>.png`` (single channel, 0 = background, 1 = nerve).

Items are paths relative to ``DATA`` with ``/`` separators, so split lists are portable.
Images are resized with ``cv2.INTER_AREA`` exactly as the runtime
:class:`nerveseg.engines.preprocess.Preprocessor` does, masks with nearest neighbour.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from nerveseg.engines.errors import UserError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
GATE_CLASSES = ("nerve", "opening_wound", "tendon")
SEG_CLASSES = ("background", "nerve")


def _images_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def list_classification(root: str | Path, classes: tuple[str, ...] = GATE_CLASSES) -> list[str]:
    """Every image under ``root/<class>/``, as sorted relative paths ``<class>/<file>``."""
    root = Path(root)
    if not root.is_dir():
        raise UserError(f"{root}: dataset folder not found")
    items = []
    for name in classes:
        folder = root / name
        if not folder.is_dir():
            found = sorted(p.name for p in root.iterdir() if p.is_dir())
            raise UserError(f"{folder}: class folder missing (expected {', '.join(classes)}; "
                            f"found {', '.join(found) or 'no folders'})")
        items += [f"{name}/{p.name}" for p in _images_in(folder)]
    if not items:
        raise UserError(f"{root}: no images in the class folders {', '.join(classes)}")
    return items


def label_of(item: str, classes: tuple[str, ...]) -> int:
    """The class index of a classification item ``<class>/<file>``."""
    name = item.split("/", 1)[0]
    if name not in classes:
        raise UserError(f"{item}: class {name!r} is not one of {', '.join(classes)}")
    return classes.index(name)


def mask_path(root: str | Path, item: str) -> Path:
    """``<ds>/img/<name>.<ext>`` → ``root/<ds>/masks_machine/<name>.png``."""
    image = Path(root) / item
    return image.parent.parent / "masks_machine" / (image.stem + ".png")


def list_segmentation(root: str | Path) -> list[str]:
    """Every ``<ds>/img/*`` image under ``root`` (or ``root/img`` itself), each with a mask."""
    root = Path(root)
    if not root.is_dir():
        raise UserError(f"{root}: dataset folder not found")
    folders = [root / "img"] if (root / "img").is_dir() else sorted(root.glob("*/img"))
    if not folders:
        raise UserError(f"{root}: no Supervisely dataset (expected <ds>/img/ and <ds>/masks_machine/)")
    items = [p.relative_to(root).as_posix() for folder in folders for p in _images_in(folder)]
    if not items:
        raise UserError(f"{root}: the img/ folders hold no images")
    for item in items:
        if not mask_path(root, item).is_file():
            raise UserError(f"{mask_path(root, item)}: mask missing for image {item}")
    return items


def group_of(item: str) -> str:
    """The Supervisely dataset (``<ds>``) of a segmentation item, for stratified splits."""
    parts = item.split("/")
    return parts[0] if len(parts) > 2 else ""


def read_rgb(path: str | Path, size: tuple[int, int] | None = None) -> np.ndarray:
    """``(H, W, 3) uint8 RGB``, resized to ``size = (height, width)`` if given."""
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise UserError(f"{path}: cannot read image")
    image = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    if size is not None and image.shape[:2] != tuple(size):
        image = cv2.resize(image, (size[1], size[0]), interpolation=cv2.INTER_AREA)
    return image


def read_mask(path: str | Path, size: tuple[int, int] | None = None) -> np.ndarray:
    """``(H, W) uint8`` in {0, 1} (any non-zero pixel is nerve), nearest-resized to ``size``."""
    mask = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if mask is None:
        raise UserError(f"{path}: cannot read mask")
    if mask.ndim == 3:
        mask = mask[..., 0]
    mask = (mask > 0).astype(np.uint8)
    if size is not None and mask.shape[:2] != tuple(size):
        mask = cv2.resize(mask, (size[1], size[0]), interpolation=cv2.INTER_NEAREST)
    return mask


def read_class_mask(path: str | Path, size: tuple[int, int] | None = None,
                    foreground: int | None = None) -> np.ndarray:
    """``(H, W) uint8`` in {0, 1}: any non-zero pixel (as :func:`read_mask`), or with
    ``foreground`` only the pixels of that class id (masks holding several classes)."""
    if foreground is None:
        return read_mask(path, size)
    labels = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if labels is None:
        raise UserError(f"{path}: cannot read mask")
    labels = labels[..., 0] if labels.ndim == 3 else labels
    mask = (labels == foreground).astype(np.uint8)
    if size is not None and mask.shape[:2] != tuple(size):
        mask = cv2.resize(mask, (size[1], size[0]), interpolation=cv2.INTER_NEAREST)
    return mask
