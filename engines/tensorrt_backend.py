"""TensorRT backend: a serialized engine (or an ONNX file built through the cache).

Loading checks, in this order, so each failure is one line naming the file: TensorRT and
a CUDA device are present; the sidecar exists and parses; the engine bytes match the
sidecar's sha256; the sidecar's key matches this GPU and TensorRT version; TensorRT
deserializes it; its I/O matches the nerveseg contract.

Inference (``run``): the batch is copied into pinned host memory, copied to the device
asynchronously on the engine's own non-blocking CUDA stream, executed with
``execute_async_v3`` against tensor addresses fixed at load time, and the outputs are
copied back into pinned host arrays before one stream synchronise. Device buffers and
pinned arrays are allocated once, for the engine's largest batch.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from . import cuda_memory as cm
from .base import Engine
from .environment import Environment, probe
from .metadata import INPUT_NAME, OUTPUT_NAMES, EngineError, EngineMeta, Provenance
from .tensorrt_cache import ensure_engine
from .tensorrt_meta import check_engine_file, check_key, read_sidecar

log = logging.getLogger(__name__)

DEFAULT_PRECISION = "fp16"  # what `--backend tensorrt` builds from an ONNX file


class TensorRTEngine(Engine):
    """A TensorRT engine on CUDA device 0 (after ``CUDA_VISIBLE_DEVICES``).

    ``path``: a ``.engine``/``.plan`` with its sidecar, or an ``.onnx`` file, for which
    a ``precision`` engine is built once into the engine cache. ``threads`` is accepted
    for interface parity and ignored (the GPU does the work).

    Buffer ownership: ``run`` returns views of pinned host arrays that the next ``run``
    overwrites; callers that keep outputs copy them.
    """

    backend_name = "tensorrt"

    def __init__(self, path: str | Path, threads: int = 0, reason: str = "",
                 env: Environment | None = None, precision: str = DEFAULT_PRECISION):
        path = Path(path)
        env = env or probe()
        problem = env.tensorrt_problem()
        if problem:
            raise EngineError(f"{path}: cannot use TensorRT here: {problem}; use --backend onnxruntime instead")
        if path.suffix.lower() == ".onnx":
            path, note = ensure_engine(path, precision, env)
            reason = f"{reason}; {note}" if reason else note
        sidecar = read_sidecar(path)
        check_engine_file(path, sidecar)
        check_key(path, sidecar, env)
        self._buffers: list = []
        self._stream = None
        try:
            self._load(path, sidecar.meta)
        except cm.CudaError as exc:  # at start-up a CUDA failure is a one-line refusal
            raise EngineError(f"{path}: {exc}") from None
        device = f"cuda:0 {env.gpu.name}"
        # Provenance's hash is the engine's (it differs per GPU); the ONNX hash is what
        # ties the output to the exported model, so it travels in the reason.
        source = f"from ONNX sha256:{sidecar.key.onnx_sha256[:12]}"
        reason = f"{reason}; {source}" if reason else source
        self.provenance = Provenance(str(path), sidecar.engine_sha256, f"tensorrt-{sidecar.key.precision}",
                                     sidecar.meta, device=device, reason=reason)

    def _load(self, path: Path, meta: EngineMeta) -> None:
        import tensorrt as trt

        cm.check(cm.runtime().cudaSetDevice(0), "set device")
        self._logger = trt.Logger(trt.Logger.WARNING)
        self._runtime = trt.Runtime(self._logger)
        self._engine = self._runtime.deserialize_cuda_engine(path.read_bytes())
        if self._engine is None:
            raise EngineError(f"{path}: TensorRT {trt.__version__} cannot deserialize this engine "
                              f"(corrupt, or built by another TensorRT version or GPU)")
        self._context = self._engine.create_execution_context()
        self._outputs = self._check_io(trt, path, meta)
        self._allocate(trt)

    def _check_io(self, trt, path: Path, meta: EngineMeta) -> tuple[str, ...]:
        engine = self._engine
        names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
        inputs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        h, w = meta.input_size
        if inputs != [INPUT_NAME]:
            raise EngineError(f"{path}: engine has inputs {inputs}, expected [{INPUT_NAME!r}]")
        shape = tuple(engine.get_tensor_shape(INPUT_NAME))
        if engine.get_tensor_dtype(INPUT_NAME) != trt.DataType.UINT8 or len(shape) != 4 or shape[1:] != (h, w, 3):
            raise EngineError(f"{path}: input {INPUT_NAME!r} is {engine.get_tensor_dtype(INPUT_NAME)} {shape}, "
                              f"metadata says uint8 [N, {h}, {w}, 3]")
        want = OUTPUT_NAMES.get(meta.task, tuple(n for n in names if n not in inputs))
        missing = [n for n in want if n not in names]
        if missing:
            raise EngineError(f"{path}: a {meta.task!r} engine must output {list(want)}, this one has {names}")
        bad = [n for n in want if engine.get_tensor_dtype(n) != trt.DataType.FLOAT]
        if bad:
            raise EngineError(f"{path}: outputs {bad} are not float32")
        return tuple(want)

    def _allocate(self, trt) -> None:
        """Device buffers and pinned host arrays for every I/O tensor at the largest
        batch of profile 0, with their addresses bound to the context once."""
        engine, context = self._engine, self._context
        shape = tuple(engine.get_tensor_shape(INPUT_NAME))
        self._dynamic = shape[0] == -1
        self.max_batch = engine.get_tensor_profile_shape(INPUT_NAME, 0)[2][0] if self._dynamic else shape[0]
        if self._dynamic:
            context.set_input_shape(INPUT_NAME, (self.max_batch, *shape[1:]))
        self._stream = cm.Stream()
        self._host, self._device = {}, {}
        for name in (INPUT_NAME, *self._outputs):
            full = tuple(context.get_tensor_shape(name))
            host = cm.PinnedArray(full, trt.nptype(engine.get_tensor_dtype(name)))
            device = cm.DeviceBuffer(host.array.nbytes)
            self._buffers += [host, device]
            self._host[name], self._device[name] = host, device
            context.set_tensor_address(name, device.ptr)
        # Outputs of engines that ship extra tensors still need an address to write to.
        for i in range(engine.num_io_tensors):
            name = engine.get_tensor_name(i)
            if name not in self._device:
                itemsize = np.dtype(trt.nptype(engine.get_tensor_dtype(name))).itemsize
                extra = cm.DeviceBuffer(int(np.prod(context.get_tensor_shape(name))) * itemsize)
                self._buffers.append(extra)
                context.set_tensor_address(name, extra.ptr)

    def run(self, batch: np.ndarray, *, region: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """``(N, H, W, 3) uint8`` with ``N <= max_batch`` → outputs as views of pinned arrays.
        A region input is not fed on TensorRT (a region engine runs on the whole field)."""
        self.refuse_region(region)
        n = batch.shape[0]
        h, w = self.input_size
        if batch.dtype != np.uint8 or batch.shape[1:] != (h, w, 3) or not 1 <= n <= self.max_batch:
            raise ValueError(f"TensorRT engine takes (1..{self.max_batch}, {h}, {w}, 3) uint8, "
                             f"got {batch.shape} {batch.dtype}")
        if self._dynamic:
            self._context.set_input_shape(INPUT_NAME, batch.shape)
        image = self._host[INPUT_NAME]
        np.copyto(image.array[:n], batch)
        cm.copy_to_device(self._device[INPUT_NAME], image, batch.nbytes, self._stream)
        if not self._context.execute_async_v3(int(self._stream)):
            raise cm.CudaError(f"{self.provenance.path}: TensorRT execution failed")
        out = {}
        for name in self._outputs:
            host = self._host[name]
            nbytes = host.array[:n].nbytes
            cm.copy_to_host(host, self._device[name], nbytes, self._stream)
            out[name] = host.array[:n]
        self._stream.synchronize()
        return self.calibrated(out)

    def close(self) -> None:
        """Free buffers and the stream; the engine is unusable afterwards."""
        for buffer in self._buffers:
            buffer.free()
        self._buffers = []
        if self._stream is not None:
            self._stream.free()
            self._stream = None
        self._context = self._engine = None
