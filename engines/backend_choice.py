"""``--backend auto`` among the CPU backends: measured, not assumed.

Which CPU runtime is faster depends on the engine and the CPU (OpenVINO's BF16 wins on
one, ONNX Runtime on another; on the small sample engines they are within a millisecond),
so when more than one can run an engine here, :func:`fastest` loads each, times a few
runs on a real-size blank batch and keeps the one with the lower median. The figures go
into the one-line reason (log, provenance, summaries). The decision is cached per engine
file hash and machine in ``<engine cache>/backend-choice.json`` (written whole: temp file,
then rename), so a second start only loads the winner.
"""

from __future__ import annotations

import json
from importlib import metadata
import logging
import os
import platform
import statistics
import time
from pathlib import Path
from typing import Callable

import numpy as np

from .base import Engine
from .metadata import EngineError, file_sha256
from .tensorrt_paths import cache_dir

log = logging.getLogger(__name__)

WARM_RUNS = 3
TIMED_RUNS = 9
MAX_ENTRIES = 256  # the cache forgets the oldest decisions beyond this
LABELS = {"openvino": "OpenVINO", "onnxruntime": "ONNX Runtime"}


def cache_path() -> Path:
    return cache_dir() / "backend-choice.json"


def machine_key(threads: int) -> str:
    """What makes a timing valid: the CPU, the core count, the runtime versions, the threads."""
    versions = []
    for package in ("onnxruntime", "openvino"):
        try:
            versions.append(f"{package}-{metadata.version(package)}")
        except metadata.PackageNotFoundError:
            continue
    return "|".join([platform.node(), platform.machine(), _cpu_model(), f"{os.cpu_count()}cpu",
                     *versions, f"threads={threads}"])


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "cpu"


def median_ms(engine: Engine, warm: int = WARM_RUNS, runs: int = TIMED_RUNS) -> float:
    """The median wall time (ms) of ``engine.run`` on a blank ``(1, H, W, 3) uint8`` batch,
    after ``warm`` untimed runs (first-call allocation stays out)."""
    h, w = engine.input_size
    batch = np.zeros((1, h, w, 3), np.uint8)
    for _ in range(warm):
        engine.run(batch)
    times = []
    for _ in range(runs):
        start = time.perf_counter_ns()
        engine.run(batch)
        times.append((time.perf_counter_ns() - start) / 1e6)
    return statistics.median(times)


def _read_cache() -> dict:
    try:
        data = json.loads(cache_path().read_text())
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def _write_cache(entries: dict) -> None:
    path = cache_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        kept = dict(list(entries.items())[-MAX_ENTRIES:])
        tmp.write_text(json.dumps(kept, indent=1, sort_keys=False))
        os.replace(tmp, path)
    except OSError as exc:  # a read-only cache costs a re-measurement next time, nothing else
        log.warning("%s: cannot save the backend choice (%s)", path, exc)


def _reason(figures: dict[str, float], winner: str, cached: bool) -> str:
    said = ", ".join(f"{LABELS.get(n, n)} {ms:.2f} ms" for n, ms in sorted(figures.items(), key=lambda i: i[1]))
    how = "cached measurement" if cached else f"measured here, median of {TIMED_RUNS}"
    return f"{LABELS.get(winner, winner)} on CPU, the fastest here ({said}; {how})"


def fastest(path: Path, names: list[str], threads: int,
            load: Callable[[str], Engine]) -> tuple[Engine, str, dict[str, float]]:
    """Load the fastest of the backends ``names`` for ``path`` here: ``(engine, reason,
    medians in ms by backend)``. ``load(name)`` loads ``path`` with one backend."""
    key = f"{file_sha256(path)}|{machine_key(threads)}"
    entries = _read_cache()
    hit = entries.get(key)
    if isinstance(hit, dict) and hit.get("winner") in names and set(hit.get("ms", {})) == set(names):
        return load(hit["winner"]), _reason(hit["ms"], hit["winner"], cached=True), dict(hit["ms"])
    figures: dict[str, float] = {}
    failed: list[tuple[str, EngineError]] = []
    best: Engine | None = None
    for name in names:
        try:
            engine = load(name)
        except EngineError as exc:  # one runtime refusing a graph leaves the others
            failed.append((name, exc))
            continue
        figures[name] = median_ms(engine)
        if best is None or figures[name] < figures[best.provenance.backend]:
            if best is not None:
                best.close()
            best = engine
        else:
            engine.close()
    if best is None:
        raise failed[0][1]  # every runtime refused it: the first one's words
    winner = best.provenance.backend
    reason = _reason(figures, winner, cached=False)
    if failed:
        reason += "; " + "; ".join(f"{LABELS.get(n, n)} could not load it ({exc})" for n, exc in failed)
        return best, reason, figures  # not cached: a fixed install should be measured again
    entries.pop(key, None)
    entries[key] = {"winner": winner, "ms": figures, "engine": str(path), "at": time.strftime("%Y-%m-%dT%H:%M:%S")}
    _write_cache(entries)
    return best, reason, figures
