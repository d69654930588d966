"""A contact sheet of the generator's output, for the docs and for eyeballing changes:
per class, a few stereo frames and the runtime's crop with the nerve mask outlined."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from .datasets import crop_view
from .files import prepare_dir, write_png
from .render import render_stereo
from .scene import CLASSES, random_scene

OUTLINE = (255, 0, 255)  # RGB magenta: a colour the near-grey frames never contain
_SHEET = 30              # the "kind" in the seeds drawn here


def contact_sheet(seed: int = 0, frames: int = 2, tile: int = 270) -> np.ndarray:
    """``(3·tile, (2·frames + 1)·tile, 3) uint8 RGB``: one row per class, ``frames`` stereo
    frames (rendered at 1080p, shown ``tile`` px high) and the 256-px training crop of the
    first one with its mask outlined."""
    rows = []
    for k, cls in enumerate(CLASSES):
        row = []
        for i in range(frames):
            scene = random_scene(np.random.default_rng((seed, _SHEET, k, i)), cls)
            frame, mask = render_stereo(scene, 1080, 1920)
            if i == 0:
                crop, crop_mask = crop_view(frame, mask, 256)
            row.append(cv2.resize(frame, (2 * tile, tile), interpolation=cv2.INTER_AREA))
        row.append(_outlined(crop, crop_mask, tile))
        strip = np.hstack(row)
        _label(strip, cls)
        rows.append(strip)
    return np.vstack(rows)


def _outlined(image: np.ndarray, mask: np.ndarray, tile: int) -> np.ndarray:
    image = cv2.resize(image, (tile, tile), interpolation=cv2.INTER_AREA)
    mask = cv2.resize(mask, (tile, tile), interpolation=cv2.INTER_NEAREST)
    contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    cv2.drawContours(image, contours, -1, OUTLINE, 1, cv2.LINE_AA)
    return image


def _label(strip: np.ndarray, text: str) -> None:
    for colour, weight in (((0, 0, 0), 4), ((255, 255, 255), 1)):
        cv2.putText(strip, text, (8, 24), cv2.FONT_HERSHEY_SIMPLEX, 0.7, colour, weight, cv2.LINE_AA)


def write_sheet(path: str | Path, seed: int = 0) -> Path:
    """Write :func:`contact_sheet` as a PNG at ``path``."""
    path = Path(path)
    prepare_dir(path.parent)
    write_png(path, contact_sheet(seed))
    return path
