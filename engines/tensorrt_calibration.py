"""The entropy calibrator that feeds INT8 calibration frames to TensorRT.

The frames are the caller's (``nerveseg.realtime.sample_frames.calibration_frames``
reads a folder through the pipeline's own source and preprocessing), so the activation
ranges TensorRT measures are those of the frames it will see at run time.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


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
