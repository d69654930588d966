"""Pick a backend for an engine file and load it, checking its metadata against the task.

``--backend auto`` (the default) decides from the file and the machine:

* ``.engine`` / ``.plan`` → TensorRT; ``.pt`` / ``.pth`` → torch;
* ``.onnx`` → TensorRT (built once into the engine cache) where a CUDA device, the
  ``tensorrt`` package and cuda-python are present; else ONNX Runtime's CUDA provider
  where it and a CUDA device exist; else ONNX Runtime on the CPU.

The choice and the reason are logged and written into the engine's provenance, which
goes into every output (AVI comment, CSV, JSON summary).
"""

from __future__ import annotations

import importlib
import logging
from pathlib import Path

from .base import Engine
from .environment import Environment, probe
from .metadata import EngineError

log = logging.getLogger(__name__)

# backend name → (module, class). Each module imports its heavy package inside itself,
# so asking for onnxruntime never imports torch or TensorRT.
BACKENDS: dict[str, tuple[str, str]] = {
    "onnxruntime": ("nerveseg.engines.onnxruntime_backend", "OnnxRuntimeEngine"),
    "torch": ("nerveseg.engines.torch_backend", "TorchEngine"),
    "tensorrt": ("nerveseg.engines.tensorrt_backend", "TensorRTEngine"),
    "onnxruntime-cuda": ("nerveseg.engines.onnxruntime_gpu_backend", "OnnxRuntimeCudaEngine"),
    "onnxruntime-trt": ("nerveseg.engines.onnxruntime_gpu_backend", "OnnxRuntimeTensorRTEngine"),
}
SUFFIXES = {".onnx": "onnxruntime", ".pt": "torch", ".pth": "torch",
            ".engine": "tensorrt", ".plan": "tensorrt"}
BACKEND_CHOICES = ("auto", *BACKENDS)  # what every --backend option accepts
ONNX_ONLY = ("onnxruntime", "onnxruntime-cuda", "onnxruntime-trt")


def _gpu_problem(name: str, env: Environment) -> str | None:
    """Why backend ``name`` cannot run on ``env`` (None: it can, or it needs no GPU)."""
    if name == "tensorrt":
        return env.tensorrt_problem()
    if name in ("onnxruntime-cuda", "onnxruntime-trt"):
        if env.gpu is None:
            return env.cuda_problem
        provider = "CUDAExecutionProvider" if name == "onnxruntime-cuda" else "TensorrtExecutionProvider"
        if provider not in env.ort_providers:
            return f"ONNX Runtime has no {provider} (install onnxruntime-gpu)"
    return None


def auto_for_onnx(env: Environment) -> tuple[str, str]:
    """The backend for an ONNX file on ``env`` and the reason, e.g.
    ``("onnxruntime", "auto: no CUDA device (no NVIDIA driver found); ONNX Runtime on CPU")``."""
    trt_problem = env.tensorrt_problem()
    if trt_problem is None:
        return "tensorrt", f"auto: {env.gpu.describe()} with TensorRT {env.tensorrt}"
    if env.has_ort_cuda():
        return "onnxruntime-cuda", f"auto: {trt_problem}; ONNX Runtime CUDA provider on {env.gpu.name}"
    if env.gpu is not None:
        trt_problem += "; ONNX Runtime has no CUDA provider"
    return "onnxruntime", f"auto: {trt_problem}; ONNX Runtime on CPU"


def backend_for(path: Path, backend: str, env: Environment | None = None) -> tuple[str, str]:
    """The backend to use for ``path`` and the reason, for logs and provenance.

    ``env`` (default: the probed machine) is injectable so the decision can be tested.
    A GPU backend this machine cannot run is a one-line :class:`EngineError`.
    """
    path = Path(path)
    if backend == "auto":
        name = SUFFIXES.get(path.suffix.lower())
        if name is None:
            raise EngineError(f"{path}: cannot tell the engine type from the suffix {path.suffix!r}; "
                              f"expected one of {', '.join(sorted(SUFFIXES))}")
        if name == "onnxruntime":
            return auto_for_onnx(env or probe())
        reason = f"auto: {path.suffix} file"
    elif backend not in BACKENDS:
        raise EngineError(f"{path}: unknown backend {backend!r}; choose one of auto, {', '.join(BACKENDS)}")
    else:
        name, reason = backend, "requested"
    if name in ONNX_ONLY and path.suffix.lower() != ".onnx":
        raise EngineError(f"{path}: backend {name!r} runs .onnx files only")
    if name == "tensorrt" and path.suffix.lower() not in (".onnx", ".engine", ".plan"):
        raise EngineError(f"{path}: backend 'tensorrt' runs .engine/.plan files or builds from .onnx")
    problem = _gpu_problem(name, env or probe()) if name not in ("onnxruntime", "torch") else None
    if problem:
        raise EngineError(f"{path}: backend {name!r} cannot run here: {problem}; use --backend onnxruntime "
                          f"(with the .onnx file) instead")
    return name, reason


def load_engine(path: str | Path, backend: str = "auto", task: str | None = None,
                classes: tuple[str, ...] | None = None, threads: int = 0,
                env: Environment | None = None) -> Engine:
    """Load ``path`` with ``backend`` and refuse it unless it is a ``task`` model.

    Raises :class:`EngineError` (one line naming the file) for a missing, unreadable or
    mismatching file, or a backend this machine cannot run.
    """
    path = Path(path)
    if not path.exists():
        raise EngineError(f"{path}: engine file not found")
    name, reason = backend_for(path, backend, env)
    module_name, class_name = BACKENDS[name]
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise EngineError(f"{path}: backend {name!r} is not available ({exc}); "
                          f"use --backend onnxruntime") from None
    kwargs = {"env": env} if name == "tensorrt" and env is not None else {}
    engine = getattr(module, class_name)(path, threads=threads, reason=reason, **kwargs)
    engine.meta.expect(path, task=task, classes=classes)
    log.info("%s: backend %s (%s)", path, engine.provenance.backend, engine.provenance.reason)
    return engine
