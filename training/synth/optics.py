"""What the stereoscope and camera add to each eye: glare, vignette, sensor noise, tone,
colour tint and the burned-in red scale bar."""

from __future__ import annotations

import functools
import math

import cv2
import numpy as np

from .scene import Scene

SATURATE = 1.3                 # glare pushes towards this: above white even after noise
SCALE_RED = (235, 25, 20)      # RGB
SCALE_BAR = 0.18               # bar length, fraction of the eye width


def finish_eye(tissue: np.ndarray, scene: Scene, eye: str, rng: np.random.Generator) -> np.ndarray:
    """Tissue ``(H, W) float32`` (1.0 = white) of one eye → ``(H, W, 3) uint8 RGB``."""
    h, w = tissue.shape
    gain, glare = glare_maps(scene, eye, h, w)
    image = cv2.multiply(tissue, gain, scale=scene.exposure)
    image += glare
    image = _blur(image, scene)
    # Sensor noise at half resolution: demosaicing and compression make real noise blotchy.
    noise = rng.standard_normal((-(-h // 2), -(-w // 2)), dtype=np.float32)
    noise = cv2.resize(noise, (noise.shape[1] * 2, noise.shape[0] * 2), interpolation=cv2.INTER_LINEAR)
    image += scene.noise * 1.4 * noise[:h, :w]
    np.maximum(image, 0.0, out=image)
    grey = cv2.convertScaleAbs(image, alpha=255.0)
    rgb = cv2.LUT(cv2.merge([grey, grey, grey]), tone_table(scene.gamma, scene.tint))
    draw_scale_bar(rgb)
    return _compress(rgb, scene.jpeg)


def _blur(image: np.ndarray, scene: Scene) -> np.ndarray:
    """Whole-field defocus (shallow depth of field, a soft lens) and camera motion blur,
    both scaled to the eye height so a scene looks the same at any size."""
    h = image.shape[0]
    sigma = scene.defocus * h
    if sigma > 0.3:
        image = cv2.GaussianBlur(image, (0, 0), sigma)
    length, angle = scene.motion
    n = int(round(length * h))
    if n >= 2:
        kernel = np.zeros((2 * n + 1, 2 * n + 1), np.float32)
        dx, dy = math.cos(angle) * n, math.sin(angle) * n
        cv2.line(kernel, (round(n - dx), round(n - dy)), (round(n + dx), round(n + dy)), 1.0, 1, cv2.LINE_AA)
        image = cv2.filter2D(image, -1, kernel / kernel.sum(), borderType=cv2.BORDER_REFLECT)
    return image


def _compress(rgb: np.ndarray, quality: int) -> np.ndarray:
    """Round-trip through JPEG at ``quality`` (0: untouched): the blocking and smoothing
    of the camera's and the recorder's compression."""
    if quality <= 0:
        return rgb
    ok, data = cv2.imencode(".jpg", rgb, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    return cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if ok else rgb


@functools.lru_cache(maxsize=16)
def tone_table(gamma: float, tint: tuple[float, float, float]) -> np.ndarray:
    """``(256, 1, 3) uint8`` LUT: gamma and a faint tint that fades out towards white
    (a blown pixel is white in every channel)."""
    v = np.arange(256, dtype=np.float64) / 255.0
    toned = v ** gamma
    fade = np.clip((toned - 0.85) / 0.15, 0.0, 1.0)
    table = np.stack([toned * (t + (1.0 - t) * fade) for t in tint], axis=1)
    return np.round(table * 255.0).astype(np.uint8)[:, None, :]


@functools.lru_cache(maxsize=32)
def glare_maps(scene: Scene, eye: str, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """``(gain, offset)``, each ``(height, width) float32``: the eye sees ``tissue · gain +
    offset``. Holds a vignette and the glare that blows out a band at the field edge (the
    runtime detects and cuts it) and a partial bloom from a corner."""
    rng = np.random.default_rng([scene.seed, 0 if eye == "left" else 1])
    step = max(1, round(height / 135))
    hs, ws = -(-height // step), -(-width // step)
    xs = ((np.arange(ws) + 0.5) * step / width)[None, :]           # 0..1 across the eye
    ys = ((np.arange(hs) + 0.5) * step / height)[:, None]          # 0..1 down the eye
    aspect = height / width
    side = scene.glare_side
    if side == "outer":
        dist, along = (xs if eye == "left" else 1.0 - xs), ys
    else:
        dist, along = (ys if side == "top" else 1.0 - ys) * aspect, xs
    ragged = cv2.resize(rng.normal(0.0, 1.0, (1, 8)).astype(np.float32), (256, 1),
                        interpolation=cv2.INTER_CUBIC)[0]
    edge = scene.glare_width * (1.0 + 0.2 * np.interp(along, np.linspace(0, 1, 256), ragged))
    glare = 1.6 * np.exp(-np.maximum(dist - edge, 0.0) / rng.uniform(0.02, 0.05))
    if scene.bloom > 0:
        cx, cy = rng.choice([0.0, 1.0]), rng.choice([0.0, 1.0])
        r2 = (xs - cx) ** 2 + ((ys - cy) * aspect) ** 2
        glare += scene.bloom * np.exp(-r2 / rng.uniform(0.03, 0.09))
    r2 = (xs - 0.5) ** 2 + ((ys - 0.5) * aspect) ** 2
    vignette = 1.0 - scene.vignette * r2 / 0.6
    # Glare g pulls a pixel towards SATURATE: v·(1 - g) + g·SATURATE, as a gain and an offset.
    glare = np.clip(glare, 0.0, 2.0)
    gain = vignette * (1.0 - np.minimum(glare, 1.0))
    return tuple(cv2.resize(m.astype(np.float32), (ws * step, hs * step),
                            interpolation=cv2.INTER_LINEAR)[:height, :width]
                 for m in (gain, glare * SATURATE))


def draw_scale_bar(rgb: np.ndarray) -> None:
    """Burn a thin red scale bar labelled "2000 µm" into the bottom-right corner (in place).

    Hershey fonts have no µ: it is a 'u' with a descender drawn down its left stem.
    """
    h, w = rgb.shape[:2]
    k = h / 1080.0
    length, thick = round(SCALE_BAR * w), max(1, round(5 * k))
    x1, y1 = w - round(0.05 * w), h - round(0.045 * h)
    cv2.rectangle(rgb, (x1 - length, y1 - thick), (x1, y1), SCALE_RED, -1)
    scale, weight = 0.9 * k, max(1, round(2 * k))
    font = cv2.FONT_HERSHEY_SIMPLEX
    parts = ("2000 ", "u", "m")
    widths = [cv2.getTextSize(p, font, scale, weight)[0][0] for p in parts]
    x = x1 - length // 2 - sum(widths) // 2
    base = y1 - thick - max(2, round(10 * k))
    for part, width in zip(parts, widths):
        cv2.putText(rgb, part, (x, base), font, scale, SCALE_RED, weight, cv2.LINE_AA)
        if part == "u":
            stem = x + _left_stem(scale, weight)
            cv2.line(rgb, (stem, base - max(1, round(4 * k))), (stem, base + max(2, round(9 * k))),
                     SCALE_RED, weight, cv2.LINE_AA)
        x += width


@functools.lru_cache(maxsize=16)
def _left_stem(scale: float, weight: int) -> int:
    """Column of the left stem of a Hershey 'u', relative to where the text starts."""
    size = math.ceil(40 * max(scale, 0.1)) + 10
    canvas = np.zeros((size, size), np.uint8)
    cv2.putText(canvas, "u", (0, size - 5), cv2.FONT_HERSHEY_SIMPLEX, scale, 255, weight)
    cols = np.flatnonzero(canvas.max(axis=0) > 127)
    return int(cols[0] + weight // 2) if cols.size else 0
