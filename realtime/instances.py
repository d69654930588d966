"""An ``instance`` engine (Mask R-CNN) as the pipeline's segmenter: from its outputs to
:class:`~nerveseg.realtime.frames.Instances` in view pixels. No torch.

The engine answers in its input's pixels with box-relative masks; boxes are scaled to the
view and each mask is pasted straight at view resolution
(:func:`nerveseg.engines.instance_masks.paste_masks`), sharper and cheaper than pasting at
the input size and resizing every full mask.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from nerveseg.engines.base import Engine
from nerveseg.engines.instance_masks import paste_masks, scale_boxes
from nerveseg.engines.metadata import OUTPUT_NAMES, EngineError

from .frames import Instances


def check_instance_engine(engine: Engine) -> None:
    """Refuse, at start-up, an instance engine whose classes or test-run outputs do not fit
    the contract (:mod:`nerveseg.engines.metadata`)."""
    path = engine.provenance.path
    if not engine.classes or engine.classes[0] != "background":
        raise EngineError(f"{path}: instance classes {list(engine.classes)} do not start with 'background'")
    h, w = engine.input_size
    try:
        out = engine.run(np.zeros((1, h, w, 3), np.uint8))
    except Exception as exc:  # any backend's failure here means the file is unusable
        raise EngineError(f"{path}: fails a test run ({' '.join(str(exc).split())[:200]})") from None
    missing = [name for name in OUTPUT_NAMES["instance"] if name not in out]
    if missing:
        raise EngineError(f"{path}: has no output {missing[0]!r} (it has {sorted(out)})")
    shapes = {name: np.shape(out[name]) for name in OUTPUT_NAMES["instance"]}
    k = shapes["scores"][0] if len(shapes["scores"]) == 1 else -1
    if k < 0 or shapes["boxes"] != (k, 4) or shapes["labels"] != (k,) or len(shapes["masks"]) != 4 \
            or shapes["masks"][:2] != (k, 1):
        raise EngineError(f"{path}: instance outputs have shapes {shapes}, expected boxes (K, 4), "
                          f"labels (K,), scores (K,), masks (K, 1, M, M)")


def find_instances(engine: Engine, engine_input: np.ndarray, view_shape: tuple[int, int], min_score: float,
                   restrict: Callable[[np.ndarray], np.ndarray] | None = None) -> Instances:
    """Run ``engine`` on ``engine_input`` ``(1, H, W, 3) uint8`` and keep the instances
    scoring at least ``min_score``, in the pixels of a view of ``view_shape = (h, w)``.
    ``restrict(mask) -> mask`` (a region of interest) clips each mask; an instance left
    empty is dropped and the others' boxes shrink to what is left."""
    out = engine.run(engine_input)
    keep = np.flatnonzero(np.asarray(out["scores"]) >= min_score)  # indexing copies: buffers may be reused
    boxes = scale_boxes(np.asarray(out["boxes"])[keep], engine.input_size, view_shape)
    masks = paste_masks(np.asarray(out["masks"])[keep], boxes, view_shape)
    labels = np.asarray(out["labels"], np.int64)[keep]
    scores = np.asarray(out["scores"], np.float32)[keep]
    if restrict is not None and len(keep):
        masks = np.stack([restrict(mask) for mask in masks])
        alive = masks.reshape(len(masks), -1).any(1)
        masks, labels, scores = masks[alive], labels[alive], scores[alive]
        boxes = np.array([_tight(mask) for mask in masks], np.float32).reshape(-1, 4)
    return Instances(boxes, labels, scores, masks, tuple(engine.classes))


def _tight(mask: np.ndarray) -> tuple[int, int, int, int]:
    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1
