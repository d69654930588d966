"""Where TensorRT engines and timing caches live on disk (see :mod:`.tensorrt_cache`).

Shared by the builder and the cache, so neither has to import the other for a path."""

from __future__ import annotations

import os
import re
from pathlib import Path

from .tensorrt_meta import EngineKey


def cache_dir() -> Path:
    explicit = os.environ.get("NERVESEG_ENGINE_CACHE")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "nerveseg" / "engines"


def cached_engine_path(onnx: Path, precision: str, onnx_sha256: str) -> Path:
    return cache_dir() / f"{onnx.stem}-{onnx_sha256[:12]}-{precision}.engine"


def timing_cache_path(key: EngineKey) -> Path:
    """One timing cache per GPU model and TensorRT version, shared by every model: the
    layer timings it stores are what make a second build take seconds, not minutes."""
    slug = re.sub(r"[^A-Za-z0-9.]+", "_", f"{key.gpu_name}-sm{key.compute_capability}-trt{key.tensorrt_version}")
    return cache_dir() / f"timing-{slug}.cache"
