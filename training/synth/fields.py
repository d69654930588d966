"""Procedural noise fields in scene coordinates, and the camera that samples them.

Scene coordinates: origin at the centre of the left eye's view, unit = one eye height,
+x right, +y down. Every field is a small grid over the square ``[-EXTENT, EXTENT]²``
and a view samples it with one ``cv2.warpAffine``. Because no random number is ever
drawn per output pixel (except sensor noise), the same scene renders the same picture
at any resolution and under any camera pose.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import cv2
import numpy as np

EXTENT = 1.0  # grids cover [-1, 1]²: the view (±0.5) plus room for camera drift


class Pose(NamedTuple):
    """Camera pose: translation in scene units, rotation in radians, zoom factor."""

    tx: float = 0.0
    ty: float = 0.0
    angle: float = 0.0
    zoom: float = 1.0


def fbm(rng: np.random.Generator, size: int, base: int = 8, persistence: float = 0.55,
        aspect: int = 1) -> np.ndarray:
    """Fractal noise ``(size, size // aspect) float32``, zero mean, unit std.

    Built as a pyramid (upsample, add the next octave), so only small arrays are touched.
    ``aspect > 1`` squeezes the columns: resampled back to square, the noise turns into
    streaks along x, which is how fibrous tissue looks.
    """
    field = rng.standard_normal((base, max(1, base // aspect))).astype(np.float32)
    amplitude = 1.0
    while field.shape[0] < size:
        amplitude *= persistence
        h, w = field.shape[0] * 2, field.shape[1] * 2
        field = cv2.resize(field, (w, h), interpolation=cv2.INTER_CUBIC)
        field += amplitude * rng.standard_normal((h, w)).astype(np.float32)
    return _standardise(field)


def smooth(rng: np.random.Generator, cells: int, size: int = 64) -> np.ndarray:
    """Smooth noise ``(size, size) float32`` with about ``cells`` bumps across the grid."""
    field = rng.standard_normal((cells, cells)).astype(np.float32)
    return _standardise(cv2.resize(field, (size, size), interpolation=cv2.INTER_CUBIC))


def tileable(rng: np.random.Generator, size: int, streaks: bool = False) -> np.ndarray:
    """Periodic noise ``(size, size) float32`` (zero mean, unit std).

    Shaped in the Fourier domain, so copies placed side by side meet without seams.
    Isotropic grain with a 1/f spectrum, or (``streaks``) long along x, short along y:
    fine fibres along x.
    """
    fy = np.fft.fftfreq(size)[:, None] * size       # cycles per tile
    fx = np.fft.rfftfreq(size)[None, :] * size
    if streaks:
        amp = np.exp(-(fx / 5.0) ** 2) * (fy * fy + 4.0) ** -0.3
    else:
        amp = (fx * fx + fy * fy + 4.0) ** -0.55
    spectrum = np.fft.rfft2(rng.standard_normal((size, size))) * amp
    return _standardise(np.fft.irfft2(spectrum, s=(size, size)).astype(np.float32))


def _standardise(field: np.ndarray) -> np.ndarray:
    field -= field.mean()
    field /= field.std() + 1e-6
    return field


def view_map(height: int, width: int, pose: Pose = Pose(), step: int = 1) -> np.ndarray:
    """``(2, 3) float64`` affine map from pixel indices ``(x, y, 1)`` to scene coordinates.

    ``height`` × ``width`` is the full-resolution eye; its centre is the scene origin (moved
    by ``pose``) and its height is one scene unit. With ``step > 1`` the indices are those
    of a grid of ``step × step`` blocks, each sampled at its centre, so that
    :func:`upsample` of a low-resolution field lines up with full resolution.
    """
    s = 1.0 / (height * pose.zoom)
    c, n = math.cos(pose.angle), math.sin(pose.angle)
    rot = np.array([[c, -n], [n, c]]) * s
    a = np.zeros((2, 3))
    a[:, :2] = rot * step
    a[:, 2] = rot @ np.array([step / 2.0 - width / 2.0, step / 2.0 - height / 2.0])
    a[:, 2] += (pose.tx, pose.ty)
    return a


def sample(grid: np.ndarray, a: np.ndarray, shape: tuple[int, int], angle: float = 0.0,
           scale: float = 1.0, offset: tuple[float, float] = (0.0, 0.0)) -> np.ndarray:
    """Sample ``grid`` (over ``[-EXTENT, EXTENT]²``) at the view ``a`` → ``shape`` float32.

    The field is scaled by ``scale``, turned by ``angle`` and moved by ``offset`` (scene
    units), so one grid serves several orientations and scales.
    """
    n = grid.shape[0]
    k = n / (2.0 * EXTENT)
    c, s = math.cos(angle), math.sin(angle)
    turn = np.array([[c, s], [-s, c]]) / scale
    to_grid = np.zeros((2, 3))
    to_grid[:, :2] = k * turn @ a[:, :2]
    to_grid[:, 2] = k * turn @ (a[:, 2] - np.asarray(offset)) + k * EXTENT - 0.5
    return cv2.warpAffine(grid, to_grid, (shape[1], shape[0]),
                          flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                          borderMode=cv2.BORDER_REFLECT)


def sample_points(grid: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Values of ``grid`` at scene ``points`` ``(N, 2)`` → ``(N,) float32`` (bilinear)."""
    k = grid.shape[0] / (2.0 * EXTENT)
    idx = (points.astype(np.float32) + EXTENT) * k - 0.5
    mx = np.ascontiguousarray(idx[None, :, 0])
    my = np.ascontiguousarray(idx[None, :, 1])
    return cv2.remap(grid, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)[0]


def coords(a: np.ndarray, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Scene coordinates ``(X, Y)``, each ``shape`` float32, of the pixels of view ``a``."""
    h, w = shape
    x = np.arange(w, dtype=np.float32)
    y = np.arange(h, dtype=np.float32)[:, None]
    big_x = a[0, 0] * x + (a[0, 1] * y + a[0, 2])
    big_y = a[1, 0] * x + (a[1, 1] * y + a[1, 2])
    return big_x.astype(np.float32), big_y.astype(np.float32)


def upsample(low: np.ndarray, step: int, shape: tuple[int, int]) -> np.ndarray:
    """Bilinear upsampling of a ``step``-block grid back to ``shape`` (see :func:`view_map`)."""
    if step == 1:
        return low
    h, w = low.shape[:2]
    big = cv2.resize(low, (w * step, h * step), interpolation=cv2.INTER_LINEAR)
    return big[:shape[0], :shape[1]]


class Block(NamedTuple):
    """Rows ``[r0, r1)`` and columns ``[c0, c1)`` of a low-resolution grid (blocks of
    ``step`` px) and the full-resolution region they cover, clipped to ``shape``."""

    r0: int
    r1: int
    c0: int
    c1: int
    step: int
    shape: tuple[int, int]

    @property
    def region(self) -> tuple[slice, slice]:
        s, (h, w) = self.step, self.shape
        return slice(self.r0 * s, min(self.r1 * s, h)), slice(self.c0 * s, min(self.c1 * s, w))

    def up(self, low: np.ndarray) -> np.ndarray:
        """Equal to ``upsample(low, step, shape)[self.region]``, computed for the block only
        (one low-resolution cell of margin makes the interpolation at its edges the same)."""
        s = self.step
        a0, a1 = max(0, self.r0 - 1), min(low.shape[0], self.r1 + 1)
        b0, b1 = max(0, self.c0 - 1), min(low.shape[1], self.c1 + 1)
        big = cv2.resize(low[a0:a1, b0:b1], ((b1 - b0) * s, (a1 - a0) * s),
                         interpolation=cv2.INTER_LINEAR)
        rows, cols = self.region
        y0, x0 = (self.r0 - a0) * s, (self.c0 - b0) * s
        return big[y0:y0 + rows.stop - rows.start, x0:x0 + cols.stop - cols.start]


def blocks(near: np.ndarray, step: int, shape: tuple[int, int], rows: int = 8):
    """Yield :class:`Block` s covering the True cells of the low-resolution ``near``, one per
    strip of ``rows`` rows: a thin band or a few cavities touch a small part of the frame,
    and only that part needs full-resolution work."""
    h = near.shape[0]
    for r0 in range(0, h, rows):
        r1 = min(h, r0 + rows)
        cols = np.flatnonzero(near[r0:r1].any(axis=0))
        if cols.size:
            yield Block(r0, r1, int(cols[0]), int(cols[-1]) + 1, step, shape)
