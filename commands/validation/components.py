"""The software components list (exact versions) and the machine, for the report.

Versions of packages the runtime does not import (torch, TensorRT) come from the
installed distributions' metadata, so asking never loads them.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import os
import platform
import sys
from pathlib import Path

NOT_INSTALLED = "not installed"


def distribution(*names: str) -> str:
    """The installed version of the first of ``names`` found (``name==version``), or not installed."""
    for name in names:
        try:
            version = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
        return version if len(names) == 1 else f"{version} ({name})"
    return NOT_INSTALLED


def _module_version(module: str, attribute: str = "__version__") -> str:
    try:
        return str(getattr(importlib.import_module(module), attribute))
    except ImportError:
        return NOT_INSTALLED


def _ffmpeg() -> list[dict]:
    try:
        import av
    except ImportError:
        return []
    return [{"name": f"FFmpeg {lib}", "version": ".".join(str(v) for v in version), "role": "PyAV's FFmpeg"}
            for lib, version in sorted(av.library_versions.items())]


def _qt() -> list[dict]:
    try:
        from PyQt6.QtCore import PYQT_VERSION_STR, qVersion
    except ImportError:
        return [{"name": "Qt / PyQt6", "version": NOT_INSTALLED, "role": "operating-room view"}]
    return [{"name": "Qt", "version": qVersion(), "role": "operating-room view (runtime library)"},
            {"name": "PyQt6", "version": PYQT_VERSION_STR, "role": "Qt bindings"}]


def software() -> list[dict]:
    """``[{"name", "version", "role"}]`` for everything that touches a frame or a figure."""
    import numpy

    from nerveseg.training.runlog import git_revision

    ort = _module_version("onnxruntime")
    providers = importlib.import_module("onnxruntime").get_available_providers() if ort != NOT_INSTALLED else []
    rows = [
        ("Python", f"{platform.python_version()} ({platform.python_implementation()})", "interpreter"),
        ("nerveseg", f"{distribution('nerveseg')} git {git_revision()}", "this software"),
        ("numpy", numpy.__version__, "arrays"),
        ("onnxruntime", f"{distribution('onnxruntime', 'onnxruntime-gpu')}; providers: "
                        f"{', '.join(providers) or 'none'}", "CPU/GPU inference"),
        ("tensorrt", distribution("tensorrt", "tensorrt_cu13", "tensorrt-cu12"), "GPU inference"),
        ("cuda-python", distribution("cuda-python"), "TensorRT's CUDA binding"),
        ("torch", distribution("torch"), "training only"),
        ("torchvision", distribution("torchvision"), "training only"),
        ("OpenCV", f"{_module_version('cv2')}, wheel {distribution('opencv-python-headless', 'opencv-python')}",
         "resize, overlay drawing"),
        ("PyAV", _module_version("av"), "video decode and recording"),
    ]
    rest = [("matplotlib", _module_version("matplotlib"), "report figures"),
            ("PyYAML", distribution("PyYAML"), "configuration"),
            ("tqdm", distribution("tqdm"), "progress bars")]
    named = [{"name": n, "version": v, "role": r} for n, v, r in rows]
    return named + _ffmpeg() + _qt() + [{"name": n, "version": v, "role": r} for n, v, r in rest]


def machine() -> dict:
    """What the delays were measured on: they hold for this machine only."""
    from nerveseg.engines.environment import probe

    env = probe()
    return {"host": platform.node(), "os": platform.platform(), "cpu": _cpu_model(),
            "logical_cpus": os.cpu_count(), "usable_cpus": len(os.sched_getaffinity(0))
            if hasattr(os, "sched_getaffinity") else os.cpu_count(),
            "memory_gib": _memory_gib(), "gpu": env.gpu.describe() if env.gpu else f"none ({env.cuda_problem})",
            "load_average_1_5_15_min": [round(v, 2) for v in os.getloadavg()] if hasattr(os, "getloadavg") else None,
            "python_executable": sys.executable}


def _cpu_model() -> str:
    info = Path("/proc/cpuinfo")
    if info.is_file():
        for line in info.read_text(errors="replace").splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def _memory_gib() -> float | None:
    try:
        return round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    except (ValueError, OSError, AttributeError):
        return None
