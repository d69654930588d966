"""Training sets from rendered frames, cut exactly as the runtime cuts its input.

Every item is rendered at a reduced stereo size, passed through
:func:`nerveseg.engines.preprocess.view_box` (left eye, automatic border crop, centred
square) and resized to the storage size. Item ``i`` draws from its own generator seeded by
``(seed, kind, i)``, so an item does not depend on which items were written before it.
"""

from __future__ import annotations

import base64
import json
import zlib
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from nerveseg.engines.errors import UserError
from nerveseg.engines.preprocess import PreprocessConfig, view_box

from .files import prepare_dir, write_png
from .render import render_stereo
from .scene import CLASSES, draws_classic, in_domain, random_scene
from .stats import eye_square, frame_stats, summarise, write_summary

RENDER_SIZE = (540, 960)     # stereo (height, width) the datasets are rendered at
NERVE_COLOR = "#E6194B"      # Supervisely display colour of the nerve class
_CLASSIFY, _SEGMENT = 1, 2   # the "kind" in an item's seed: the datasets draw apart
MAX_BLOWN = 0.85             # most of the runtime's view an item may have blown out
_DOMAIN = 99                 # the seed part of a domain's change
MAX_DRAWS = 8                # scenes drawn for an item before the last one is kept anyway
MIN_LEGIBLE = 0.4            # least share of a nerve's pixels that must stand out from around it


def crop_view(frame: np.ndarray, mask: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """The runtime's view of ``frame`` ``(H, W, 3) uint8`` and of the left-eye ``mask``
    ``(H, W//2) uint8``, resized to ``(size, size, 3)`` and ``(size, size)`` uint8."""
    box = view_box(frame, PreprocessConfig())
    image = cv2.resize(box.slice(frame), (size, size), interpolation=cv2.INTER_AREA)
    # The left eye starts at x = 0, so the frame's box is also the mask's box.
    labels = cv2.resize(box.slice(mask), (size, size), interpolation=cv2.INTER_NEAREST)
    return image, labels


def render_item(seed: int, kind: int, index: int, cls: str, size: int,
                render_size: tuple[int, int] = RENDER_SIZE,
                stats: list | None = None, domain: str = "wide") -> tuple[np.ndarray, np.ndarray]:
    """One dataset item: ``(size, size, 3) uint8 RGB`` image and ``(size, size) uint8`` mask.

    With ``stats``, appends ``(cls, frame_stats)`` of the rendered one-eye square frame
    (what the real frames' statistics were measured on, before the runtime's crop)."""
    rng = np.random.default_rng((seed, kind, index))
    shift = np.random.default_rng((seed, kind, index, _DOMAIN))  # apart: a domain moves no other draw
    classic = draws_classic(domain, np.random.default_rng((seed, kind, index, _DOMAIN, 1)))
    for _ in range(MAX_DRAWS):
        frame, mask = render_stereo(in_domain(random_scene(rng, cls, classic=classic), shift, domain),
                                    *render_size)
        # A view blown out almost everywhere shows no class and no nerve, and a nerve lost in
        # a sheen or out of the view is one no person could label: draw again.
        if _blown(crop_view(frame, mask, 64)[0]) <= MAX_BLOWN and (
                cls != "nerve" or legible(*crop_view(frame, mask, 128)) >= MIN_LEGIBLE):
            break
    if stats is not None:
        stats.append((cls, frame_stats(eye_square(frame))))
    return crop_view(frame, mask, size)


def legible(image: np.ndarray, mask: np.ndarray, step: int = 10) -> float:
    """Share of the nerve's pixels in ``mask`` ``(S, S)`` that differ by more than ``step`` grey
    levels from the tissue around them in ``image`` ``(S, S, 3) uint8`` (the local mean of the
    pixels off the nerve, 9 px across): 0 when fewer than 20 nerve pixels are in view. A band
    drawn into a blown-out sheen, or blurred into its surroundings, scores near 0."""
    band = mask > 0
    if band.sum() < 20:
        return 0.0
    grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).astype(np.float32)
    off = (~band).astype(np.float32)
    around = cv2.blur(grey * off, (9, 9)) / np.maximum(cv2.blur(off, (9, 9)), 1e-3)
    return float((np.abs(grey - around)[band] > step).mean())


def _blown(image: np.ndarray) -> float:
    """Fraction of ``(S, S, 3) uint8`` pixels at or above the runtime's saturation (245)."""
    return float((image.min(axis=2) >= 245).mean())


def _report(root: Path, records: list) -> dict:
    """Summarise the look statistics, write ``root/synth_stats.json`` and log the table."""
    summary = summarise(records)
    write_summary(root, summary)
    return summary


def write_classification(out: str | Path, per_class: int, size: int = 256, seed: int = 0,
                         render_size: tuple[int, int] = RENDER_SIZE, progress: bool = True,
                         domain: str = "wide") -> dict[str, int]:
    """Write ``out/<class>/<class>_NNNNN.png`` for each of :data:`CLASSES`; return counts."""
    _check(per_class, size, seed, "--per-class")
    root = prepare_dir(Path(out))
    folders = {cls: prepare_dir(root / cls) for cls in CLASSES}
    bar = tqdm(total=per_class * len(CLASSES), desc="classify", unit="img", disable=not progress)
    records: list = []
    for index in range(per_class):
        for k, cls in enumerate(CLASSES):
            image, _ = render_item(seed, _CLASSIFY, index * len(CLASSES) + k, cls, size, render_size, records,
                                   domain)
            write_png(folders[cls] / f"{cls}_{index:05d}.png", image)
            bar.update()
    bar.close()
    _report(root, records)
    return {cls: per_class for cls in CLASSES}


def write_segmentation(out: str | Path, count: int, size: int = 256, seed: int = 0,
                       negatives: float = 0.0, dataset: str = "synthetic",
                       render_size: tuple[int, int] = RENDER_SIZE, progress: bool = True,
                       domain: str = "wide") -> int:
    """Write a Supervisely-style project: ``out/meta.json``, ``out/obj_class_to_machine_color.json``
    and ``out/<dataset>/{img,ann,masks_machine}/``; masks are single-channel PNGs, 0 = background,
    1 = nerve. A ``negatives`` fraction of items are tendon or wound scenes with empty masks."""
    _check(count, size, seed, "--count")
    if not 0.0 <= negatives < 1.0:
        raise UserError(f"--negatives {negatives}: must be a fraction in [0, 1)")
    root = prepare_dir(Path(out))
    folders = {name: prepare_dir(root / dataset / name) for name in ("img", "ann", "masks_machine")}
    _write_json(root / "meta.json", _meta())
    _write_json(root / "obj_class_to_machine_color.json", {"nerve": [1, 1, 1]})
    records: list = []
    for index in tqdm(range(count), desc="segment", unit="img", disable=not progress):
        # Spread negatives evenly and exactly: item i is one when floor((i+1)·f) steps up.
        negative = int((index + 1) * negatives) > int(index * negatives)
        cls = ("tendon", "opening_wound")[index % 2] if negative else "nerve"
        image, mask = render_item(seed, _SEGMENT, index, cls, size, render_size, records, domain)
        name = f"synth_{index:05d}.png"
        write_png(folders["img"] / name, image)
        write_png(folders["masks_machine"] / name, mask)
        _write_json(folders["ann"] / f"{name}.json", _annotation(mask))
    _report(root, records)
    return count


def _check(count: int, size: int, seed: int, option: str) -> None:
    if count < 1:
        raise UserError(f"{option} {count}: must be at least 1")
    if size < 16:
        raise UserError(f"--size {size}: must be at least 16 px")
    if seed < 0:
        raise UserError(f"--seed {seed}: must be 0 or more")


def _meta() -> dict:
    return {"classes": [{"title": "nerve", "shape": "bitmap", "color": NERVE_COLOR,
                         "geometry_config": {}, "hotkey": ""}],
            "tags": [], "projectType": "images"}


def _annotation(mask: np.ndarray) -> dict:
    """Supervisely annotation: one bitmap object (a zlib-compressed, base64 RGBA PNG of the
    mask's bounding box, coverage in alpha) when the mask is not empty."""
    h, w = mask.shape
    objects = []
    ys, xs = np.nonzero(mask)
    if xs.size:
        x0, y0 = int(xs.min()), int(ys.min())
        crop = mask[y0:ys.max() + 1, x0:xs.max() + 1].astype(bool)
        rgba = np.zeros((*crop.shape, 4), np.uint8)
        rgba[crop] = 255
        png = cv2.imencode(".png", rgba)[1].tobytes()
        data = base64.b64encode(zlib.compress(png)).decode("ascii")
        objects.append({"classTitle": "nerve", "description": "", "tags": [],
                        "geometryType": "bitmap", "bitmap": {"data": data, "origin": [x0, y0]}})
    return {"description": "", "tags": [], "size": {"height": h, "width": w}, "objects": objects}


def _write_json(path: Path, obj: dict) -> None:
    try:
        path.write_text(json.dumps(obj, indent=2) + "\n")
    except OSError as exc:
        raise UserError(f"{path}: cannot write ({exc.strerror or exc})") from None
