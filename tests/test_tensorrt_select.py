"""Backend choice on any machine: ``--backend auto``, the environment probe, and the
one-line refusals of GPU backends where they cannot run. Environments are built by
hand (no import monkeypatching): the decisions are pure functions of them."""

from __future__ import annotations

import ctypes
import json

import pytest

from nerveseg.engines import environment
from nerveseg.engines.environment import Environment, Gpu
from nerveseg.engines.loader import backend_for, load_engine
from nerveseg.engines.metadata import EngineError
from nerveseg.commands.cli import main

H200 = Gpu("NVIDIA H200", "9.0", 132)
CPU = Environment(None, "no CUDA device (no NVIDIA driver found)")
FULL = Environment(H200, "", "10.16.1.11", True, ("CUDAExecutionProvider", "CPUExecutionProvider"))
NO_TRT_ORT_CUDA = Environment(H200, "", None, True, ("CUDAExecutionProvider", "CPUExecutionProvider"))
NO_TRT_NO_ORT_CUDA = Environment(H200, "", None, True)
TRT_NO_CUDA_PYTHON = Environment(H200, "", "10.16.1.11", False)


@pytest.mark.parametrize("env, backend, words", [
    (CPU, "onnxruntime", ["no CUDA device", "ONNX Runtime on CPU"]),
    (FULL, "tensorrt", ["NVIDIA H200", "sm_90", "TensorRT 10.16.1.11"]),
    (NO_TRT_ORT_CUDA, "onnxruntime-cuda", ["tensorrt package not installed", "CUDA provider"]),
    (NO_TRT_NO_ORT_CUDA, "onnxruntime", ["tensorrt package not installed", "no CUDA provider", "CPU"]),
    (TRT_NO_CUDA_PYTHON, "onnxruntime", ["cuda-python package not installed"]),
])
def test_auto_for_onnx_follows_tensorrt_then_ort_cuda_then_cpu(tmp_path, env, backend, words):
    name, reason = backend_for(tmp_path / "gate.onnx", "auto", env)
    assert name == backend
    assert reason.startswith("auto: ") and all(w in reason for w in words), reason


def test_auto_by_suffix_for_engine_and_checkpoint_files(tmp_path):
    assert backend_for(tmp_path / "gate.fp16.engine", "auto", FULL) == ("tensorrt", "auto: .engine file")
    assert backend_for(tmp_path / "gate.pt", "auto", CPU) == ("torch", "auto: .pt file")
    with pytest.raises(EngineError, match=r"gate\.bin: cannot tell the engine type"):
        backend_for(tmp_path / "gate.bin", "auto", CPU)


@pytest.mark.parametrize("env, path, backend, words", [
    (CPU, "gate.onnx", "tensorrt", ["no CUDA device", "use --backend onnxruntime"]),
    (CPU, "gate.fp16.engine", "auto", ["no CUDA device", "use --backend onnxruntime"]),
    (NO_TRT_ORT_CUDA, "gate.onnx", "tensorrt", ["tensorrt package not installed", "use --backend onnxruntime"]),
    (CPU, "gate.onnx", "onnxruntime-cuda", ["no CUDA device"]),
    (NO_TRT_NO_ORT_CUDA, "gate.onnx", "onnxruntime-trt", ["no TensorrtExecutionProvider"]),
    (FULL, "gate.fp16.engine", "onnxruntime", ["runs .onnx files only"]),
    (FULL, "gate.pt", "tensorrt", ["runs .engine/.plan files or builds from .onnx"]),
    (FULL, "gate.onnx", "tensorflow", ["unknown backend 'tensorflow'", "tensorrt", "onnxruntime"]),
])
def test_backends_this_machine_cannot_run_fail_in_one_line_naming_the_file(tmp_path, env, path, backend, words):
    with pytest.raises(EngineError) as info:
        backend_for(tmp_path / path, backend, env)
    message = str(info.value)
    assert "\n" not in message and message.startswith(str(tmp_path / path))
    assert all(w in message for w in words), message


def test_requested_backends_that_can_run_are_passed_through(tmp_path):
    assert backend_for(tmp_path / "gate.onnx", "tensorrt", FULL) == ("tensorrt", "requested")
    assert backend_for(tmp_path / "gate.onnx", "onnxruntime", CPU) == ("onnxruntime", "requested")


def test_the_choice_and_reason_land_in_provenance(tiny_engines):
    gate = load_engine(tiny_engines[0], "auto", task="classify", env=CPU)
    assert gate.provenance.backend == "onnxruntime"
    assert gate.provenance.reason == ("auto: no CUDA device (no NVIDIA driver found); openvino package not "
                                      "installed (pip install 'nerveseg[openvino]'); ONNX Runtime on CPU")
    assert gate.provenance.to_dict()["reason"] == gate.provenance.reason


def test_replay_outputs_carry_the_backend_reason(tmp_path, tiny_engines):
    """The reason reaches the JSON summary and the AVI comment through pipeline provenance."""
    import av
    from video_fixtures import write_video

    if environment.probe().tensorrt_problem() is None:
        pytest.skip("this machine would pick TensorRT; the CPU reason is what is checked here")
    video = write_video(tmp_path / "in.mp4", frames=4)
    out = tmp_path / "replay.avi"
    assert main(["replay", str(video), "--out", str(out), "--gate", str(tiny_engines[0]),
                 "--seg", str(tiny_engines[1]), "--no-progress"]) == 0
    engines = json.loads(out.with_suffix(".json").read_text())["nerveseg"]["engines"]
    assert engines["gate"]["reason"].startswith("auto: no CUDA device")
    assert engines["segment"]["backend"] == "onnxruntime"
    with av.open(str(out)) as container:
        assert "no CUDA device" in json.loads(container.metadata["comment"])["nerveseg"]["gate"]["reason"]


def test_backend_tensorrt_on_a_cpu_machine_is_a_one_line_cli_error(tiny_engines, capsys):
    if environment.probe().tensorrt_problem() is None:
        pytest.skip("TensorRT can run here")
    assert main(["info", str(tiny_engines[0]), "--backend", "tensorrt"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(tiny_engines[0]) in err[0]
    assert "cannot run here" in err[0] and "use --backend onnxruntime" in err[0]
    assert "no CUDA device" in err[0] or "tensorrt package not installed" in err[0]


class FakeDriver:
    """Stands in for libcuda.so: fills the ctypes out-arguments like the real driver."""

    def __init__(self, devices: int = 1, init: int = 0):
        self.devices, self.init = devices, init

    def cuInit(self, flags):
        return self.init

    def cuDeviceGetCount(self, ref):
        ref._obj.value = self.devices
        return 0

    def cuDeviceGet(self, ref, ordinal):
        ref._obj.value = ordinal
        return 0

    def cuDeviceGetName(self, buffer, size, device):
        ctypes.memmove(buffer, b"NVIDIA H200\0", 12)
        return 0

    def cuDeviceGetAttribute(self, ref, attribute, device):
        ref._obj.value = {75: 9, 76: 0, 16: 132}[attribute]
        return 0


@pytest.mark.parametrize("driver, gpu, problem", [
    (None, None, "no CUDA device (no NVIDIA driver found)"),
    (FakeDriver(devices=0), None, "no CUDA device (the NVIDIA driver reports none)"),
    (FakeDriver(init=100), None, "no CUDA device (the NVIDIA driver reports none)"),
    (FakeDriver(), H200, ""),
])
def test_gpu_probe_reads_the_driver(monkeypatch, driver, gpu, problem):
    monkeypatch.setattr(environment, "_driver", lambda: driver)
    assert environment.probe_gpu() == (gpu, problem)


def test_environment_problems_name_the_missing_piece():
    assert CPU.tensorrt_problem() == "no CUDA device (no NVIDIA driver found)"
    assert "tensorrt package not installed" in NO_TRT_ORT_CUDA.tensorrt_problem()
    assert "cuda-python package not installed" in TRT_NO_CUDA_PYTHON.tensorrt_problem()
    assert FULL.tensorrt_problem() is None and FULL.has_ort_cuda() and not CPU.has_ort_cuda()
