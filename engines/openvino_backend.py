"""OpenVINO backend: the same ``.onnx`` engine files, run by Intel's OpenVINO runtime.

OpenVINO reads an ONNX file directly (no conversion step, nothing written to disk) and
keeps its ``metadata_props`` under ``rt_info["framework"]``, so the nerveseg metadata
and the checks on it are the ones the ONNX Runtime backend applies. The CPU plugin runs
it; the GPU plugin only where the runtime lists an Intel GPU.

Offline: ``import openvino`` imports its model converter, whose package start-up writes
a client id under ``~/intel`` and sends an "import" event to Google Analytics unless a
consent file says no (openvino-telemetry; no consent file counts as yes). An
operating-room machine must not phone home, so :func:`import_openvino` imports it with
``openvino_telemetry`` made unimportable for that moment: the converter then falls back
to its own no-op stub (``openvino.tools.ovc.telemetry_stub``). Nothing is downloaded and
no model cache is set, so the runtime writes nothing to disk.
"""

from __future__ import annotations

import functools
import importlib
import logging
import sys
import threading
from pathlib import Path

import numpy as np

from .base import Engine
from .metadata import (INPUT_NAME, META_KEY, OUTPUT_NAMES, REGION_INPUT, EngineError, EngineMeta, Provenance,
                       file_sha256, region_feed)

log = logging.getLogger(__name__)

# OpenVINO element types as ONNX names them, so a refusal reads as ONNX Runtime's does.
_ONNX_TYPES = {"u8": "uint8", "f32": "float", "f16": "float16", "i64": "int64", "i32": "int32",
               "f64": "double", "boolean": "bool", "i8": "int8"}


def import_openvino():
    """The ``openvino`` module, imported with its telemetry replaced by its no-op stub
    (see the module docstring); an import that already happened is left as it is."""
    if "openvino" in sys.modules:
        return sys.modules["openvino"]
    blocked = "openvino_telemetry" not in sys.modules
    if blocked:
        sys.modules["openvino_telemetry"] = None  # `import openvino_telemetry` raises ImportError
    try:
        return importlib.import_module("openvino")
    finally:
        if blocked and sys.modules.get("openvino_telemetry", 0) is None:
            del sys.modules["openvino_telemetry"]


# Tasks whose outputs OpenVINO gets wrong, and how (found by the suite, not assumed).
REFUSED_TASKS = {"instance": "a frame with no detection came back with one garbage detection, "
                             "where ONNX Runtime returns none"}


@functools.lru_cache(maxsize=1)
def _core():
    """One OpenVINO ``Core`` per process: it loads the device plugins once."""
    return import_openvino().Core()


def device_for(available: list[str] | tuple[str, ...]) -> str:
    """``"GPU"`` where OpenVINO lists an (Intel) GPU among ``available``, else ``"CPU"``."""
    return "GPU" if any(d == "GPU" or d.startswith("GPU.") for d in available) else "CPU"


def _said(exc: Exception) -> str:
    """OpenVINO's message in one short phrase: its most telling line, not the C++ location
    (``Exception from src/...``, ``Check 'false' failed at ...``) it starts with."""
    lines = [line.strip(" -") for line in str(exc).splitlines() if line.strip()]
    telling = [line for line in lines if not line.startswith(("Exception from", "Check ", "To facilitate"))]
    for line in telling:
        if "No conversion rule" in line or "not supported" in line.lower():
            return line[:200]
    return (telling[-1] if telling else lines[0] if lines else type(exc).__name__)[:200]


def _read_model(path: Path):
    """The ONNX file through OpenVINO's ONNX frontend only: ``Core.read_model`` tries every
    frontend on a file it cannot parse, and TensorFlow's writes its parse errors to stderr."""
    if not path.is_file():
        raise EngineError(f"{path}: engine file not found")
    _core()  # imports openvino the offline way first
    from openvino.frontend import FrontEndManager

    try:
        onnx = FrontEndManager().load_by_framework("onnx")
        model = onnx.convert(onnx.load(str(path)))
    except Exception as exc:  # the frontend raises its own types for every parse failure
        raise EngineError(f"{path}: not a loadable ONNX model ({_said(exc)})") from None
    if not model.outputs:  # an empty file parses as an empty graph
        raise EngineError(f"{path}: not a loadable ONNX model (no graph: {path.stat().st_size} bytes)")
    return model


def _meta_from_model(model, path: Path) -> EngineMeta:
    framework = model.get_rt_info()
    keys = []
    if "framework" in framework:
        keys = list(model.get_rt_info(["framework"]).astype(dict).keys())
    if META_KEY not in keys:
        raise EngineError(f"{path}: ONNX file has no nerveseg metadata (export it with "
                          f"`nerveseg export`); found keys {sorted(keys) or 'none'}")
    return EngineMeta.from_json(model.get_rt_info(["framework", META_KEY]).astype(str), path)


def _type_name(port) -> str:
    name = port.get_element_type().get_type_name()
    return f"tensor({_ONNX_TYPES.get(name, name)})"


def _dims(port) -> list:
    """The port's shape with a dynamic batch as ``"N"``: ``["N", 224, 224, 3]``."""
    return [d.get_length() if d.is_static else "N" for d in port.get_partial_shape()]


def _check_io(path: Path, model, meta: EngineMeta) -> None:
    """The same refusals, with the same words, as the ONNX Runtime backend."""
    inputs = {port.get_any_name(): port for port in model.inputs}
    if INPUT_NAME not in inputs:
        raise EngineError(f"{path}: engine has inputs {list(inputs)}, expected {INPUT_NAME!r}")
    h, w = meta.input_size
    image = inputs[INPUT_NAME]
    shape = _dims(image)
    if _type_name(image) != "tensor(uint8)" or len(shape) != 4 or shape[1:] != [h, w, 3]:
        raise EngineError(f"{path}: input {INPUT_NAME!r} is {_type_name(image)} {shape}, metadata says "
                          f"uint8 [N, {h}, {w}, 3]")
    if meta.task == "region_segment":
        if REGION_INPUT not in inputs:
            raise EngineError(f"{path}: a 'region_segment' engine needs input {REGION_INPUT!r}; "
                              f"it has {list(inputs)}")
        region = inputs[REGION_INPUT]
        if _type_name(region) != "tensor(uint8)" or _dims(region)[1:] != [h, w, 1]:
            raise EngineError(f"{path}: input {REGION_INPUT!r} is {_type_name(region)} {_dims(region)}, "
                              f"expected uint8 [N, {h}, {w}, 1]")
    have = {name for port in model.outputs for name in port.get_names()}
    want = set(OUTPUT_NAMES.get(meta.task, ()))
    if not want <= have:
        raise EngineError(f"{path}: a {meta.task!r} engine must output {sorted(want)}, "
                          f"this one outputs {sorted(have)}")


class OpenVinoEngine(Engine):
    """An ONNX file run by OpenVINO (CPU plugin; GPU plugin where an Intel GPU is listed).

    ``threads`` caps the CPU plugin's inference threads (0: OpenVINO's choice). The
    precision is the plugin's default for this CPU (BF16 where the CPU has it, else FP32)
    and is said in the provenance's ``device`` (``cpu:f32``). Outputs are fresh arrays
    (copied out of the request's buffers), so callers may keep them; ``run`` is
    serialised by a lock because one infer request is not thread-safe.
    """

    backend_name = "openvino"

    def __init__(self, path: str | Path, threads: int = 0, reason: str = "", device: str | None = None):
        path = Path(path)
        model = _read_model(path)
        meta = _meta_from_model(model, path)
        if meta.task in REFUSED_TASKS:
            raise EngineError(f"{path}: the OpenVINO backend does not run {meta.task!r} engines "
                              f"({REFUSED_TASKS[meta.task]}); use --backend onnxruntime")
        _check_io(path, model, meta)
        device = device or device_for(_core().available_devices)
        config = {"PERFORMANCE_HINT": "LATENCY"}
        if threads and device == "CPU":
            config["INFERENCE_NUM_THREADS"] = int(threads)
        try:
            self._compiled = _core().compile_model(model, device, config)
        except Exception as exc:
            raise EngineError(f"{path}: OpenVINO cannot compile it for {device} ({_said(exc)})") from None
        self._request = self._compiled.create_infer_request()
        self._lock = threading.Lock()
        precision = self._compiled.get_property("INFERENCE_PRECISION_HINT").get_type_name()
        self.provenance = Provenance(str(path), file_sha256(path), self.backend_name, meta,
                                     device=f"{device.lower()}:{precision}", reason=reason)
        self._outputs = list(OUTPUT_NAMES.get(meta.task, [o.get_any_name() for o in model.outputs]))
        self._ports = {name: self._compiled.output(name) for name in self._outputs}
        self._region = meta.task == "region_segment"

    def run(self, batch: np.ndarray, *, region: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """``batch`` ``(N, H, W, 3) uint8``; ``region`` (``region_segment`` engines only):
        ``(N, H, W, 1)`` or ``(N, H, W)`` uint8/bool, > 0 inside; ``None`` = the whole field."""
        feeds = {INPUT_NAME: np.ascontiguousarray(batch)}
        if self._region:
            feeds[REGION_INPUT] = region_feed(batch, region)
        else:
            self.refuse_region(region)
        with self._lock:
            results = self._request.infer(feeds, share_outputs=False)
            return self.calibrated({name: np.asarray(results[port]) for name, port in self._ports.items()})

    def close(self) -> None:
        self._request = None
        self._compiled = None

