"""Synthetic set for region-conditioned segmentation: one image, several regions, one answer each.

Every image shows grey, softly shaded tissue with bright **structures** (round cells and
straight fibres; convex, never touching) and dark blobs that are not structures. Each
image has two or three **regions**, not drawn in the image (they are the model's second
input, like an area a surgeon marks):

* ``outer``: a large ellipse or convex polygon that contains
* ``inner``: a smaller one strictly inside it (the nested pair), and
* ``single``: one apart from both (not nested), when there is room for it.

The answer for a region is every structure pixel inside it: for ``outer`` that includes
what lies inside ``inner``, for ``inner`` only what is inside ``inner``. One structure is
placed in each zone (inside ``inner``, ``outer`` minus ``inner``, ``single``, outside all)
before the rest go anywhere, so the same image gives different answers for different
regions. Instance truth: each structure's id clipped to the region (convex ∩ convex, so
one piece), renumbered 1..n in the region.

Written by :func:`write_regions` (numpy and OpenCV only; item ``i`` draws from its own
generator seeded by ``(seed, 3, i)``)::

    OUT/regions.json                 index: size, classes, one record per (image, region)
    OUT/images/img_00000.png         (S, S, 3) uint8 RGB
    OUT/regions/img_00000_r0.png     (S, S) uint8, 1 inside the region
    OUT/masks/img_00000_r0.png       (S, S) uint8, 1 = structure inside the region
    OUT/instances/img_00000_r0.png   (S, S) uint16, 0 = none, 1..n = instance inside the region
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from nerveseg.engines.errors import UserError

from .files import prepare_dir, write_png

CLASSES = ("background", "structure")
ROLES = ("outer", "inner", "single")
INDEX = "regions.json"
FORMAT = "nerveseg-regions"
_KIND = 3  # the "kind" in an item's seed, apart from the other synthetic sets (1, 2)


def _convex(rng: np.random.Generator, s: int, centre, radius: float, polygon: bool) -> np.ndarray:
    """``(s, s) bool``: a filled ellipse or convex polygon of about ``radius`` px at ``centre``."""
    mask = np.zeros((s, s), np.uint8)
    cx, cy = (int(round(v)) for v in centre)
    if polygon:
        angles = np.sort(rng.uniform(0, 2 * np.pi, rng.integers(5, 9)))
        radii = radius * rng.uniform(0.8, 1.1, angles.size)
        points = np.stack([cx + radii * np.cos(angles), cy + radii * np.sin(angles)], 1)
        cv2.fillConvexPoly(mask, cv2.convexHull(points.round().astype(np.int32)), 1)
    else:
        axes = (max(1, int(radius)), max(1, int(radius * rng.uniform(0.55, 1.0))))
        cv2.ellipse(mask, (cx, cy), axes, float(rng.uniform(0, 180)), 0, 360, 1, -1)
    return mask.astype(bool)


def _disk(px: int) -> np.ndarray:
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * px + 1, 2 * px + 1))


def _grow(mask: np.ndarray, px: int) -> np.ndarray:
    return cv2.dilate(mask.astype(np.uint8), _disk(px)).astype(bool)


def _shrink(mask: np.ndarray, px: int) -> np.ndarray:
    return cv2.erode(mask.astype(np.uint8), _disk(px)).astype(bool)


def draw_regions(rng: np.random.Generator, s: int) -> list[tuple[str, np.ndarray]]:
    """``[("outer", mask), ("inner", mask), ("single", mask)?]``, ``(s, s) bool`` each;
    ``inner`` lies inside ``outer`` at least 2 px from its edge, ``single`` at least 3 px
    away from ``outer``."""
    centre = rng.uniform(0.3, 0.7, 2) * s
    outer = _convex(rng, s, centre, rng.uniform(0.22, 0.32) * s, bool(rng.integers(2)))
    ys, xs = np.nonzero(_shrink(outer, max(2, s // 10)))
    pick = rng.integers(len(xs)) if len(xs) else None
    inner_centre = (xs[pick], ys[pick]) if pick is not None else centre
    inner = _convex(rng, s, inner_centre, rng.uniform(0.08, 0.14) * s, bool(rng.integers(2)))
    inner &= _shrink(outer, 2)
    regions = [("outer", outer), ("inner", inner)]
    keep_out = _grow(outer, 3)
    for _ in range(30):
        single = _convex(rng, s, rng.uniform(0.12, 0.88, 2) * s, rng.uniform(0.1, 0.16) * s,
                         bool(rng.integers(2)))
        if single.sum() > 0.01 * s * s and not (single & keep_out).any():
            regions.append(("single", single))
            break
    return regions


def _structure(rng: np.random.Generator, s: int, centre) -> np.ndarray:
    """``(s, s) bool``: a round cell or a straight fibre centred at ``centre``."""
    mask = np.zeros((s, s), np.uint8)
    cx, cy = centre
    if rng.random() < 0.5:
        r = rng.uniform(0.03, 0.055) * s
        axes = (max(1, int(r)), max(1, int(r * rng.uniform(0.7, 1.0))))
        cv2.ellipse(mask, (int(cx), int(cy)), axes, float(rng.uniform(0, 180)), 0, 360, 1, -1)
    else:
        length, width = rng.uniform(0.12, 0.28) * s, max(2.0, rng.uniform(0.025, 0.04) * s)
        box = ((float(cx), float(cy)), (length, width), float(rng.uniform(0, 180)))
        cv2.fillConvexPoly(mask, cv2.boxPoints(box).round().astype(np.int32), 1)
    return mask.astype(bool)


def place_structures(rng: np.random.Generator, s: int, zones: list[np.ndarray],
                     extra: int) -> np.ndarray:
    """``(s, s) int32`` ids (0 = none): one structure centred in each zone (if it fits),
    then ``extra`` more anywhere; each kept at least ``s // 32 + 1`` px from the others."""
    labels = np.zeros((s, s), np.int32)
    occupied = np.zeros((s, s), bool)
    gap = s // 32 + 1
    wanted = list(zones) + [None] * extra
    for zone in wanted:
        for _ in range(20):
            if zone is None:
                centre = rng.uniform(0.05, 0.95, 2) * s
            else:
                ys, xs = np.nonzero(zone)
                if not len(xs):
                    break
                k = rng.integers(len(xs))
                centre = (xs[k], ys[k])
            shape = _structure(rng, s, centre)
            if shape.sum() >= 4 and not (_grow(shape, gap) & occupied).any():
                labels[shape] = labels.max() + 1
                occupied |= shape
                break
    return labels


def render_image(rng: np.random.Generator, labels: np.ndarray) -> np.ndarray:
    """``(s, s, 3) uint8 RGB``: shaded grey tissue, bright structures, dark non-structures."""
    s = labels.shape[0]
    shade = cv2.GaussianBlur(rng.standard_normal((s, s)), (0, 0), s / 6)
    grey = 100 + 25 * shade / (np.abs(shade).max() + 1e-6) + 7 * rng.standard_normal((s, s))
    for _ in range(rng.integers(2, 5)):  # dark cavities: contrast, but not the answer
        blob = _structure(rng, s, rng.uniform(0.1, 0.9, 2) * s) & (labels == 0)
        grey[blob] = rng.uniform(25, 55)
    for k in range(1, labels.max() + 1):
        grey[labels == k] = rng.uniform(185, 235)
    grey = cv2.GaussianBlur(grey, (0, 0), 0.6) + 4 * rng.standard_normal((s, s))
    tint = np.array([1.0, 0.97, 0.93])  # near-monochrome, as under narrow-band light
    return np.clip(grey[..., None] * tint, 0, 255).astype(np.uint8)


def render_item(seed: int, index: int, size: int):
    """One image and its regions: ``(image (S, S, 3) uint8, labels (S, S) int32,
    [(role, region (S, S) bool), ...])``."""
    rng = np.random.default_rng((seed, _KIND, index))
    regions = draw_regions(rng, size)
    inside = np.zeros((size, size), bool)
    for _, region in regions:
        inside |= region
    by_role = dict(regions)
    zones = [_shrink(by_role["inner"], 1), by_role["outer"] & ~_grow(by_role["inner"], 2), ~_grow(inside, 2)]
    if "single" in by_role:
        zones.append(_shrink(by_role["single"], 1))
    labels = place_structures(rng, size, zones, int(rng.integers(3, 7)))
    return render_image(rng, labels), labels, regions


def region_answer(labels: np.ndarray, region: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """``(mask (S, S) uint8 0/1, instances (S, S) uint16 renumbered 1..n, n)`` inside ``region``."""
    clipped = np.where(region, labels, 0)
    ids = np.unique(clipped[clipped > 0])
    lookup = np.zeros(labels.max() + 1, np.uint16)
    lookup[ids] = np.arange(1, ids.size + 1)
    return (clipped > 0).astype(np.uint8), lookup[clipped], int(ids.size)


def write_regions(out: str | Path, count: int, size: int = 128, seed: int = 0, progress: bool = True) -> int:
    """Write ``count`` images and their regions (see the module docstring); returns the
    number of (image, region) samples."""
    if count < 1 or size < 32 or seed < 0:
        raise UserError(f"synth regions: need --count >= 1, --size >= 32 and --seed >= 0 "
                        f"(got {count}, {size}, {seed})")
    root = prepare_dir(Path(out))
    folders = {name: prepare_dir(root / name) for name in ("images", "regions", "masks", "instances")}
    samples = []
    for index in tqdm(range(count), desc="regions", unit="img", disable=not progress):
        image, labels, regions = render_item(seed, index, size)
        stem = f"img_{index:05d}"
        write_png(folders["images"] / f"{stem}.png", image)
        ids = {role: f"{stem}_r{k}" for k, (role, _) in enumerate(regions)}
        for role, region in regions:
            mask, instances, n = region_answer(labels, region)
            name = ids[role]
            for folder, array in (("regions", region.astype(np.uint8)), ("masks", mask), ("instances", instances)):
                write_png(folders[folder] / f"{name}.png", array)
            samples.append({"id": name, "image": f"images/{stem}.png", "region": f"regions/{name}.png",
                            "mask": f"masks/{name}.png", "instances": f"instances/{name}.png", "role": role,
                            "inside": ids["outer"] if role == "inner" else None,
                            "contains": [ids["inner"]] if role == "outer" else [], "count": n})
    index = {"format": FORMAT, "version": 1, "size": size, "seed": seed, "classes": list(CLASSES),
             "images": count, "samples": samples}
    try:
        (root / INDEX).write_text(json.dumps(index, indent=1) + "\n")
    except OSError as exc:
        raise UserError(f"{root / INDEX}: cannot write ({exc.strerror or exc})") from None
    return len(samples)
