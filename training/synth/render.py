"""Render a scene: tissue (texture, band, cavities, vessels, dots, defocus), then the optics.

Smooth quantities (band coordinates, depth, cavities, fat, shading) are evaluated on a grid
of ``step × step`` blocks and upsampled; only texture, dots and noise are per pixel. That
keeps a 1920 × 1080 stereo frame near a tenth of a second on one CPU core.
"""

from __future__ import annotations

import cv2
import numpy as np

from .detail import COLS_PER_UNIT, ROWS_PER_HW, U_RANGE, VN, band_frame, cavity_value, detail, fine_tile
from .fields import Pose, blocks, coords, sample, upsample, view_map
from .optics import finish_eye
from .scene import Scene

BLUR_SIGMAS = (0.0025, 0.007)  # defocus levels, scene units (≈ 3 and 8 px at 1080p)
FINE_SCALE = 1.2               # the fine grid spans ±1.2 scene units: ~1.3 px cells at 1080p


def render_stereo(scene: Scene, height: int = 1080, width: int = 1920) -> tuple[np.ndarray, np.ndarray]:
    """One side-by-side stereo frame of ``scene``.

    Returns ``frame`` ``(height, width, 3) uint8 RGB`` (left eye in columns ``[0, width//2)``,
    right eye after it) and ``left_mask`` ``(height, width // 2) uint8``, 1 on the nerve.
    Deterministic: sensor noise is drawn from ``scene.seed``.
    """
    return render_frame(scene, height, width, Pose(), 0.0, np.random.default_rng(scene.seed + 1))


def render_frame(scene: Scene, height: int, width: int, pose: Pose, focus_shift: float,
                 noise_rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """:func:`render_stereo` under a camera ``pose`` and a focus offset (video frames)."""
    if height < 16 or width < 32:
        raise ValueError(f"frame size {width}x{height} is too small (at least 32x16)")
    eye_w = width // 2
    pose = pose._replace(zoom=pose.zoom * scene.zoom)  # the microscope's magnification
    shift = max(1, round(scene.disparity * height * pose.zoom))
    tissue, mask = render_tissue(scene, height, eye_w, eye_w + shift, pose, focus_shift)
    frame = np.zeros((height, width, 3), np.uint8)
    frame[:, :eye_w] = finish_eye(tissue[:, :eye_w], scene, "left", noise_rng)
    frame[:, eye_w:2 * eye_w] = finish_eye(tissue[:, shift:shift + eye_w], scene, "right", noise_rng)
    return frame, np.ascontiguousarray(mask[:, :eye_w])


def block_step(height: int) -> int:
    """Block size for smooth fields: 4 px at 1080p, so their detail scales with the image."""
    return max(1, round(height / 270))


def render_tissue(scene: Scene, height: int, eye_w: int, width: int, pose: Pose,
                  focus_shift: float) -> tuple[np.ndarray, np.ndarray]:
    """Tissue seen by the camera: ``(height, width) float32`` (1.0 = white) and nerve mask
    ``(height, width) uint8``. The view is centred on an eye ``eye_w`` wide; extra columns
    (``width > eye_w``) are what the right eye sees beyond it."""
    d = detail(scene)
    shape = (height, width)
    step = block_step(height)
    low_shape = (-(-height // step), -(-width // step))
    a = view_map(height, eye_w, pose, 1)
    a_low = view_map(height, eye_w, pose, step)
    x, y = coords(a_low, low_shape)
    image = _ground(scene, d, a, a_low, shape, low_shape, step)
    depth = scene.focus_tilt[0] * x + scene.focus_tilt[1] * y + 0.15 * sample(d.depth, a_low, low_shape)
    sheen = _sheen(scene, d, a_low, low_shape)
    if scene.wound is not None:
        inside = _wound(scene, d, image, a_low, low_shape, step, x, y)
        depth -= scene.wound.depth * inside
        sheen *= 1.0 - 0.5 * inside  # a cavity floor faces away: less sheen, still a cavity
    image += upsample(sheen, step, shape)
    _vessels(d, image, a, height * pose.zoom)
    _dots(d, image, a, height * pose.zoom)
    mask = np.zeros(shape, np.uint8)
    if scene.band is not None:
        alpha_low = _band(scene, d, image, mask, x, y, step)
        depth += scene.band.elevation * alpha_low
    weight = np.clip((np.abs(depth - scene.focus - focus_shift) - 0.06) * 2.0 * scene.blur, 0, 1)
    image = _defocus(image, upsample(weight.astype(np.float32), step, shape), height * pose.zoom)
    return image, mask


def _ground(scene, d, a, a_low, shape, low_shape, step) -> np.ndarray:
    """Grey tissue: coarse texture, uneven light and fat lobules (smooth: evaluated per
    block and upsampled), plus fine grain and fibres along ``fibre_angle`` per pixel."""
    shading = 1.0 + 0.12 * sample(d.shading, a_low, low_shape)
    fat = sample(d.fat, a_low, low_shape)
    fat = np.clip((fat - 0.9) / 0.8, 0.0, 1.0) * scene.fat
    base = scene.level * shading + fat + sample(d.texture, a_low, low_shape)
    base += _surface(scene, d, a_low, low_shape) * scene.level
    # The tile repeats every 0.6 scene units: any offset within ±0.3 is a new phase.
    offset = ((scene.seed % 997) / 997.0 * 0.6 - 0.3, (scene.seed % 991) / 991.0 * 0.6 - 0.3)
    image = sample(fine_tile(), a, shape, angle=scene.fibre_angle + 0.2, scale=FINE_SCALE,
                   offset=offset)
    image *= scene.contrast
    image += upsample(base.astype(np.float32), step, shape)
    return image


def _surface(scene, d, a_low, low_shape) -> np.ndarray:
    """Large smooth surfaces: lobes of their own brightness and folds shading into deep
    shadow. ``low_shape float32``, a relative change of the tissue grey (-1 black … 0 same)."""
    lobes = np.tanh(2.0 * sample(d.lobes, a_low, low_shape))
    out = scene.relief * lobes
    if scene.folds > 0:
        f = sample(d.folds, a_low, low_shape) / (8.0 * scene.fold_width)
        # Dark in the crease, shading off more slowly on one side than on the other.
        crease = np.exp(-f * f) * (0.65 + 0.35 * np.tanh(f))
        out = (1.0 + out) * (1.0 - scene.folds * crease) - 1.0
    return out


def _sheen(scene, d, a_low, low_shape) -> np.ndarray:
    """Broad glossy sheens, ``low_shape float32`` light added to the tissue (reflected, so
    not scaled by the tissue's grey; cavity walls shine too). A standardised field over a
    threshold set by the cover: the sheen rises smoothly (a glossy surface, not a dot) and
    saturates the sensor in its middle."""
    threshold = 1.6 - 3.2 * scene.sheen_cover
    rise = np.clip((sample(d.sheen, a_low, low_shape) - threshold) / 1.0, 0.0, 1.0)
    return (scene.sheen * rise * rise).astype(np.float32)


def _wound(scene, d, image, a_low, low_shape, step, x, y) -> np.ndarray:
    """Darken cavities and brighten their wet rims in ``image`` (in place); return the
    low-resolution cavity coverage ``low_shape float32`` (cavities sit deeper: defocus)."""
    w = scene.wound
    value = cavity_value(w, sample(d.cavity, a_low, low_shape), x, y).astype(np.float32)
    for block in blocks(value > -0.12, step, image.shape):
        full = block.up(value)
        view = image[block.region]
        inside = np.clip(full * (1 / 0.08), 0.0, 1.0)
        deep = np.clip(full * (1 / 0.25), 0.0, 1.0)
        view *= 1.0 - w.darkness * (0.55 * inside + 0.45 * deep)
        if w.rim > 0:
            # A sharp wet lip, and a dimmer sheen running down the cavity wall.
            view += w.rim * cv2.exp(-(full * (1 / 0.03)) ** 2)
            view += (0.25 * w.rim) * cv2.exp(-((full - 0.06) * (1 / 0.05)) ** 2)
    return np.clip(value / 0.08, 0.0, 1.0)


def _band(scene, d, image, mask, x, y, step) -> np.ndarray:
    """Blend the band texture into ``image`` and set ``mask`` to 1 where ``|vn| < 1``
    (both in place); return the low-resolution coverage (the band sits at its own depth)."""
    u, vn = band_frame(scene.band, x, y)
    map_x = ((u + U_RANGE) * COLS_PER_UNIT - 0.5).astype(np.float32)
    map_y = ((vn + VN) * ROWS_PER_HW - 0.5).astype(np.float32)
    lo, hi = (VN - 1.0) * ROWS_PER_HW - 0.5, (VN + 1.0) * ROWS_PER_HW - 0.5
    for block in blocks(np.abs(vn) < VN + 0.1, step, image.shape):
        my = block.up(map_y)
        band = cv2.remap(d.band, block.up(map_x), my, cv2.INTER_LINEAR,
                         borderMode=cv2.BORDER_REPLICATE)
        view = image[block.region]
        value, alpha = band[..., 0], band[..., 1]
        value -= view
        value *= alpha
        view += value
        if scene.band.kind == "nerve":
            mask[block.region][(my > lo) & (my < hi)] = 1
    return np.clip(1.2 - np.abs(vn), 0.0, 1.0).astype(np.float32)


def _to_pixels(a: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Scene ``points (N, 2)`` → pixel centres ``(N, 2)`` in the view ``a``."""
    inv = np.linalg.inv(a[:, :2])
    return (points - a[:, 2]) @ inv.T


def _vessels(d, image, a, px_per_unit) -> None:
    """Thin dark vessels (a line-shaped confounder that is dark, not bright)."""
    if not d.vessels:
        return
    layer = np.zeros(image.shape, np.uint8)
    for line, width, darkness in d.vessels:
        pts = np.round(_to_pixels(a, line) * 16).astype(np.int32)
        cv2.polylines(layer, [pts], False, int(255 * darkness), max(1, round(width * px_per_unit)),
                      cv2.LINE_AA, shift=4)
    layer = cv2.GaussianBlur(layer, (0, 0), max(0.5, 0.0008 * px_per_unit))
    image *= 1.0 - layer.astype(np.float32) * (1.0 / 255.0)


def _dots(d, image, a, px_per_unit) -> None:
    """Specular highlights: round dots with blown cores and a soft halo."""
    if not len(d.dots):
        return
    px = _to_pixels(a, d.dots[:, :2])
    h, w = image.shape
    radius = d.dots[:, 2] * px_per_unit
    seen = (px[:, 0] > -radius) & (px[:, 0] < w + radius) & (px[:, 1] > -radius) & (px[:, 1] < h + radius)
    layer = np.zeros(image.shape, np.uint8)
    for (cx, cy), r, s in zip(px[seen], radius[seen], d.dots[seen, 3]):
        cv2.circle(layer, (int(cx * 16), int(cy * 16)), max(8, int(r * 16)), int(255 * s), -1,
                   cv2.LINE_AA, shift=4)
    # The glow is wide and smooth: blur it at a quarter of the size.
    small = cv2.resize(layer, (max(1, w // 4), max(1, h // 4)), interpolation=cv2.INTER_AREA)
    small = cv2.GaussianBlur(small, (0, 0), max(0.6, 0.0008 * px_per_unit))
    halo = cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)
    image += layer.astype(np.float32) * (1.0 / 170.0)
    image += halo.astype(np.float32) * (1.0 / 300.0)


def _defocus(image: np.ndarray, weight: np.ndarray, px_per_unit: float) -> np.ndarray:
    """Blend ``image`` with two blurred copies by ``weight`` (0 sharp … 1 most blurred).

    The blurred copies are made at reduced size (blur hides the loss) to stay fast.
    """
    h, w = image.shape
    f = max(1, int(px_per_unit * BLUR_SIGMAS[0]))
    small = cv2.resize(image, (max(1, w // f), max(1, h // f)), interpolation=cv2.INTER_AREA)
    out = image.copy()
    prev = image
    for i, sigma in enumerate(BLUR_SIGMAS):
        blurred = cv2.GaussianBlur(small, (0, 0), max(0.3, sigma * px_per_unit / f))
        blurred = cv2.resize(blurred, (w, h), interpolation=cv2.INTER_LINEAR)
        t = np.clip(weight * 2.0 - i, 0.0, 1.0)
        out += (blurred - prev) * t
        prev = blurred
    return out
