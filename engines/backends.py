"""The backend registry: every runtime that can run an engine file, in one table.

A backend is one module with an :class:`~nerveseg.engines.base.Engine` subclass (its
heavy package imported inside it) and one :class:`Backend` line in :data:`BACKENDS`:
its name, the files it runs, the pip extra that brings it, why it cannot run on a
machine (None: it can), and how ``--backend auto`` says it chose it. The loader
(:mod:`.loader`) reads nothing else, so adding one touches no other file.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from .environment import Environment


def _no_problem(env: Environment) -> str | None:
    return None


def _ort_provider(provider: str, label: str) -> Callable[[Environment], str | None]:
    def problem(env: Environment) -> str | None:
        if env.gpu is None:
            return env.cuda_problem
        if provider not in env.ort_providers:
            return f"ONNX Runtime has no {provider} (no {label} provider; install onnxruntime-gpu)"
        return None
    return problem


@dataclass(frozen=True)
class Backend:
    """``module``/``cls``: where the engine class lives (imported only when used).
    ``suffixes``: files it runs; ``runs``: the same, said to a user who asked for another.
    ``auto_for``: suffixes for which ``--backend auto`` considers it, in :data:`BACKENDS`
    order. ``problem(env)``: why it cannot run on ``env`` (None: it can). ``chosen(env)``:
    the phrase ``auto`` gives when it picks it. ``extra``: the pip extra that installs it;
    ``needs``: the packages of that extra it imports (checked before any file is opened,
    so a missing extra is said first). ``measured``: a CPU backend that ``auto`` does not
    take on rank alone: it times it against the other measured backends that can run
    here and keeps the fastest (:mod:`.backend_choice`)."""

    name: str
    module: str
    cls: str
    suffixes: tuple[str, ...]
    runs: str
    auto_for: tuple[str, ...] = ()
    problem: Callable[[Environment], str | None] = _no_problem
    chosen: Callable[[Environment], str] = lambda env: ""
    extra: str | None = None
    needs: tuple[str, ...] = ()
    measured: bool = False  # auto times it against the other measured ones that can run here


# Order matters for `--backend auto`: the first backend that can run the file here wins.
BACKENDS: dict[str, Backend] = {b.name: b for b in (
    Backend("tensorrt", "nerveseg.engines.tensorrt_backend", "TensorRTEngine", (".engine", ".plan", ".onnx"),
            "runs .engine/.plan files or builds from .onnx", auto_for=(".onnx", ".engine", ".plan"),
            problem=Environment.tensorrt_problem, extra="tensorrt",
            chosen=lambda env: f"{env.gpu.describe()} with TensorRT {env.tensorrt}"),
    Backend("onnxruntime-cuda", "nerveseg.engines.onnxruntime_gpu_backend", "OnnxRuntimeCudaEngine", (".onnx",),
            "runs .onnx files only", auto_for=(".onnx",),
            problem=_ort_provider("CUDAExecutionProvider", "CUDA"),
            chosen=lambda env: f"ONNX Runtime CUDA provider on {env.gpu.name}"),
    Backend("onnxruntime-trt", "nerveseg.engines.onnxruntime_gpu_backend", "OnnxRuntimeTensorRTEngine", (".onnx",),
            "runs .onnx files only", problem=_ort_provider("TensorrtExecutionProvider", "TensorRT")),
    Backend("openvino", "nerveseg.engines.openvino_backend", "OpenVinoEngine", (".onnx",), "runs .onnx files only",
            auto_for=(".onnx",), problem=Environment.openvino_problem, extra="openvino", needs=("openvino",),
            measured=True, chosen=lambda env: f"OpenVINO {env.openvino} on {env.openvino_device()}"),
    Backend("onnxruntime", "nerveseg.engines.onnxruntime_backend", "OnnxRuntimeEngine", (".onnx",),
            "runs .onnx files only", auto_for=(".onnx",), measured=True, chosen=lambda env: "ONNX Runtime on CPU"),
    # The reference backend rebuilds a training checkpoint from the model registry, so it
    # lives with the training stack (the `train` extra).
    Backend("torch", "nerveseg.training.torch_backend", "TorchEngine", (".pt", ".pth"),
            "runs .pt/.pth training checkpoints only", auto_for=(".pt", ".pth"), extra="train", needs=("torch",)),
)}

#: what every --backend option accepts
BACKEND_CHOICES = ("auto", *BACKENDS)
