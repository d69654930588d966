"""Pick a backend for an engine file and load it, checking its metadata against the task.

``--backend auto`` (the default) decides from the file and the machine, reading only
the registry (:data:`~.backends.BACKENDS`):

* ``.engine`` / ``.plan`` → TensorRT; ``.pt`` / ``.pth`` → torch;
* ``.onnx`` → the first backend in registry order that can run here: TensorRT (built
  once into the engine cache) where a CUDA device, the ``tensorrt`` package and
  cuda-python are present; else ONNX Runtime's CUDA provider; else the CPU backends that
  are installed (OpenVINO, ONNX Runtime), and where more than one is, the one measured
  fastest on this machine for this file (:mod:`.backend_choice`, cached per file and machine).

The choice and the reason are logged and written into the engine's provenance, which
goes into every output (AVI comment, CSV, JSON summary).
"""

from __future__ import annotations

import dataclasses
import importlib
import logging
from pathlib import Path

from . import extras
from .backends import BACKEND_CHOICES, BACKENDS, _no_problem  # noqa: F401  (BACKEND_CHOICES: for the CLIs)
from .base import Engine
from .environment import Environment, probe
from .metadata import EngineError

log = logging.getLogger(__name__)

def auto_choice(path: Path, env: Environment) -> tuple[str, str]:
    """The first backend of :data:`BACKENDS` that runs ``path``'s kind of file here, and the
    reason, e.g. ``("onnxruntime", "auto: no CUDA device (no NVIDIA driver found); ONNX Runtime on CPU")``."""
    suffix = path.suffix.lower()
    candidates = [b for b in BACKENDS.values() if suffix in b.auto_for]
    if not candidates:
        known = sorted({s for b in BACKENDS.values() for s in b.auto_for})
        raise EngineError(f"{path}: cannot tell the engine type from the suffix {path.suffix!r}; "
                          f"expected one of {', '.join(known)}")
    if len(candidates) == 1 or suffix != ".onnx":
        # A file only one kind of runtime reads (.engine, .pt) is that runtime's, here or not.
        return candidates[0].name, f"auto: {path.suffix} file"
    skipped: list[str] = []
    for backend in candidates:
        problem = backend.problem(env)
        if problem is None:
            return backend.name, "auto: " + "; ".join([*skipped, backend.chosen(env)])
        if problem not in skipped:
            skipped.append(problem)
    raise EngineError(f"{path}: no backend can run it here ({'; '.join(skipped)})")


def measured_rivals(path: Path, name: str, env: Environment) -> list[str]:
    """The ``measured`` backends (``name`` first) that ``auto`` times against each other for
    ``path`` here; ``[name]`` alone when there is nothing to compare it with."""
    if not BACKENDS[name].measured:
        return [name]
    suffix = path.suffix.lower()
    others = [b.name for b in BACKENDS.values() if b.measured and b.name != name and suffix in b.auto_for
              and b.problem(env) is None and all(extras.available(m) for m in b.needs)]
    return [name, *others]


def backend_for(path: Path, backend: str, env: Environment | None = None) -> tuple[str, str]:
    """The backend to use for ``path`` and the reason, for logs and provenance.

    ``env`` (default: the probed machine) is injectable so the decision can be tested.
    A backend this machine cannot run is a one-line :class:`EngineError`.
    """
    path = Path(path)
    if backend == "auto":
        name, reason = auto_choice(path, env or probe())
    elif backend not in BACKENDS:
        raise EngineError(f"{path}: unknown backend {backend!r}; choose one of auto, {', '.join(BACKENDS)}")
    else:
        name, reason = backend, "requested"
    spec = BACKENDS[name]
    for module in spec.needs:  # the runtime install has no torch: say which extra, first
        extras.require(module, f"backend {name!r}")
    if path.suffix.lower() not in spec.suffixes:
        raise EngineError(f"{path}: backend {name!r} {spec.runs}")
    problem = spec.problem(env or probe()) if spec.problem is not _no_problem else None
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
    rivals = measured_rivals(path, name, env or probe()) if backend == "auto" else [name]
    if len(rivals) > 1:
        from .backend_choice import fastest

        engine, said, _ = fastest(path, rivals, threads, lambda n: _load(path, n, reason, threads, env, task, classes))
        reason = reason.rsplit("; ", 1)[0] + "; " + said if "; " in reason else "auto: " + said
        engine.provenance = dataclasses.replace(engine.provenance, reason=reason)
    else:
        engine = _load(path, name, reason, threads, env, task, classes)
    log.info("%s: backend %s (%s)", path, engine.provenance.backend, engine.provenance.reason)
    return engine


def _load(path: Path, name: str, reason: str, threads: int, env: Environment | None,
          task: str | None, classes: tuple[str, ...] | None) -> Engine:
    spec = BACKENDS[name]
    try:
        module = importlib.import_module(spec.module)
    except ImportError as exc:
        needs = f"needs the {spec.extra} extra: pip install -e '.[{spec.extra}]'; " if spec.extra else ""
        raise EngineError(f"{path}: backend {name!r} is not available ({' '.join(str(exc).split())}); "
                          f"{needs}or use --backend onnxruntime with an .onnx file") from None
    kwargs = {"env": env} if name == "tensorrt" and env is not None else {}
    engine = getattr(module, spec.cls)(path, threads=threads, reason=reason, **kwargs)
    engine.meta.expect(path, task=task, classes=classes)
    engine.calibration  # a malformed calibration is refused here, not at the first frame
    return engine
