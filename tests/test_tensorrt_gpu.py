"""Real TensorRT on a real GPU: build, cache, run, agree with ONNX Runtime.

Every test here is ``@pytest.mark.gpu``: the conftest skips them, with the reason,
where there is no CUDA device, no ``tensorrt`` or no cuda-python. The tiny 32 px
engines build in seconds at a low optimisation level.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from nerveseg.engines.loader import load_engine
from nerveseg.engines.metadata import EngineError, file_sha256
from nerveseg.engines.sample_frames import synthetic_frames
from nerveseg.engines.tensorrt_build import BuildOptions, build_engine
from nerveseg.realtime.sample_frames import calibration_frames
from nerveseg.engines.tensorrt_meta import Sidecar, read_sidecar, write_sidecar
from nerveseg.engines.verify import compare

pytestmark = pytest.mark.gpu
FAST = {"workspace_mb": 256, "opt_level": 1, "max_batch": 4}


@pytest.fixture
def frames():
    return synthetic_frames(24, (32, 32))


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_built_engines_agree_with_onnx_runtime(tiny_engines, tmp_path, frames, precision):
    for onnx, task in zip(tiny_engines, ("classify", "segment")):
        engine_path = tmp_path / f"{onnx.stem}.{precision}.engine"
        sidecar = build_engine(onnx, engine_path, BuildOptions(precision, **FAST))
        assert sidecar.key.onnx_sha256 == file_sha256(onnx) and sidecar.engine_sha256 == file_sha256(engine_path)
        trt = load_engine(engine_path, "auto", task=task)
        ort = load_engine(onnx, "onnxruntime", task=task)
        report = compare(ort, trt, frames)
        assert report.ok, report.failures
        assert max(report.max_abs_diff.values()) < (1e-4 if precision == "fp32" else 5e-2)
        assert trt.provenance.backend == f"tensorrt-{precision}" and trt.provenance.device.startswith("cuda:0")
        trt.close()


def test_onnx_with_backend_tensorrt_builds_once_then_reuses(tiny_engines):
    first = load_engine(tiny_engines[1], "tensorrt", task="segment")
    assert "built fp16 engine" in first.provenance.reason
    first.close()
    again = load_engine(tiny_engines[1], "tensorrt", task="segment")
    assert "cached fp16 engine" in again.provenance.reason
    assert again.provenance.path == first.provenance.path
    again.close()


def test_auto_picks_tensorrt_for_onnx_here(tiny_engines):
    engine = load_engine(tiny_engines[0], "auto", task="classify")
    assert engine.provenance.backend == "tensorrt-fp16" and "TensorRT" in engine.provenance.reason
    engine.close()


def test_batches_and_buffer_reuse(tiny_engines, tmp_path, frames):
    path = tmp_path / "seg.engine"
    build_engine(tiny_engines[1], path, BuildOptions("fp32", **FAST))
    engine = load_engine(path, "tensorrt", task="segment")
    ort = load_engine(tiny_engines[1], "onnxruntime")
    out = engine.run(frames[:4])["mask_logits"]
    assert out.shape == (4, 1, 32, 32) and out.dtype == np.float32
    np.testing.assert_allclose(out, ort.run(frames[:4])["mask_logits"], atol=1e-4)
    kept = out.copy()
    engine.run(frames[4:5])
    assert not np.array_equal(out[:1], kept[:1])  # documented: outputs are reused buffers
    with pytest.raises(ValueError, match="1..4"):
        engine.run(frames[:5])
    engine.close()


def test_int8_with_calibration_frames(tiny_engines, tmp_path, frames):
    folder = tmp_path / "calib"
    folder.mkdir()
    for i, frame in enumerate(frames):
        cv2.imwrite(str(folder / f"{i:03d}.png"), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    path = tmp_path / "seg.int8.engine"
    calibration = calibration_frames(folder, (32, 32), len(frames))
    sidecar = build_engine(tiny_engines[1], path, BuildOptions("int8", **FAST), calibration=calibration)
    assert sidecar.key.precision == "int8" and sidecar.build["calibration_frames"] == len(frames)
    engine = load_engine(path, "tensorrt", task="segment")
    report = compare(load_engine(tiny_engines[1], "onnxruntime"), engine, frames)
    assert report.mask_iou is not None  # INT8 agreement is reported; its bound is the model's business
    engine.close()


def test_a_corrupt_engine_with_a_consistent_sidecar_fails_to_deserialize(tiny_engines, tmp_path):
    path = tmp_path / "seg.engine"
    sidecar = build_engine(tiny_engines[1], path, BuildOptions("fp32", **FAST))
    path.write_bytes(b"\x00" * 4096)
    write_sidecar(path, Sidecar(sidecar.meta, sidecar.key, file_sha256(path), sidecar.build))
    with pytest.raises(EngineError) as info:
        load_engine(path, "tensorrt")
    assert "cannot deserialize" in str(info.value) and "\n" not in str(info.value)
    assert read_sidecar(path).key == sidecar.key


def test_a_calibrated_gate_is_divided_by_its_temperature_on_tensorrt_too(tmp_path, frames):
    """The temperature rides in the sidecar's metadata: TensorRT's logits are ONNX
    Runtime's calibrated ones (raw / T)."""
    from test_calibration import calibrated_gate

    plain, calibrated = calibrated_gate(tmp_path, 2.0, None)
    engine_path = tmp_path / "gate_cal.fp32.engine"
    build_engine(calibrated, engine_path, BuildOptions("fp32", **FAST))
    trt = load_engine(engine_path, "auto", task="classify")
    raw = load_engine(plain, "onnxruntime", task="classify").run(frames[:4])["logits"]
    assert trt.calibration.temperature == 2.0
    np.testing.assert_allclose(trt.run(frames[:4])["logits"], raw / 2.0, rtol=1e-4, atol=1e-4)
    trt.close()
