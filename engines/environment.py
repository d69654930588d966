"""What this machine can run: the environment probe behind ``--backend auto``.

The probe asks the CUDA driver directly through ``ctypes`` (no cuda-python, no torch),
so it is cheap and safe on a CPU-only machine. Tests build an :class:`Environment` by
hand instead of monkeypatching imports: every decision below is a pure function of it.
"""

from __future__ import annotations

import ctypes
import functools
import importlib
import importlib.util
import logging
import sys
from dataclasses import dataclass

log = logging.getLogger(__name__)

# CUdevice_attribute values from cuda.h (stable across CUDA releases).
_ATTR_SM_COUNT, _ATTR_CC_MAJOR, _ATTR_CC_MINOR = 16, 75, 76


@dataclass(frozen=True)
class Gpu:
    """One CUDA device as TensorRT sees it: engines are only valid on the same kind."""

    name: str
    compute_capability: str  # "9.0"
    sm_count: int

    def describe(self) -> str:
        return f"{self.name} (sm_{self.compute_capability.replace('.', '')}, {self.sm_count} SMs)"


@dataclass(frozen=True)
class Environment:
    """``gpu`` is None without a usable CUDA device; ``cuda_problem`` says why.
    ``tensorrt`` is the TensorRT version or None; ``cuda_python`` whether cuda-python
    (the TensorRT backend's CUDA runtime binding) imports; ``ort_providers`` are ONNX
    Runtime's available execution providers; ``openvino`` the OpenVINO version or None,
    ``openvino_devices`` the devices its runtime lists (``("CPU",)``, ``("CPU", "GPU")``)."""

    gpu: Gpu | None = None
    cuda_problem: str = "no CUDA device"
    tensorrt: str | None = None
    cuda_python: bool = False
    ort_providers: tuple[str, ...] = ("CPUExecutionProvider",)
    openvino: str | None = None
    openvino_devices: tuple[str, ...] = ()

    def tensorrt_problem(self) -> str | None:
        """None when the TensorRT backend can run here, else the one-phrase reason."""
        if self.gpu is None:
            return self.cuda_problem
        if self.tensorrt is None:
            return "tensorrt package not installed (pip install 'nerveseg[tensorrt]')"
        if not self.cuda_python:
            return "cuda-python package not installed (pip install 'nerveseg[tensorrt]')"
        return None

    def openvino_problem(self) -> str | None:
        """None when OpenVINO can run here, else why not."""
        if self.openvino is None:
            return "openvino package not installed (pip install 'nerveseg[openvino]')"
        return None

    def openvino_device(self) -> str:
        """The OpenVINO plugin the backend uses: its GPU plugin where it lists an Intel GPU."""
        return "Intel GPU" if any(d.split(".")[0] == "GPU" for d in self.openvino_devices) else "CPU"

    def has_ort_cuda(self) -> bool:
        return self.gpu is not None and "CUDAExecutionProvider" in self.ort_providers


def _driver():
    name = "nvcuda.dll" if sys.platform == "win32" else "libcuda.so.1"
    try:
        return ctypes.CDLL(name)
    except OSError:
        return None


def probe_gpu(device: int = 0) -> tuple[Gpu | None, str]:
    """``(gpu, problem)``: the CUDA device ``device`` (after CUDA_VISIBLE_DEVICES), or None
    and why not."""
    lib = _driver()
    if lib is None:
        return None, "no CUDA device (no NVIDIA driver found)"
    count, handle = ctypes.c_int(0), ctypes.c_int(0)
    if lib.cuInit(0) != 0 or lib.cuDeviceGetCount(ctypes.byref(count)) != 0 or count.value <= device:
        return None, "no CUDA device (the NVIDIA driver reports none)"
    if lib.cuDeviceGet(ctypes.byref(handle), device) != 0:
        return None, f"no CUDA device (cannot open device {device})"
    name = ctypes.create_string_buffer(256)
    lib.cuDeviceGetName(name, 256, handle)
    values = []
    for attr in (_ATTR_CC_MAJOR, _ATTR_CC_MINOR, _ATTR_SM_COUNT):
        value = ctypes.c_int(0)
        lib.cuDeviceGetAttribute(ctypes.byref(value), attr, handle)
        values.append(value.value)
    major, minor, sms = values
    return Gpu(name.value.decode(errors="replace").strip(), f"{major}.{minor}", sms), ""


def _tensorrt_version() -> str | None:
    if importlib.util.find_spec("tensorrt") is None:
        return None
    try:
        return str(importlib.import_module("tensorrt").__version__)
    except Exception as exc:  # a broken install (missing libnvinfer) counts as absent
        log.warning("tensorrt is installed but does not import: %s", exc)
        return None


def _openvino() -> tuple[str | None, tuple[str, ...]]:
    """OpenVINO's version and devices, or ``(None, ())`` where it is absent or broken."""
    try:
        if importlib.util.find_spec("openvino") is None:
            return None, ()
    except ImportError:  # not installed (or hidden, as the runtime-install tests do)
        return None, ()
    try:
        from .openvino_backend import _core, import_openvino

        return str(import_openvino().__version__).split("-")[0], tuple(_core().available_devices)
    except Exception as exc:  # a broken install counts as absent
        log.warning("openvino is installed but does not start: %s", exc)
        return None, ()


def _has_cuda_python() -> bool:
    for name in ("cuda.bindings.runtime", "cuda.cudart"):
        try:
            if importlib.util.find_spec(name) is not None:
                return True
        except ModuleNotFoundError:
            continue
    return False


@functools.lru_cache(maxsize=1)
def probe() -> Environment:
    """The real environment, probed once per process. TensorRT is imported only when a
    CUDA device exists: on a CPU machine it could never run anyway."""
    import onnxruntime as ort

    gpu, problem = probe_gpu()
    providers = tuple(ort.get_available_providers())
    openvino, devices = _openvino()
    if gpu is None:
        return Environment(None, problem, None, False, providers, openvino, devices)
    return Environment(gpu, "", _tensorrt_version(), _has_cuda_python(), providers, openvino, devices)
