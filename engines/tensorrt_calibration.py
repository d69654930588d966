"""INT8 calibration data and the entropy calibrator that feeds it to TensorRT.

The calibration frames come from a folder of ordinary frames (PNG/JPEG…) and pass
through the pipeline's own preprocessing (:mod:`nerveseg.engines.sample_frames`), so the
activation ranges TensorRT measures are those of the frames it will see at run time.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .metadata import EngineError
from .sample_frames import load_frames


def calibration_frames(calib_dir: str | Path | None, input_size: tuple[int, int], n: int) -> np.ndarray:
    """Up to ``n`` preprocessed frames from ``calib_dir``: ``(N, H, W, 3) uint8``.

    One-line :class:`EngineError` naming the folder when it is missing, not a folder, or
    holds no readable images.
    """
    from nerveseg.realtime.errors import UserError
    from nerveseg.realtime.sources import IMAGE_SUFFIXES

    if calib_dir is None:
        raise EngineError("INT8 needs calibration frames: pass --calib-dir DIR (a folder of frames)")
    calib_dir = Path(calib_dir)
    if not calib_dir.is_dir():
        raise EngineError(f"{calib_dir}: calibration folder not found (or not a folder)")
    try:
        frames = load_frames(calib_dir, input_size, n)
    except UserError as exc:
        if "no images" in str(exc):
            raise EngineError(f"{calib_dir}: calibration folder has no images "
                              f"(looked for {', '.join(IMAGE_SUFFIXES)})") from None
        raise
    except EngineError:
        raise EngineError(f"{calib_dir}: calibration folder has no readable images") from None
    return frames


def make_calibrator(trt, frames: np.ndarray, cache_path: Path):
    """A ``trt.IInt8EntropyCalibrator2`` over ``frames`` (``(N, H, W, 3) uint8``), one frame
    per batch (the calibration profile's optimum batch is 1).

    The calibration table is written to ``cache_path`` for inspection but never read
    back: reusing a table made from other frames would silently skip calibration.
    """
    from . import cuda_memory as cm

    class EntropyCalibrator(trt.IInt8EntropyCalibrator2):
        def __init__(self) -> None:
            trt.IInt8EntropyCalibrator2.__init__(self)
            self.frames = np.ascontiguousarray(frames)
            self.index = 0
            self.device = cm.DeviceBuffer(self.frames[0].nbytes)

        def get_batch_size(self) -> int:
            return 1

        def get_batch(self, names):
            if self.index >= len(self.frames):
                return None
            cm.upload(self.device, self.frames[self.index:self.index + 1])
            self.index += 1
            return [self.device.ptr]

        def read_calibration_cache(self):
            return None

        def write_calibration_cache(self, cache) -> None:
            cache_path.write_bytes(bytes(cache))

        def free(self) -> None:
            self.device.free()

    return EntropyCalibrator()
