"""The one checkpoint dict, and rebuilding a model from it.

``{"model": state_dict (of the bare model), "optimizer", "epoch", "phase", "best",
"args": resolved config, "meta": EngineMeta dict, "arch", "arch_kwargs",
"metrics": that epoch's history row (train/val loss and metric)}``. Everything in it is a tensor or
plain Python data, so ``torch.load(weights_only=True)`` reads it without unpickling code.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import torch

from nerveseg.engines.metadata import EngineError, EngineMeta

from .models import NormalizedModel, build_model

REQUIRED = ("model", "meta", "arch", "arch_kwargs")


def save_checkpoint(path: Path, model: NormalizedModel, meta: EngineMeta, **fields) -> Path:
    """Write atomically (temp file + rename): a crash mid-write never leaves a broken last.pt."""
    state = {"model": model.model.state_dict(), "meta": dataclasses.asdict(meta), **fields}
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)
    return path


def read_checkpoint(path: str | Path) -> dict:
    """The checkpoint dict; :class:`EngineError` (one line naming the file) if unusable."""
    path = Path(path)
    if not path.is_file():
        raise EngineError(f"{path}: checkpoint not found")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # zip, pickle and torch errors alike mean "not our checkpoint"
        raise EngineError(f"{path}: not a readable torch checkpoint ({type(exc).__name__}: "
                          f"{' '.join(str(exc).split())[:160]})") from None
    if not isinstance(ckpt, dict) or any(key not in ckpt for key in REQUIRED):
        have = sorted(ckpt) if isinstance(ckpt, dict) else type(ckpt).__name__
        raise EngineError(f"{path}: not a nerveseg checkpoint (needs {', '.join(REQUIRED)}; has {have})")
    return ckpt


def model_from_checkpoint(path: str | Path) -> tuple[NormalizedModel, EngineMeta, dict]:
    """Rebuild ``(NormalizedModel in eval mode, meta, checkpoint)`` from the registry."""
    ckpt = read_checkpoint(path)
    meta = EngineMeta.from_dict(ckpt["meta"], path)
    outputs = len(meta.classes) if meta.task in ("classify", "gate_segment") else 1
    try:
        model = build_model(meta.task, ckpt["arch"], outputs, **ckpt["arch_kwargs"])
        model.load_state_dict(ckpt["model"])
    except (ValueError, RuntimeError, TypeError) as exc:
        detail = " ".join(str(exc).split())[:200]
        raise EngineError(f"{path}: checkpoint does not rebuild ({detail})") from None
    return NormalizedModel(model, meta.mean, meta.std).eval(), meta, ckpt
