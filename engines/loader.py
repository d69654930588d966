"""Pick a backend for an engine file and load it, checking its metadata against the task."""

from __future__ import annotations

import importlib
import logging
from pathlib import Path

from .base import Engine
from .metadata import EngineError

log = logging.getLogger(__name__)

# backend name → (module, class). Each module imports its heavy package inside itself,
# so asking for onnxruntime never imports torch or TensorRT.
BACKENDS: dict[str, tuple[str, str]] = {
    "onnxruntime": ("nerveseg.engines.onnxruntime_backend", "OnnxRuntimeEngine"),
    "torch": ("nerveseg.engines.torch_backend", "TorchEngine"),
    "tensorrt": ("nerveseg.engines.tensorrt_backend", "TensorRTEngine"),
}
SUFFIXES = {".onnx": "onnxruntime", ".pt": "torch", ".pth": "torch",
            ".engine": "tensorrt", ".plan": "tensorrt"}


def backend_for(path: Path, backend: str) -> tuple[str, str]:
    """The backend to use for ``path`` and the reason, for logs and provenance."""
    if backend != "auto":
        if backend not in BACKENDS:
            raise EngineError(f"{path}: unknown backend {backend!r}; choose one of "
                              f"auto, {', '.join(BACKENDS)}")
        return backend, "requested"
    by_suffix = SUFFIXES.get(path.suffix.lower())
    if by_suffix is None:
        raise EngineError(f"{path}: cannot tell the engine type from the suffix {path.suffix!r}; "
                          f"expected one of {', '.join(sorted(SUFFIXES))}")
    return by_suffix, f"auto: {path.suffix} file"


def load_engine(path: str | Path, backend: str = "auto", task: str | None = None,
                classes: tuple[str, ...] | None = None, threads: int = 0) -> Engine:
    """Load ``path`` with ``backend`` and refuse it unless it is a ``task`` model.

    Raises :class:`EngineError` (one line naming the file) for a missing, unreadable or
    mismatching file.
    """
    path = Path(path)
    if not path.exists():
        raise EngineError(f"{path}: engine file not found")
    name, reason = backend_for(path, backend)
    module_name, class_name = BACKENDS[name]
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise EngineError(f"{path}: backend {name!r} is not available ({exc}); "
                          f"use --backend onnxruntime") from None
    engine = getattr(module, class_name)(path, threads=threads, reason=reason)
    engine.meta.expect(path, task=task, classes=classes)
    log.info("loaded %s with %s (%s)", path, name, reason)
    return engine
