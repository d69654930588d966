"""Several processes (``torchrun``), devices, determinism: what one training process needs
to know about where it runs.

``torchrun --nproc-per-node N -m nerveseg.commands.cli train ...`` starts N copies of
the same command; each reads ``RANK``/``WORLD_SIZE``/``LOCAL_RANK`` here, joins the
process group (NCCL on CUDA, gloo on CPU), trains on its :class:`DistributedSampler`
shard inside :class:`DistributedDataParallel`, and only rank 0 logs, writes the run
folder and saves checkpoints. Without those variables everything is a no-op and the
single-process path is unchanged.
"""

from __future__ import annotations

import logging
import os
import random
from dataclasses import dataclass

import numpy as np
import torch
from torch import distributed as dist
from torch import nn

from nerveseg.engines.errors import UserError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Dist:
    """This process: ``rank`` of ``world`` processes, its ``device``."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world > 1


def pick_device(requested: str = "auto", local_rank: int = 0) -> torch.device:
    """``auto``: CUDA (this process's GPU under torchrun) if present, else the CPU."""
    if requested == "auto":
        requested = "cuda" if torch.cuda.is_available() else "cpu"
    if requested.startswith("cuda") and not torch.cuda.is_available():
        raise UserError(f"--device {requested}: no CUDA device here (torch.cuda.is_available() is False)")
    if requested == "cuda":
        return torch.device("cuda", local_rank)
    try:
        return torch.device(requested)
    except RuntimeError:
        raise UserError(f"--device {requested!r}: expected auto, cpu, cuda or cuda:N") from None


def setup(requested: str = "auto", deterministic: bool = False) -> Dist:
    """Join the torchrun process group if there is one; returns this process's :class:`Dist`."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank, local = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
    if deterministic:
        # cuBLAS needs this before its first call to be deterministic (PyTorch's reproducibility notes).
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    device = pick_device(requested, local)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    set_deterministic(deterministic)
    return Dist(rank, world, local, device)


def set_deterministic(on: bool) -> None:
    """Deterministic kernels (warn, not fail, where one has none) and no cuDNN autotuning."""
    torch.use_deterministic_algorithms(on, warn_only=True)
    torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.deterministic = on


def cleanup() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def barrier() -> None:
    if dist.is_initialized():
        dist.barrier()


def broadcast(obj, src: int = 0):
    """Rank ``src``'s ``obj`` on every process (picklable plain data; no shared disk needed)."""
    if not dist.is_initialized():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def all_reduce_sums(values: list[float], device: torch.device) -> list[float]:
    """Element-wise sums over every process (the values themselves without torchrun)."""
    if not dist.is_initialized():
        return list(values)
    tensor = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(tensor)
    return tensor.tolist()


def wrap(model: nn.Module, where: Dist) -> nn.Module:
    """``model`` in DistributedDataParallel under torchrun, else ``model`` itself.

    Wrap again after freezing or unfreezing: DDP registers the parameters that require
    gradients when it is built."""
    if not where.enabled:
        return model
    ids = [where.device.index] if where.device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(model, device_ids=ids)


def unwrap(model: nn.Module) -> nn.Module:
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


def seed_all(seed: int) -> None:
    """Python, numpy and torch (all devices) generators."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def seed_worker(_: int) -> None:
    """DataLoader ``worker_init_fn``: numpy/random from the worker's torch seed."""
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
    random.seed(seed)


def use_amp(args, device: torch.device) -> bool:
    """Mixed precision only on CUDA and only if ``args.amp`` (default on)."""
    return bool(getattr(args, "amp", False)) and device.type == "cuda"


def autocast(device: torch.device, enabled: bool):
    """float16 autocast on CUDA when ``enabled``; a no-op context otherwise."""
    return torch.autocast(device_type=device.type, dtype=torch.float16, enabled=enabled)


def grad_scaler(device: torch.device, enabled: bool) -> torch.amp.GradScaler:
    """A GradScaler; disabled, its ``scale``/``step``/``update`` are plain backward/step."""
    return torch.amp.GradScaler(device.type, enabled=enabled)
