"""The TensorRT engine sidecar and cache, and the bad-input refusals, on any machine.

Real TensorRT is not needed: the builder is injected into the cache, and every refusal
below happens before TensorRT would be imported."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from nerveseg.engines.environment import Environment, Gpu
from nerveseg.engines.loader import load_engine
from nerveseg.engines.metadata import EngineError, EngineMeta, file_sha256
from nerveseg.engines.tensorrt_build import BuildOptions, build_engine
from nerveseg.engines.tensorrt_cache import cache_dir, cached_engine_path, ensure_engine
from nerveseg.realtime.sample_frames import calibration_frames
from nerveseg.engines.tensorrt_meta import (EngineKey, Sidecar, check_engine_file, check_key, read_sidecar,
                                            sidecar_path, write_sidecar)
from nerveseg.commands.cli import main

H200 = Environment(Gpu("NVIDIA H200", "9.0", 132), "", "10.16.1.11", True)
A100 = Environment(Gpu("NVIDIA A100-SXM4-80GB", "8.0", 108), "", "10.16.1.11", True)
NEWER_TRT = Environment(H200.gpu, "", "10.17.0.1", True)
CPU = Environment(None, "no CUDA device (no NVIDIA driver found)")
META = EngineMeta(model="tiny_unet", task="segment", classes=("background", "nerve"), input_size=(32, 32))


def fake_engine(path, env=H200, precision="fp16", onnx_sha="ab" * 32, payload=b"serialized engine"):
    """An engine file and a consistent sidecar, as the builder would write them."""
    path.write_bytes(payload)
    key = EngineKey.current(env, precision, onnx_sha)
    write_sidecar(path, Sidecar(META, key, file_sha256(path), {"seconds": 1.0}))
    return path


class FakeBuilder:
    """Records calls; writes what a real build writes (engine + sidecar for ``env``)."""

    def __init__(self):
        self.calls = []

    def __call__(self, onnx, engine, precision, env):
        self.calls.append((engine, precision, env.gpu.name, env.tensorrt))
        fake_engine(engine, env, precision, file_sha256(onnx), payload=f"{env.gpu.name} {env.tensorrt}".encode())


def one_line(exc_info, *names):
    message = str(exc_info.value)
    assert "\n" not in message, message
    assert any(str(n) in message for n in names), message
    return message


# --- sidecar --------------------------------------------------------------------------

def test_sidecar_round_trip_beside_the_engine(tmp_path):
    engine = fake_engine(tmp_path / "seg.fp16.engine")
    assert sidecar_path(engine).name == "seg.fp16.engine.json"
    sidecar = read_sidecar(engine)
    assert sidecar.meta == META and sidecar.key.gpu_name == "NVIDIA H200" and sidecar.key.sm_count == 132
    assert sidecar.key.tensorrt_version == "10.16.1.11" and sidecar.key.precision == "fp16"
    raw = json.loads(sidecar_path(engine).read_text())
    assert raw["nerveseg"]["classes"] == ["background", "nerve"] and raw["tensorrt"]["compute_capability"] == "9.0"
    check_engine_file(engine, sidecar)
    check_key(engine, sidecar, H200)


@pytest.mark.parametrize("mutate, words", [
    (lambda raw: "{not json", "not valid JSON"),
    (lambda raw: {**raw, "tensorrt": None}, "lacks the 'nerveseg' or 'tensorrt' section"),
    (lambda raw: {k: v for k, v in raw.items() if k != "nerveseg"}, "lacks the 'nerveseg' or 'tensorrt' section"),
    (lambda raw: {**raw, "tensorrt": {k: v for k, v in raw["tensorrt"].items() if k != "sm_count"}}, "lacks sm_count"),
    (lambda raw: {**raw, "tensorrt": {**raw["tensorrt"], "precision": "fp8"}}, "precision 'fp8'"),
    (lambda raw: {**raw, "format_version": 99}, "newer than this nerveseg"),
    (lambda raw: {**raw, "nerveseg": {"model": "x"}}, "lacks classes"),
])
def test_corrupt_sidecars_are_refused_in_one_line(tmp_path, mutate, words):
    engine = fake_engine(tmp_path / "seg.fp16.engine")
    path = sidecar_path(engine)
    changed = mutate(json.loads(path.read_text()))
    path.write_text(changed if isinstance(changed, str) else json.dumps(changed))
    with pytest.raises(EngineError) as info:
        read_sidecar(engine)
    assert words in one_line(info, path)


def test_missing_sidecar_says_how_to_build_one(tmp_path):
    engine = tmp_path / "seg.engine"
    engine.write_bytes(b"x")
    with pytest.raises(EngineError) as info:
        read_sidecar(engine)
    assert "no sidecar seg.engine.json" in one_line(info, engine) and "nerveseg build-engine" in str(info.value)


def test_engine_bytes_that_differ_from_the_sidecar_are_refused(tmp_path):
    engine = fake_engine(tmp_path / "seg.fp16.engine")
    with engine.open("ab") as handle:
        handle.write(b"garbage")
    with pytest.raises(EngineError) as info:
        check_engine_file(engine, read_sidecar(engine))
    assert "corrupt or replaced" in one_line(info, engine)


@pytest.mark.parametrize("built_on, words", [
    (A100, ["GPU 'NVIDIA A100-SXM4-80GB' (here 'NVIDIA H200')", "compute capability '8.0' (here '9.0')",
            "SM count 108 (here 132)"]),
    (NEWER_TRT, ["TensorRT '10.17.0.1' (here '10.16.1.11')"]),
])
def test_engine_for_another_gpu_or_tensorrt_is_refused_before_loading(tmp_path, built_on, words):
    """Through the real loader: the refusal comes before TensorRT is imported."""
    engine = fake_engine(tmp_path / "seg.fp16.engine", env=built_on)
    with pytest.raises(EngineError) as info:
        load_engine(engine, "tensorrt", env=H200)
    message = one_line(info, engine)
    assert all(w in message for w in words) and "rebuild it here" in message


def test_corrupt_engine_file_is_refused_by_the_loader(tmp_path):
    engine = fake_engine(tmp_path / "seg.fp16.engine")
    engine.write_bytes(b"\x00" * 10)
    with pytest.raises(EngineError) as info:
        load_engine(engine, "auto", env=H200)
    assert "corrupt or replaced" in one_line(info, engine)


# --- cache ------------------------------------------------------------------------------

def test_cache_builds_once_then_reuses_while_the_key_matches(tmp_path, tiny_engines):
    onnx = tiny_engines[1]
    build = FakeBuilder()
    first, note = ensure_engine(onnx, "fp16", H200, build)
    assert note.startswith("built fp16 engine") and len(build.calls) == 1
    assert first.parent == cache_dir() and first == cached_engine_path(onnx, "fp16", file_sha256(onnx))
    again, note = ensure_engine(onnx, "fp16", H200, build)
    assert again == first and note.startswith("cached fp16 engine") and len(build.calls) == 1
    ensure_engine(onnx, "fp32", H200, build)
    assert len(build.calls) == 2 and build.calls[-1][1] == "fp32"


@pytest.mark.parametrize("now, why", [(A100, "NVIDIA A100"), (NEWER_TRT, "10.17.0.1")])
def test_cache_rebuilds_on_another_gpu_or_tensorrt_version(tmp_path, tiny_engines, caplog, now, why):
    onnx = tiny_engines[1]
    build = FakeBuilder()
    engine, _ = ensure_engine(onnx, "fp16", H200, build)
    rebuilt, note = ensure_engine(onnx, "fp16", now, build)
    assert rebuilt == engine and note.startswith("built") and len(build.calls) == 2
    assert read_sidecar(engine).key == EngineKey.current(now, "fp16", file_sha256(onnx))
    assert "cached engine was built for" in caplog.text and "one-time build" in caplog.text


def test_cache_rebuilds_a_corrupt_engine_and_a_changed_onnx_gets_its_own(tmp_path, tiny_engines):
    onnx = tiny_engines[1]
    build = FakeBuilder()
    engine, _ = ensure_engine(onnx, "fp16", H200, build)
    engine.write_bytes(b"truncated")
    ensure_engine(onnx, "fp16", H200, build)
    assert len(build.calls) == 2 and check_engine_file(engine, read_sidecar(engine)) is None
    onnx.write_bytes(onnx.read_bytes() + b"\0")  # a new export: new hash, new cache entry
    other, _ = ensure_engine(onnx, "fp16", H200, build)
    assert other != engine and len(build.calls) == 3


def test_a_builder_that_writes_the_wrong_key_is_a_bug(tiny_engines):
    def wrong(onnx, engine, precision, env):
        fake_engine(engine, A100, precision, file_sha256(onnx))

    with pytest.raises(RuntimeError, match="fails its own cache check"):
        ensure_engine(tiny_engines[1], "fp16", H200, wrong)


def test_cache_needs_tensorrt_to_build(tiny_engines):
    with pytest.raises(EngineError) as info:
        ensure_engine(tiny_engines[1], "fp16", CPU, FakeBuilder())
    assert "no CUDA device" in one_line(info, tiny_engines[1])


# --- build inputs (checked before TensorRT is imported) -------------------------------------

def test_onnx_without_metadata_is_refused_naming_the_file(tmp_path):
    from engine_fixtures import make_gate

    bare = make_gate(tmp_path / "bare.onnx", meta=False)
    with pytest.raises(EngineError) as info:
        build_engine(bare, tmp_path / "bare.engine", BuildOptions("fp16"), env=H200)
    assert "no nerveseg metadata" in one_line(info, bare)


def test_build_engine_on_this_cpu_machine_is_a_one_line_error(tiny_engines, capsys):
    assert main(["build-engine", str(tiny_engines[0]), "--fp16"]) == 2 or pytest.skip("TensorRT can run here")
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(tiny_engines[0]) in err[0] and "cannot use TensorRT here" in err[0]


def test_int8_needs_a_calibration_folder_with_images(tmp_path, tiny_engines):
    with pytest.raises(EngineError, match="--calib-dir"):
        build_engine(tiny_engines[0], tmp_path / "g.engine", BuildOptions("int8"), env=H200)
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("no frames here")
    for folder, words in ((empty, "calibration folder has no images"), (tmp_path / "nope", "not found")):
        with pytest.raises(EngineError) as info:
            calibration_frames(folder, (32, 32), 8)
        assert words in one_line(info, folder)
    unreadable = tmp_path / "unreadable"
    unreadable.mkdir()
    (unreadable / "frame.png").write_bytes(b"not a png")
    with pytest.raises(EngineError) as info:
        calibration_frames(unreadable, (32, 32), 8)
    assert "no readable images" in one_line(info, unreadable)


def test_calibration_frames_go_through_the_pipeline_preprocessing(tmp_path):
    from nerveseg.engines.preprocess import PreprocessConfig, Preprocessor
    from video_fixtures import stereo_frame

    folder = tmp_path / "calib"
    folder.mkdir()
    for i in range(5):
        cv2.imwrite(str(folder / f"{i:03d}.png"), cv2.cvtColor(stereo_frame(i), cv2.COLOR_RGB2BGR))
    frames = calibration_frames(folder, (32, 32), n=3)
    assert frames.shape == (3, 32, 32, 3) and frames.dtype == np.uint8
    expected = Preprocessor(PreprocessConfig(), (32, 32))(stereo_frame(0))[1][0]
    assert np.abs(frames[0].astype(int) - expected).max() <= 1  # PNG round trip is lossless


def test_build_cli_rejects_calibration_without_int8(tmp_path, tiny_engines, capsys):
    assert main(["build-engine", str(tiny_engines[0]), "--fp16", "--calib-dir", str(tmp_path)]) == 2
    assert "only used with --int8" in capsys.readouterr().err


def test_cuda_runtime_failures_raise_a_named_error():
    """Where cuda-python is installed but no driver is (this CPU machine), allocation
    fails with the CUDA error's name, not a crash."""
    pytest.importorskip("cuda.bindings", reason="cuda-python not installed")
    from nerveseg.engines import cuda_memory as cm
    from nerveseg.engines.environment import probe

    if probe().gpu is not None:
        pytest.skip("a CUDA device is present")
    with pytest.raises(cm.CudaError, match=r"CUDA malloc of 16 bytes failed: cudaError\w+"):
        cm.DeviceBuffer(16)
