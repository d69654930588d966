"""A synthetic multi-class instance set: nerves, vessels and tendons in one stereoscope-like frame.

Each frame is a square eye crop of grey wet tissue with several structures, each its own
instance: **nerve** (a narrow bright band, finely striated along its length), **vessel**
(a narrower dark tube with a bright central reflex, faintly red) and **tendon** (a broad
pale glossy band). Structures cross; the one drawn later hides the earlier one, so an
instance's mask is what is visible of it (possibly in two pieces). The confounders of the
real footage are added on top and are *not* instances: specular dots, a blown-out edge,
shallow focus, sensor noise and the red "2000 µm" scale bar.

Written twice, as two data sets in the two layouts ``nerveseg train instance`` reads:

* ``OUT/coco``: ``annotations.json`` (uncompressed RLE masks, bbox, area) + ``images/*.png``;
* ``OUT/folders``: ``image/<class>/<name>.png`` (hard links to the same image) +
  ``mask/<class>/<name>.png``, a label map: pixel value k is that class's k-th instance.

numpy and OpenCV only; item ``i`` draws from its own generator seeded by ``(seed, 3, i)``.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from nerveseg.engines.errors import UserError

from .fields import fbm, smooth
from .files import prepare_dir, write_png
from .optics import draw_scale_bar

CLASSES = ("nerve", "vessel", "tendon")
COUNTS = {"nerve": (0, 2), "vessel": (0, 2), "tendon": (0, 1)}          # instances per frame, min..max
HALF_WIDTH = {"nerve": (0.016, 0.03), "vessel": (0.011, 0.02), "tendon": (0.05, 0.08)}  # of the side
MIN_AREA = 0.002  # visible fraction of the frame below which a structure is left out
_INSTANCES = 3    # the "kind" in an item's seed (the classify/segment sets use 1 and 2)


@dataclass(frozen=True)
class Structure:
    """One instance: class, centre line ``(P, 2)`` in pixels, half width in pixels."""

    cls: str
    line: np.ndarray
    half_width: float


def _centre_line(rng: np.random.Generator, size: int) -> np.ndarray:
    """A gently curved quadratic Bézier, 0.3 to 1.2 frame sides long: a stretch of a fibre
    that may run out of the frame or end inside it (a cut, or where it dives into tissue)."""
    angle = rng.uniform(0, np.pi)
    direction = np.array([np.cos(angle), np.sin(angle)])
    normal = np.array([-direction[1], direction[0]])
    centre = size * (0.5 + rng.uniform(-0.3, 0.3, 2))
    reach = size * rng.uniform(0.15, 0.6, 2)
    start, end = centre - direction * reach[0], centre + direction * reach[1]
    bend = centre + normal * size * rng.uniform(-0.25, 0.25)
    t = np.linspace(0, 1, 64)[:, None]
    return (1 - t) ** 2 * start + 2 * (1 - t) * t * bend + t ** 2 * end


def random_structures(rng: np.random.Generator, size: int) -> list[Structure]:
    """Between one and five structures in random drawing order (later ones on top)."""
    found: list[Structure] = []
    while not found:
        for cls in CLASSES:
            low, high = COUNTS[cls]
            for _ in range(int(rng.integers(low, high + 1))):
                found.append(Structure(cls, _centre_line(rng, size), size * rng.uniform(*HALF_WIDTH[cls])))
    return [found[i] for i in rng.permutation(len(found))]


def distance_to(line: np.ndarray, size: int) -> np.ndarray:
    """``(size, size) float32`` distance in pixels from every pixel to the polyline ``line``."""
    canvas = np.full((size, size), 255, np.uint8)
    cv2.polylines(canvas, [np.round(line * 16).astype(np.int32)], False, 0, 1, cv2.LINE_8, shift=4)
    return cv2.distanceTransform(canvas, cv2.DIST_L2, 5)


def _coverage(s: Structure, distance: np.ndarray, wobble: np.ndarray) -> np.ndarray:
    """``(size, size) float32`` in [0, 1]: the band's soft-edged footprint (width wobbles)."""
    edge = s.half_width * (1.0 + 0.15 * wobble)
    return np.clip(edge - distance + 0.5, 0.0, 1.0)


def _shade(s: Structure, distance: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """``(size, size) float32`` grey value of the structure where it lies (0..1)."""
    across = np.clip(distance / max(s.half_width, 1e-3), 0.0, 1.5)
    size = distance.shape[0]
    grain = fbm(rng, size, base=16)[:size, :size]
    if s.cls == "nerve":  # fibres along the band: stripes that depend on the distance across
        period = rng.uniform(1.8, 3.0)
        stripes = np.sin(2 * np.pi * distance / period + 0.8 * grain)
        return rng.uniform(0.78, 0.92) + 0.07 * stripes - 0.12 * across ** 2
    if s.cls == "vessel":  # dark lumen, a thin bright reflex along its middle
        reflex = np.exp(-(across / 0.22) ** 2)
        return rng.uniform(0.16, 0.28) + 0.35 * reflex + 0.03 * grain + 0.1 * across ** 2
    offset = rng.uniform(-0.5, 0.5)  # tendon: smooth and pale with a broad sheen
    sheen = np.exp(-((across - abs(offset)) / 0.25) ** 2)
    return rng.uniform(0.66, 0.76) + 0.15 * sheen + 0.02 * grain - 0.08 * across ** 2


def _tissue(rng: np.random.Generator, size: int) -> np.ndarray:
    """Grey wet tissue ``(size, size) float32``: texture plus slow illumination."""
    texture = fbm(rng, size, base=8)[:size, :size]
    light = cv2.resize(smooth(rng, 3, 16), (size, size), interpolation=cv2.INTER_CUBIC)
    return rng.uniform(0.36, 0.48) + 0.05 * texture + 0.06 * light


def _owners(coverage: list[np.ndarray], glare: np.ndarray) -> np.ndarray:
    """``(size, size) int`` index of the structure seen at each pixel (-1: tissue or glare)."""
    owner = np.full(glare.shape, -1, np.int32)
    for k, cov in enumerate(coverage):
        owner[cov >= 0.5] = k
    owner[glare >= 0.5] = -1
    return owner


def render_instances(rng: np.random.Generator, size: int) -> tuple[np.ndarray, list[str], np.ndarray]:
    """One frame: ``(size, size, 3) uint8 RGB``, the instance classes, and their visible masks
    ``(K, size, size) bool`` (K ≥ 1). What the blown-out edge hides is not annotated, and a
    structure left with too little visible is not drawn at all."""
    glare = _glare(rng, size)
    while True:
        structures = random_structures(rng, size)
        distances = [distance_to(s.line, size) for s in structures]
        wobbles = [cv2.resize(smooth(rng, 4, 16), (size, size)) for _ in structures]
        coverage = [_coverage(s, d, w) for s, d, w in zip(structures, distances, wobbles)]
        owner = _owners(coverage, glare)
        keep = [k for k in range(len(structures)) if (owner == k).mean() >= MIN_AREA]
        if keep:
            break
    structures, distances, coverage = ([v[k] for k in keep] for v in (structures, distances, coverage))
    owner = _owners(coverage, glare)
    grey = _tissue(rng, size)
    red = np.zeros_like(grey)
    for s, d, cov in zip(structures, distances, coverage):
        grey = grey * (1 - cov) + _shade(s, d, rng) * cov
        red = red * (1 - cov) + (0.06 if s.cls == "vessel" else 0.0) * cov
    image = _optics(rng, grey * (1 - glare) + 1.05 * glare, red * (1 - glare))
    masks = np.stack([owner == k for k in range(len(structures))])
    return image, [s.cls for s in structures], masks


def _glare(rng: np.random.Generator, size: int) -> np.ndarray:
    """``(size, size) float32`` in [0, 1]: one edge of the field blown out to white."""
    yy, xx = np.mgrid[:size, :size].astype(np.float32)
    ramp = [xx, yy, size - 1 - xx, size - 1 - yy][int(rng.integers(4))] / size
    return np.clip((rng.uniform(0.04, 0.16) - ramp) / 0.06, 0.0, 1.0)


def _optics(rng: np.random.Generator, grey: np.ndarray, red: np.ndarray) -> np.ndarray:
    """Specular dots, shallow focus, noise, tint and scale bar → ``(H, W, 3) uint8 RGB``."""
    size = grey.shape[0]
    yy, xx = np.mgrid[:size, :size].astype(np.float32)
    for _ in range(int(rng.integers(6, 30))):  # wet highlights: bright round dots
        y, x = rng.uniform(0, size, 2)
        radius = size * rng.uniform(0.003, 0.012)
        grey += rng.uniform(0.3, 0.7) * np.exp(-((yy - y) ** 2 + (xx - x) ** 2) / (2 * radius ** 2))
    sharp = cv2.resize(smooth(rng, 2, 8), (size, size), interpolation=cv2.INTER_CUBIC)
    focus = np.clip(0.5 + 0.5 * sharp, 0.0, 1.0)
    blurred = cv2.GaussianBlur(grey, (0, 0), size * rng.uniform(0.006, 0.012))
    grey = grey * focus + blurred * (1 - focus)
    grey = grey + rng.normal(0.0, 0.012, grey.shape).astype(np.float32)
    tint = np.stack([grey + red, grey * 0.97, grey * 0.93], axis=-1)
    rgb = np.clip(tint * 255.0, 0, 255).astype(np.uint8)
    draw_scale_bar(rgb)
    return rgb


def uncompressed_rle(mask: np.ndarray) -> dict:
    """COCO uncompressed RLE of an ``(H, W) bool`` mask: run lengths in column-major order,
    starting with a (possibly empty) run of zeros."""
    flat = mask.T.ravel().astype(np.int8)
    bounds = np.concatenate([[0], np.flatnonzero(np.diff(flat)) + 1, [flat.size]])
    runs = np.diff(bounds).tolist()
    return {"size": list(mask.shape), "counts": ([0] if flat[0] else []) + runs}


def _annotation(index: int, image_id: int, cls: str, mask: np.ndarray) -> dict:
    ys, xs = np.nonzero(mask)
    x0, y0 = int(xs.min()), int(ys.min())
    box = [x0, y0, int(xs.max()) + 1 - x0, int(ys.max()) + 1 - y0]
    return {"id": index, "image_id": image_id, "category_id": CLASSES.index(cls) + 1,
            "segmentation": uncompressed_rle(mask), "area": int(mask.sum()), "bbox": box, "iscrowd": 0}


def _link(source: Path, target: Path) -> None:
    """The per-class copy of an image: a hard link where the file system allows one."""
    target.unlink(missing_ok=True)
    try:
        os.link(source, target)
    except OSError:
        target.write_bytes(source.read_bytes())


def _write_folders(root: Path, image_path: Path, name: str, classes: list[str], masks: np.ndarray) -> None:
    for cls in sorted(set(classes)):
        ids = np.zeros(masks.shape[1:], np.uint8)
        for k, mask in enumerate(m for c, m in zip(classes, masks) if c == cls):
            ids[mask] = k + 1
        _link(image_path, prepare_dir(root / "image" / cls) / name)
        write_png(prepare_dir(root / "mask" / cls) / name, ids)


def write_instances(out: str | Path, count: int, size: int = 256, seed: int = 0,
                    progress: bool = True) -> dict[str, int]:
    """Write ``count`` frames as ``OUT/coco`` and ``OUT/folders`` (module docstring);
    returns the number of instances per class."""
    if count < 1 or size < 32 or seed < 0:
        raise UserError(f"synth instances: need --count ≥ 1, --size ≥ 32 and --seed ≥ 0 "
                        f"(got {count}, {size}, {seed})")
    root = prepare_dir(Path(out))
    images_dir = prepare_dir(root / "coco" / "images")
    coco = {"images": [], "annotations": [],
            "categories": [{"id": k + 1, "name": c, "supercategory": "tissue"} for k, c in enumerate(CLASSES)]}
    totals = dict.fromkeys(CLASSES, 0)
    for index in tqdm(range(count), desc="instances", unit="img", disable=not progress):
        image, classes, masks = render_instances(np.random.default_rng((seed, _INSTANCES, index)), size)
        name = f"inst_{index:05d}.png"
        write_png(images_dir / name, image)
        coco["images"].append({"id": index + 1, "file_name": name, "height": size, "width": size})
        for cls, mask in zip(classes, masks):
            coco["annotations"].append(_annotation(len(coco["annotations"]) + 1, index + 1, cls, mask))
            totals[cls] += 1
        _write_folders(root / "folders", images_dir / name, name, classes, masks)
    path = root / "coco" / "annotations.json"
    try:
        path.write_text(json.dumps(coco))
    except OSError as exc:
        raise UserError(f"{path}: cannot write ({exc.strerror or exc})") from None
    return totals
