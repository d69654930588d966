"""The fine detail of a scene, drawn from its seed: noise grids, band texture, dots, vessels.

Drawn once per scene (cached) and in a fixed order, so a scene's detail does not depend
on the size it is rendered at, on the camera pose, or on what was rendered before.
"""

from __future__ import annotations

import functools
import math
from typing import NamedTuple

import cv2
import numpy as np

from .fields import fbm, sample_points, smooth, tileable
from .scene import Band, Scene, Wound

VN = 1.5          # band texture rows cover ±VN half-widths across the band
ROWS_PER_HW = 64  # texture rows per half-width
U_RANGE = 1.3     # band texture columns cover u in ±U_RANGE scene units
COLS_PER_UNIT = 400


class Detail(NamedTuple):
    texture: np.ndarray      # (256, 256) float32, coarse tissue texture and fibres (intensity units)
    shading: np.ndarray      # (64, 64) float32, uneven illumination
    depth: np.ndarray        # (64, 64) float32, tissue height (focus)
    fat: np.ndarray          # (128, 128) float32, fat lobules where high
    cavity: np.ndarray       # (128, 128) float32, wound cavity shape (two scales: ragged edges)
    band: np.ndarray | None  # (2·VN·ROWS_PER_HW, 2·U_RANGE·COLS_PER_UNIT, 2) float32: value, alpha
    dots: np.ndarray         # (N, 4) float32: x, y, radius (scene units), strength
    vessels: tuple           # of ((M, 2) float32 polyline, width, darkness)
    lobes: np.ndarray        # (64, 64) float32, large smooth tissue shapes
    sheen: np.ndarray        # (64, 64) float32, where broad glossy sheens sit (high)
    folds: np.ndarray        # (128, 128) float32, folds run along its zero line


@functools.lru_cache(maxsize=8)
def detail(scene: Scene) -> Detail:
    """Everything random about ``scene`` beyond its parameters (cached per scene)."""
    rng = np.random.default_rng(scene.seed)
    c = scene.contrast
    # Texture and fibres are summed here, once, so a frame samples one grid per scale.
    texture = 0.07 * c * fbm(rng, 256) + 0.05 * c * _fibres(rng, scene.fibre_angle)
    grids = dict(shading=smooth(rng, 4), depth=smooth(rng, 5), fat=smooth(rng, 14, 128),
                 cavity=smooth(rng, 12, 128) + 0.4 * smooth(rng, 36, 128))
    band = band_texture(scene.band, rng) if scene.band else None
    dots = _dots(scene, rng, grids["cavity"])
    vessels = tuple(_vessel(rng) for _ in range(scene.vessels))
    # Drawn last, so the older detail of a seed stays what it was.
    wide = dict(lobes=smooth(rng, int(rng.integers(3, 7))), sheen=smooth(rng, int(rng.integers(4, 9))),
                folds=smooth(rng, int(rng.integers(3, 8)), 128))
    return Detail(texture=texture, band=band, dots=dots, vessels=vessels, **grids, **wide)


@functools.lru_cache(maxsize=1)
def fine_tile() -> np.ndarray:
    """``(2048, 2048) float32``: fine grain and fibres along x, shared by all scenes (each
    samples it at its own offset and angle), so fine detail costs nothing per scene.

    A periodic 512² tile repeated 4 × 4 rather than sampled with wrap-around: OpenCV's
    warp is several times slower for source points outside the grid.
    """
    rng = np.random.default_rng(20240611)
    tile = 0.035 * tileable(rng, 512) + 0.03 * tileable(rng, 512, streaks=True)
    return np.tile(tile.astype(np.float32), (4, 4))


def _fibres(rng: np.random.Generator, angle: float) -> np.ndarray:
    """``(256, 256) float32`` streaks running along ``angle``."""
    streaks = cv2.resize(fbm(rng, 256, base=16, aspect=8), (256, 256), interpolation=cv2.INTER_CUBIC)
    # fbm's streaks run along x; OpenCV turns counter-clockwise on screen (y down), so
    # -angle turns them to (cos angle, sin angle): the direction the fine tile uses too.
    turn = cv2.getRotationMatrix2D((127.5, 127.5), -math.degrees(angle), 1.0)
    return cv2.warpAffine(streaks, turn, (256, 256), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REFLECT)


def band_frame(band: Band, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Along-band ``u`` and signed distance across the band, in half-widths, at scene ``x, y``."""
    c, s = math.cos(band.angle), math.sin(band.angle)
    dx, dy = x - band.centre[0], y - band.centre[1]
    u = c * dx + s * dy
    w = c * dy - s * dx
    k = band.curvature
    dist = (w - 0.5 * k * u * u) / np.sqrt(1.0 + (k * u) ** 2)
    half = band.half_width * (1.0 + band.wobble * np.sin(2 * math.pi * u / band.wobble_period
                                                         + band.phase))
    return u, dist / half


def cavity_value(wound: Wound, field: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """> 0 inside a cavity. ``field`` is the cavity grid already sampled at ``x, y``."""
    env = np.zeros_like(x)
    for (cx, cy), (rx, ry) in zip(wound.centres, wound.radii):
        env += np.exp(-(((x - cx) / rx) ** 2 + ((y - cy) / ry) ** 2))
    return env + 0.45 * field - wound.threshold


def band_texture(band: Band, rng: np.random.Generator) -> np.ndarray:
    """``(rows, cols, 2) float32``: band value and coverage in band coordinates."""
    rows, cols = int(2 * VN * ROWS_PER_HW), int(2 * U_RANGE * COLS_PER_UNIT)
    vn = ((np.arange(rows, dtype=np.float32) + 0.5) / ROWS_PER_HW - VN)[:, None]
    u = ((np.arange(cols, dtype=np.float32) + 0.5) / COLS_PER_UNIT - U_RANGE)[None, :]
    a = np.abs(vn)
    alpha = np.clip((1.12 - a) / 0.24, 0.0, 1.0)
    alpha = alpha * alpha * (3 - 2 * alpha)  # smoothstep: half coverage at |vn| = 1
    dome = np.sqrt(np.clip(1.0 - vn * vn, 0.0, 1.0))
    # Streaks along the band: noise with long correlation along u, short across.
    streaks = cv2.resize(rng.standard_normal((rows // 4, cols // 48)).astype(np.float32),
                         (cols, rows), interpolation=cv2.INTER_CUBIC)
    if band.kind == "nerve":
        value = _nerve_value(band, rng, vn, u, a, dome, streaks)
    else:
        value = _tendon_value(band, rng, vn, u, a, dome, streaks)
    value = np.broadcast_to(value, (rows, cols))
    return np.dstack([value, np.broadcast_to(alpha, (rows, cols))]).astype(np.float32)


def _nerve_value(band, rng, vn, u, a, dome, streaks):
    # Fine longitudinal fibres (striation), the periodic transverse "bands of Fontana"
    # and a dark epineurial edge: what makes a nerve a nerve and not just a bright strip.
    t = band.texture
    fibres = sum(rng.uniform(0.3, 1.0) * np.sin(2 * math.pi * rng.uniform(3, 9) * vn
                                                 + rng.uniform(0, 2 * math.pi))
                 for _ in range(3)) / 3.0
    period = rng.uniform(0.8, 1.6) * band.half_width
    fontana = np.cos(2 * math.pi * (u / period + rng.uniform(0.2, 0.6) * a))
    edge = np.exp(-((a - 0.93) / 0.07) ** 2)
    return (band.level * (0.8 + 0.2 * dome) + t * (0.08 * fibres + 0.05 * streaks
            + 0.045 * fontana) - 0.14 * edge)


def _tendon_value(band, rng, vn, u, a, dome, streaks):
    # Smooth, pale and glossy: one bright streak along the band, hardly any structure.
    gloss_width = rng.uniform(0.08, 0.16)
    gloss = np.exp(-((vn - band.gloss_offset) / gloss_width) ** 2)
    sheen = 0.7 + 0.3 * np.cos(2 * math.pi * u / rng.uniform(0.3, 0.8) + rng.uniform(0, 6.3))
    edge = np.exp(-((a - 0.95) / 0.08) ** 2)
    return (band.level * (0.72 + 0.28 * dome) + 0.015 * streaks
            + band.texture * 0.45 * gloss * sheen - 0.05 * edge)


def _dots(scene: Scene, rng: np.random.Generator, cavity: np.ndarray) -> np.ndarray:
    """Specular dots, clustered like wet patches; never on the band (they are not nerve)."""
    n = scene.highlights
    centres = rng.uniform(-0.6, 0.6, (int(rng.integers(3, 9)), 2))
    pick = centres[rng.integers(0, len(centres), n)]
    xy = pick + rng.normal(0.0, rng.uniform(0.04, 0.15), (n, 2))
    loose = rng.uniform(size=n) < 0.3
    xy[loose] = rng.uniform(-0.6, 0.6, (int(loose.sum()), 2))
    radius = np.clip(np.exp(rng.normal(math.log(0.0035), 0.5, n)), 0.0015, 0.012)
    strength = rng.uniform(0.5, 1.0, n)
    if scene.wound is not None and scene.wound.rim > 0:
        xy, radius, strength = _rim_dots(scene.wound, rng, cavity, xy, radius, strength)
    if scene.band is not None:
        _, vn = band_frame(scene.band, xy[:, 0], xy[:, 1])
        keep = np.abs(vn) * scene.band.half_width > 1.3 * scene.band.half_width + radius
        xy, radius, strength = xy[keep], radius[keep], strength[keep]
    return np.column_stack([xy, radius, strength]).astype(np.float32)


def _rim_dots(wound, rng, cavity, xy, radius, strength):
    # Wet cavity edges glint: add dots where the cavity value is near its threshold.
    cand = rng.uniform(-0.6, 0.6, (3000, 2))
    value = cavity_value(wound, sample_points(cavity, cand), cand[:, 0], cand[:, 1])
    rim = cand[np.abs(value) < 0.03][:80]
    r = np.clip(np.exp(rng.normal(math.log(0.003), 0.4, len(rim))), 0.0015, 0.008)
    return (np.vstack([xy, rim]), np.concatenate([radius, r]),
            np.concatenate([strength, rng.uniform(0.7, 1.0, len(rim))]))


def _vessel(rng: np.random.Generator) -> tuple[np.ndarray, float, float]:
    """A thin dark vessel: a smooth random walk, width and darkness in scene units."""
    n = int(rng.integers(20, 60))
    heading = rng.uniform(0, 2 * math.pi) + np.cumsum(rng.normal(0.0, 0.12, n))
    steps = 0.02 * np.column_stack([np.cos(heading), np.sin(heading)])
    line = rng.uniform(-0.5, 0.5, 2) + np.cumsum(steps, axis=0)
    return line.astype(np.float32), float(rng.uniform(0.002, 0.006)), float(rng.uniform(0.1, 0.3))
