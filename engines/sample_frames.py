"""Deterministic stand-in engine inputs, for ``nerveseg verify`` and the GPU checks when
no real frames are given (real frames: :mod:`nerveseg.realtime.sample_frames`)."""

from __future__ import annotations

import numpy as np


def synthetic_frames(n: int, input_size: tuple[int, int], seed: int = 0) -> np.ndarray:
    """``(n, H, W, 3) uint8``: deterministic stand-ins when no real frames are given.

    Grey tissue of varying brightness with smooth texture, a bright band in about half of
    them and a few specular dots, so both gate outcomes and non-empty masks occur. Real
    frames (``--frames``) are the better test; these only keep verify runnable anywhere.
    """
    import cv2

    rng = np.random.default_rng(seed)
    h, w = input_size
    frames = np.empty((n, h, w, 3), np.uint8)
    for i in range(n):
        noise = cv2.GaussianBlur(rng.normal(0, 25, (h, w)).astype(np.float32), (0, 0), max(1.0, w / 32))
        grey = rng.uniform(50, 200) + noise
        if i % 2 == 0:
            row, width = int(rng.integers(0, h)), max(2, h // 12)
            yy = np.arange(h)[:, None] - (row + (np.arange(w)[None, :] - w / 2) * rng.uniform(-0.3, 0.3))
            grey = np.where(np.abs(yy) < width, 235 + noise * 0.3, grey)
        for _ in range(int(rng.integers(0, 6))):
            cv2.circle(grey, (int(rng.integers(0, w)), int(rng.integers(0, h))), max(1, w // 64), 255.0, -1)
        frames[i] = np.clip(grey, 0, 255).astype(np.uint8)[..., None]
    return frames
