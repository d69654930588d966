"""ONNX Runtime backend: the CPU path (and CUDA where ONNX Runtime has it)."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from .base import Engine
from .metadata import (INPUT_NAME, META_KEY, OUTPUT_NAMES, REGION_INPUT, EngineError, EngineMeta, Provenance,
                       file_sha256, region_feed)

log = logging.getLogger(__name__)


def read_onnx_meta(path: str | Path) -> EngineMeta:
    """Read the nerveseg metadata of an ONNX file without building a full session."""
    import onnxruntime as ort

    session = _open_session(path, ort.SessionOptions(), ["CPUExecutionProvider"])
    return _meta_from_session(session, path)


def _open_session(path, options, providers):
    import onnxruntime as ort

    path = Path(path)
    if not path.is_file():
        raise EngineError(f"{path}: engine file not found")
    try:
        return ort.InferenceSession(str(path), sess_options=options, providers=providers)
    except Exception as exc:  # ORT raises its own exception types for every parse failure
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise EngineError(f"{path}: not a loadable ONNX model ({first[:200]})") from None


def _meta_from_session(session, path) -> EngineMeta:
    props = session.get_modelmeta().custom_metadata_map
    if META_KEY not in props:
        raise EngineError(f"{path}: ONNX file has no nerveseg metadata (export it with "
                          f"`nerveseg export`); found keys {sorted(props) or 'none'}")
    return EngineMeta.from_json(props[META_KEY], path)


class OnnxRuntimeEngine(Engine):
    """An ONNX file run by ONNX Runtime.

    ``threads`` sets intra-op threads (0 lets ONNX Runtime choose). Outputs are fresh
    arrays on every call (ONNX Runtime allocates them), so callers may keep them.
    """

    backend_name = "onnxruntime"

    def __init__(self, path: str | Path, threads: int = 0, providers: list[str] | None = None,
                 reason: str = ""):
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        # Spinning worker threads burn the cores that decode and encode need.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        providers = providers or ["CPUExecutionProvider"]
        self._session = _open_session(path, options, providers)
        meta = _meta_from_session(self._session, path)
        self._check_io(path, meta)
        device = "cuda" if self._session.get_providers()[0].startswith("CUDA") else "cpu"
        self.provenance = Provenance(str(path), file_sha256(path), self.backend_name, meta,
                                     device=device, reason=reason)
        self._outputs = list(OUTPUT_NAMES.get(meta.task, [o.name for o in self._session.get_outputs()]))
        self._region = meta.task == "region_segment"

    def _check_io(self, path, meta: EngineMeta) -> None:
        inputs = self._session.get_inputs()
        names = [i.name for i in inputs]
        if INPUT_NAME not in names:
            raise EngineError(f"{path}: engine has inputs {names}, expected {INPUT_NAME!r}")
        image = inputs[names.index(INPUT_NAME)]
        shape = image.shape
        h, w = meta.input_size
        if image.type != "tensor(uint8)" or len(shape) != 4 or list(shape[1:]) != [h, w, 3]:
            raise EngineError(f"{path}: input {INPUT_NAME!r} is {image.type} {shape}, metadata says "
                              f"uint8 [N, {h}, {w}, 3]")
        if meta.task == "region_segment":
            self._check_region(path, inputs, names, (h, w))
        have = {o.name for o in self._session.get_outputs()}
        want = set(OUTPUT_NAMES.get(meta.task, ()))
        if not want <= have:
            raise EngineError(f"{path}: a {meta.task!r} engine must output {sorted(want)}, "
                              f"this one outputs {sorted(have)}")

    @staticmethod
    def _check_region(path, inputs, names: list[str], size: tuple[int, int]) -> None:
        if REGION_INPUT not in names:
            raise EngineError(f"{path}: a 'region_segment' engine needs input {REGION_INPUT!r}; it has {names}")
        region = inputs[names.index(REGION_INPUT)]
        if region.type != "tensor(uint8)" or list(region.shape[1:]) != [*size, 1]:
            raise EngineError(f"{path}: input {REGION_INPUT!r} is {region.type} {region.shape}, expected "
                              f"uint8 [N, {size[0]}, {size[1]}, 1]")

    def run(self, batch: np.ndarray, *, region: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """``region`` (``region_segment`` engines only): ``(N, H, W, 1)`` or ``(N, H, W)``
        uint8/bool, > 0 inside; ``None`` = the whole field."""
        feeds = {INPUT_NAME: batch}
        if self._region:
            feeds[REGION_INPUT] = region_feed(batch, region)
        else:
            self.refuse_region(region)
        results = self._session.run(self._outputs, feeds)
        return self.calibrated(dict(zip(self._outputs, results)))

    def close(self) -> None:
        self._session = None
