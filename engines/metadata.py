"""What an engine file says about itself.

Every exported engine carries an :class:`EngineMeta` (inside the ONNX file's metadata
under the key ``nerveseg``, beside a TensorRT engine as ``<engine>.json``, inside a torch
checkpoint under ``"meta"``). The runtime never asks the user for class names, input
size or normalisation: it reads them here, and refuses a file whose metadata is missing
or does not fit the task it is loaded for.

Engine I/O contract, the same for every backend:

* input ``image``: ``(N, H, W, 3) uint8 RGB``; normalisation ``(x/255 - mean) / std``
  and the NHWC→NCHW transpose happen *inside* the graph, so the runtime feeds the
  resized frame as it is.
* ``classify`` output ``logits``: ``(N, C) float32``.
* ``segment`` output ``mask_logits``: ``(N, 1, H, W) float32`` (sigmoid → nerve prob).
* ``instance`` (Mask R-CNN; one image per call, ``N = 1``): ``boxes`` ``(K, 4) float32``
  x0, y0, x1, y1 in input pixels, ``labels`` ``(K,) int64`` indices into ``classes``
  (``classes[0]`` is ``background``), ``scores`` ``(K,) float32``, ``masks``
  ``(K, 1, M, M) float32`` probabilities inside each box (M = 28), pasted by
  :func:`nerveseg.engines.instance_masks.paste_masks`; ``K`` varies per frame.
* ``region_segment`` takes a second input ``region``: ``(N, H, W, 1) uint8``, the region
  to segment inside (> 0 inside, e.g. 0/1 or 0/255); output ``mask_logits`` ``(N, 1, H, W)
  float32``, the structures inside that region only. Backends take it as
  ``run(batch, region=None)``; ``None`` means the whole field.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

META_KEY = "nerveseg"
FORMAT_VERSION = 1
TASKS = ("classify", "segment", "gate_segment", "instance", "region_segment")
INPUT_NAME = "image"
OUTPUT_NAMES = {"classify": ("logits",), "segment": ("mask_logits",),
                "gate_segment": ("logits", "mask_logits")}
OUTPUT_NAMES["instance"] = ("boxes", "labels", "scores", "masks")
OUTPUT_NAMES["region_segment"] = ("mask_logits",)
REGION_INPUT = "region"  # the second input of a region_segment engine
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class EngineError(RuntimeError):
    """An engine file that cannot be used. The message is one line naming the file."""


@dataclass(frozen=True)
class EngineMeta:
    """Self-description of one exported model.

    ``input_size`` is ``(height, width)`` of the ``image`` input. ``classes`` lists the
    output classes in logit order (for ``segment``: ``("background", "nerve")``).
    """

    model: str
    task: str
    classes: tuple[str, ...]
    input_size: tuple[int, int]
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    channel_order: str = "RGB"
    input_layout: str = "NHWC uint8"
    recipe_hash: str = ""
    revision: str = ""
    created: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    format_version: int = FORMAT_VERSION

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise ValueError(f"unknown task {self.task!r}; expected one of {', '.join(TASKS)}")
        # Normalise JSON lists back into tuples so equality and hashing are stable.
        object.__setattr__(self, "classes", tuple(self.classes))
        object.__setattr__(self, "input_size", tuple(int(v) for v in self.input_size))
        object.__setattr__(self, "mean", tuple(float(v) for v in self.mean))
        object.__setattr__(self, "std", tuple(float(v) for v in self.std))

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str, source: str | Path = "<metadata>") -> "EngineMeta":
        try:
            raw = json.loads(text)
        except json.JSONDecodeError as exc:
            raise EngineError(f"{source}: engine metadata is not valid JSON ({exc.msg})") from None
        return cls.from_dict(raw, source)

    @classmethod
    def from_dict(cls, raw: dict[str, Any], source: str | Path = "<metadata>") -> "EngineMeta":
        names = {f.name for f in dataclasses.fields(cls)}
        required = {f.name for f in dataclasses.fields(cls)
                    if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING}
        missing = sorted(required - raw.keys())
        if missing:
            raise EngineError(f"{source}: engine metadata lacks {', '.join(missing)}")
        version = raw.get("format_version", FORMAT_VERSION)
        if version > FORMAT_VERSION:
            raise EngineError(f"{source}: engine metadata format {version} is newer than this "
                              f"nerveseg understands ({FORMAT_VERSION}); upgrade nerveseg")
        try:
            return cls(**{k: v for k, v in raw.items() if k in names})
        except (TypeError, ValueError) as exc:
            raise EngineError(f"{source}: bad engine metadata ({exc})") from None

    def expect(self, source: str | Path, task: str | None = None,
               classes: tuple[str, ...] | None = None,
               input_size: tuple[int, int] | None = None) -> None:
        """Raise :class:`EngineError` unless this metadata fits what the caller needs."""
        if task is not None and self.task != task:
            raise EngineError(f"{source}: engine is a {self.task!r} model ({self.model}), "
                              f"expected a {task!r} model")
        if classes is not None and tuple(classes) != self.classes:
            raise EngineError(f"{source}: engine classes {list(self.classes)} do not match the "
                              f"expected {list(classes)}")
        if input_size is not None and tuple(input_size) != self.input_size:
            raise EngineError(f"{source}: engine input size {self.input_size} does not match the "
                              f"expected {tuple(input_size)}")


@dataclass(frozen=True)
class Provenance:
    """Which engine made an output: written into every AVI, CSV, JSON and report."""

    path: str
    sha256: str
    backend: str
    meta: EngineMeta
    device: str = "cpu"
    reason: str = ""

    @property
    def short_hash(self) -> str:
        return self.sha256[:12]

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "sha256": self.sha256, "backend": self.backend,
                "device": self.device, "reason": self.reason, "model": self.meta.model,
                "task": self.meta.task, "classes": list(self.meta.classes),
                "input_size": list(self.meta.input_size), "recipe_hash": self.meta.recipe_hash,
                "revision": self.meta.revision}

    def summary(self) -> str:
        h, w = self.meta.input_size
        return (f"{self.meta.model} [{'/'.join(self.meta.classes)}] {h}x{w} "
                f"{self.backend} sha256:{self.short_hash}")


def region_feed(batch, region=None):
    """The ``region`` input for ``batch`` ``(N, H, W, 3) uint8``: ``region`` (``(N, H, W)`` or
    ``(N, H, W, 1)``, bool or uint8, > 0 inside) as ``(N, H, W, 1) uint8``, or all ones
    (the whole field) when it is ``None``. ValueError if it does not fit the batch."""
    import numpy as np

    shape = (*batch.shape[:3], 1)
    if region is None:
        return np.ones(shape, np.uint8)
    region = np.asarray(region)
    if region.shape not in (shape, shape[:3]):
        raise ValueError(f"region {region.shape} does not fit the batch {batch.shape}: expected {shape}")
    return np.ascontiguousarray(region.reshape(shape), dtype=np.uint8)


def file_sha256(path: str | Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()
