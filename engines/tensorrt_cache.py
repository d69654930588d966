"""The engine cache: ``--backend tensorrt`` on an ONNX file builds once, then reuses.

Cached engines live in ``$NERVESEG_ENGINE_CACHE`` (default
``$XDG_CACHE_HOME/nerveseg/engines``, i.e. ``~/.cache/nerveseg/engines``), named
``<onnx stem>-<onnx sha256[:12]>-<precision>.engine`` with their sidecar beside them.
The file name deliberately leaves out the GPU and TensorRT version: a cached engine
from another GPU or TensorRT release is found, its key compared, and it is rebuilt in
place, never loaded.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Callable

from .environment import Environment
from .metadata import EngineError, file_sha256
from .tensorrt_meta import EngineKey, check_engine_file, read_sidecar
from .tensorrt_paths import cache_dir, cached_engine_path, timing_cache_path  # noqa: F401  (re-exported)

log = logging.getLogger(__name__)

# build(onnx_path, engine_path, precision, env) -> None: writes the engine and its sidecar.
Builder = Callable[[Path, Path, str, Environment], None]


def cache_decision(engine: Path, wanted: EngineKey) -> tuple[bool, str]:
    """``(reuse, why)`` for the cached ``engine`` against the ``wanted`` key."""
    if not engine.exists():
        return False, "no cached engine yet"
    try:
        sidecar = read_sidecar(engine)
        check_engine_file(engine, sidecar)
    except EngineError as exc:
        return False, f"cached engine unusable ({exc})"
    diffs = sidecar.key.mismatches(wanted)
    if diffs:
        return False, f"cached engine was built for {'; '.join(diffs)}"
    return True, "cached engine matches this GPU, TensorRT version, precision and ONNX file"


def ensure_engine(onnx: Path, precision: str, env: Environment, build: Builder | None = None) -> tuple[Path, str]:
    """The cached engine for ``onnx`` at ``precision``, built first if missing or stale.

    Returns ``(engine_path, note)``; the note ("cached …" / "built …") goes into provenance.
    ``build`` defaults to :func:`nerveseg.engines.tensorrt_build.build_for_cache`.
    """
    onnx = Path(onnx)
    if not onnx.is_file():
        raise EngineError(f"{onnx}: ONNX file not found")
    wanted = EngineKey.current(env, precision, file_sha256(onnx), onnx)
    engine = cached_engine_path(onnx, precision, wanted.onnx_sha256)
    reuse, why = cache_decision(engine, wanted)
    if reuse:
        log.info("%s: using cached TensorRT engine %s (%s)", onnx, engine, why)
        return engine, f"cached {precision} engine {engine.name}"
    log.warning("%s: building a %s TensorRT engine for %s: %s. This is a one-time build "
                "(it can take minutes); later runs reuse %s", onnx, precision, env.gpu.describe(), why, engine)
    if build is None:
        from .tensorrt_build import build_for_cache as build
    engine.parent.mkdir(parents=True, exist_ok=True)
    build(onnx, engine, precision, env)
    reuse, why = cache_decision(engine, wanted)
    if not reuse:  # a builder that wrote something else is a bug, not a user error
        raise RuntimeError(f"{engine}: freshly built engine fails its own cache check ({why})")
    return engine, f"built {precision} engine {engine.name}"
