"""Reading a region set (``DATA/regions.json`` + PNGs) without torch.

Split lists hold *images* (``images/img_00000.png``), so every region of an image lands
in the same split: a test image is never seen in training through another region.
Images are resized with ``INTER_AREA`` as the runtime does; regions, masks and instance
maps with nearest neighbour.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

from nerveseg.engines.errors import UserError
from nerveseg.training.data import read_mask, read_rgb
from nerveseg.training.synth.regions import FORMAT, INDEX, ROLES

KEYS = ("id", "image", "region", "mask", "instances", "role")


def read_index(root: str | Path) -> dict:
    """The parsed ``regions.json``; one-line :class:`UserError` naming the file if unusable."""
    path = Path(root) / INDEX
    if not path.is_file():
        raise UserError(f"{path}: not found (make a region set with `nerveseg synth regions`)")
    try:
        index = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise UserError(f"{path}: unreadable region index ({exc})") from None
    if index.get("format") != FORMAT or not index.get("samples"):
        raise UserError(f"{path}: not a region set with samples (format {index.get('format')!r})")
    for sample in index["samples"]:
        missing = [key for key in KEYS if key not in sample]
        if missing or sample["role"] not in ROLES:
            raise UserError(f"{path}: sample {sample.get('id', '?')} lacks {missing or 'a known role'}")
    return index


def list_images(index: dict) -> list[str]:
    """The distinct images of the set, sorted (what split lists hold)."""
    return sorted({sample["image"] for sample in index["samples"]})


def samples_of(index: dict, images: list[str]) -> list[dict]:
    """The samples whose image is in ``images``, in index order."""
    wanted = set(images)
    return [sample for sample in index["samples"] if sample["image"] in wanted]


def read_instances(path: Path, size: tuple[int, int] | None = None) -> np.ndarray:
    """``(H, W) int32`` instance ids (0 = none) from a 16-bit PNG, nearest-resized."""
    ids = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if ids is None or ids.ndim != 2:
        raise UserError(f"{path}: cannot read instance map")
    if size is not None and ids.shape != tuple(size):
        ids = cv2.resize(ids, (size[1], size[0]), interpolation=cv2.INTER_NEAREST)
    return ids.astype(np.int32)


def load_sample(root: str | Path, sample: dict, size: tuple[int, int],
                instances: bool = False) -> tuple[np.ndarray, ...]:
    """``(image (H, W, 3) uint8, region (H, W) uint8 0/1, mask (H, W) uint8 0/1)`` at
    ``size = (H, W)``, plus the ``(H, W) int32`` instance ids if ``instances``."""
    root = Path(root)
    region = read_mask(root / sample["region"], size)
    # Resized apart, the answer could poke out of the region by a pixel: clip it back.
    out = (read_rgb(root / sample["image"], size), region, read_mask(root / sample["mask"], size) & region)
    if not instances:
        return out
    return out + (read_instances(root / sample["instances"], size) * region,)
