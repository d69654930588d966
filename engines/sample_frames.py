"""Engine-input frames for INT8 calibration and ``nerveseg verify``.

Frames pass through the pipeline's own :class:`nerveseg.realtime.preprocess.Preprocessor`
(eye crop, glare-border crop, square crop, resize), so calibration statistics and
agreement figures describe exactly what the engines see at run time.
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np

from .metadata import EngineError


def load_frames(spec: str | Path, input_size: tuple[int, int], n: int, preprocess=None) -> np.ndarray:
    """Up to ``n`` frames of a video file or image folder, preprocessed.

    Returns ``(N, H, W, 3) uint8 RGB`` at ``input_size``, a fresh array (the
    preprocessor reuses its buffer, so every frame is copied out). ``preprocess`` is a
    :class:`PreprocessConfig` (default: the pipeline's defaults).
    """
    from nerveseg.realtime.preprocess import PreprocessConfig, Preprocessor
    from nerveseg.realtime.sources import open_source

    if n < 1:
        raise EngineError(f"{spec}: asked for {n} frames; need at least 1")
    source = open_source(str(spec))  # missing file / empty folder: one-line UserError naming it
    prep = Preprocessor(preprocess or PreprocessConfig(), input_size)
    out = np.empty((n, *input_size, 3), np.uint8)
    stop = threading.Event()
    count = 0
    for frame in source.frames(stop):
        out[count] = prep(frame.image)[1][0]
        count += 1
        if count == n:
            stop.set()
            break
    if count == 0:
        raise EngineError(f"{spec}: no readable frames")
    return out[:count]


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
