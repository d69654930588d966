"""Engine-input frames from a video file or image folder: for INT8 calibration
(``nerveseg build-engine --int8``) and ``nerveseg verify``.

Frames pass through the pipeline's own source and
:class:`nerveseg.engines.preprocess.Preprocessor` (eye crop, glare-border crop, square
crop, resize), so calibration statistics and agreement figures describe exactly what the
engines see at run time.
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np

from nerveseg.engines.errors import UserError
from nerveseg.engines.metadata import EngineError
from nerveseg.engines.preprocess import PreprocessConfig, Preprocessor

from .sources import IMAGE_SUFFIXES, open_source


def load_frames(spec: str | Path, input_size: tuple[int, int], n: int, preprocess=None) -> np.ndarray:
    """Up to ``n`` frames of a video file or image folder, preprocessed.

    Returns ``(N, H, W, 3) uint8 RGB`` at ``input_size``, a fresh array (the
    preprocessor reuses its buffer, so every frame is copied out). ``preprocess`` is a
    :class:`PreprocessConfig` (default: the pipeline's defaults).
    """
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


def calibration_frames(calib_dir: str | Path | None, input_size: tuple[int, int], n: int) -> np.ndarray:
    """Up to ``n`` preprocessed frames from ``calib_dir``: ``(N, H, W, 3) uint8``.

    One-line :class:`EngineError` naming the folder when it is missing, not a folder, or
    holds no readable images.
    """
    if calib_dir is None:
        raise EngineError("INT8 needs calibration frames: pass --calib-dir DIR (a folder of frames)")
    calib_dir = Path(calib_dir)
    if not calib_dir.is_dir():
        raise EngineError(f"{calib_dir}: calibration folder not found (or not a folder)")
    try:
        return load_frames(calib_dir, input_size, n)
    except UserError as exc:
        if "no images" in str(exc):
            raise EngineError(f"{calib_dir}: calibration folder has no images "
                              f"(looked for {', '.join(IMAGE_SUFFIXES)})") from None
        raise
    except EngineError:
        raise EngineError(f"{calib_dir}: calibration folder has no readable images") from None
