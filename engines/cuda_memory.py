"""Thin wrappers over cuda-python's runtime API for the TensorRT backend.

Only what inference needs: a non-blocking stream, device buffers, pinned (page-locked)
host arrays and asynchronous copies between them. Pinned memory is what lets
``cudaMemcpyAsync`` overlap with other work; pageable numpy memory would make every
copy synchronous. Every object frees itself in ``free()``; owners call it in ``close()``.
"""

from __future__ import annotations

import ctypes

import numpy as np


class CudaError(RuntimeError):
    """A CUDA runtime call failed (a device fault or a bug, not a user error)."""


def runtime():
    """The cuda-python runtime module (``cuda.bindings.runtime`` from 12.6 on, else the
    older ``cuda.cudart``)."""
    try:
        from cuda.bindings import runtime as cudart
    except ImportError:
        from cuda import cudart
    return cudart


def check(result, what: str):
    """Unpack a cuda-python ``(err, *values)`` tuple, raising :class:`CudaError` on error."""
    cudart = runtime()
    err, *values = result if isinstance(result, tuple) else (result,)
    if err != cudart.cudaError_t.cudaSuccess:
        name = getattr(err, "name", str(err))
        raise CudaError(f"CUDA {what} failed: {name}")
    if not values:
        return None
    return values[0] if len(values) == 1 else tuple(values)


class Stream:
    """A CUDA stream of our own, so our copies and kernels never wait on other work."""

    def __init__(self) -> None:
        cudart = runtime()
        self.handle = check(cudart.cudaStreamCreateWithFlags(cudart.cudaStreamNonBlocking), "stream create")

    def synchronize(self) -> None:
        check(runtime().cudaStreamSynchronize(self.handle), "stream synchronize")

    def free(self) -> None:
        if self.handle is not None:
            runtime().cudaStreamDestroy(self.handle)
            self.handle = None

    def __int__(self) -> int:
        return int(self.handle)


class DeviceBuffer:
    """``nbytes`` of device memory, allocated once."""

    def __init__(self, nbytes: int) -> None:
        self.nbytes = nbytes
        self.ptr = int(check(runtime().cudaMalloc(max(nbytes, 1)), f"malloc of {nbytes} bytes"))

    def free(self) -> None:
        if self.ptr:
            runtime().cudaFree(self.ptr)
            self.ptr = 0


class PinnedArray:
    """A numpy array in page-locked host memory: ``array`` has ``shape`` and ``dtype``.

    The array is a view of memory this object owns; it is invalid after :meth:`free`.
    """

    def __init__(self, shape: tuple[int, ...], dtype) -> None:
        dtype = np.dtype(dtype)
        nbytes = int(np.prod(shape)) * dtype.itemsize
        self.ptr = int(check(runtime().cudaMallocHost(max(nbytes, 1)), f"pinned malloc of {nbytes} bytes"))
        raw = (ctypes.c_ubyte * max(nbytes, 1)).from_address(self.ptr)
        self.array = np.frombuffer(raw, dtype=np.uint8, count=nbytes).view(dtype).reshape(shape)

    def free(self) -> None:
        if self.ptr:
            self.array = None
            runtime().cudaFreeHost(self.ptr)
            self.ptr = 0


def copy_to_device(dst: DeviceBuffer, src: PinnedArray, nbytes: int, stream: Stream) -> None:
    cudart = runtime()
    check(cudart.cudaMemcpyAsync(dst.ptr, src.ptr, nbytes, cudart.cudaMemcpyKind.cudaMemcpyHostToDevice,
                                 stream.handle), "host-to-device copy")


def copy_to_host(dst: PinnedArray, src: DeviceBuffer, nbytes: int, stream: Stream) -> None:
    cudart = runtime()
    check(cudart.cudaMemcpyAsync(dst.ptr, src.ptr, nbytes, cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost,
                                 stream.handle), "device-to-host copy")


def upload(dst: DeviceBuffer, array: np.ndarray) -> None:
    """Synchronous copy of a contiguous host array (for set-up paths, not per frame)."""
    cudart = runtime()
    array = np.ascontiguousarray(array)
    check(cudart.cudaMemcpy(dst.ptr, array.ctypes.data, array.nbytes,
                            cudart.cudaMemcpyKind.cudaMemcpyHostToDevice), "upload")
