"""ONNX Runtime on the GPU: its CUDA and TensorRT execution providers.

These need the ``onnxruntime-gpu`` wheel (which replaces ``onnxruntime``). ONNX Runtime
silently falls back to the CPU when a provider cannot start, so each class checks that
its provider really is the session's first one and refuses otherwise: a benchmark or a
provenance line that says "cuda" must mean it.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from .metadata import EngineError
from .onnxruntime_backend import OnnxRuntimeEngine


class OnnxRuntimeCudaEngine(OnnxRuntimeEngine):
    """ONNX Runtime's CUDA execution provider on device 0. Outputs are fresh arrays."""

    backend_name = "onnxruntime-cuda"
    provider = "CUDAExecutionProvider"

    def _providers(self) -> list:
        return [self.provider, "CPUExecutionProvider"]

    def __init__(self, path: str | Path, threads: int = 0, reason: str = ""):
        import onnxruntime as ort

        if self.provider not in ort.get_available_providers():
            raise EngineError(f"{path}: this ONNX Runtime has no {self.provider} (install onnxruntime-gpu "
                              f"with a CUDA device); use --backend onnxruntime instead")
        super().__init__(path, threads, providers=self._providers(), reason=reason)
        active = self._session.get_providers()[0]
        if active != self.provider:
            raise EngineError(f"{path}: ONNX Runtime could not start {self.provider} (fell back to {active}); "
                              f"use --backend onnxruntime instead")
        self.provenance = dataclasses.replace(self.provenance, device="cuda:0")


class OnnxRuntimeTensorRTEngine(OnnxRuntimeCudaEngine):
    """ONNX Runtime's TensorRT execution provider (FP16, engines cached by ONNX Runtime
    under the nerveseg engine cache), falling back to CUDA for unsupported nodes."""

    backend_name = "onnxruntime-trt"
    provider = "TensorrtExecutionProvider"

    def _providers(self) -> list:
        from .tensorrt_paths import cache_dir

        options = {"trt_fp16_enable": True, "trt_engine_cache_enable": True,
                   "trt_engine_cache_path": str(cache_dir() / "onnxruntime-trt")}
        return [(self.provider, options), "CUDAExecutionProvider", "CPUExecutionProvider"]
