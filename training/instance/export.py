"""The export chain for an instance (Mask R-CNN) checkpoint: :func:`nerveseg.training.export.export`
hands instance checkpoints here; the steps and their names are the same.

1. ``load``: rebuild the :class:`~nerveseg.training.models.maskrcnn.InstanceModel`;
2. ``torch→onnx``: the legacy (TorchScript) exporter traces the wrapper on a real frame
   (so the traced graph has seen detections); input ``image`` ``(1, H, W, 3) uint8`` (one
   frame per call: Mask R-CNN's per-image outputs have no common batch shape), outputs
   ``boxes``, ``labels``, ``scores``, ``masks`` with a dynamic instance count ``K``;
3. ``onnx.checker``;
4. ``parity``: per real (test-split) frame, ONNX Runtime vs torch, detections paired by
   label, box and score (ties may swap order); every detection scoring ≥ ``PAIR_SCORE``
   must pair (see :func:`compare`), each pair's boxes within ``BOX_ATOL`` px, scores within
   ``SCORE_ATOL``, mask probabilities within ``MASK_ATOL``, pasted masks with IoU ≥
   ``MIN_IOU`` (noise frames: see :func:`check_parity`);
5. ``metadata`` and 6. ``reload``, as for every engine.
"""

from __future__ import annotations

import dataclasses
import io
import logging
import warnings
from pathlib import Path

import numpy as np

from nerveseg.engines.instance_masks import paste_masks
from nerveseg.engines.metadata import INPUT_NAME, OUTPUT_NAMES

from ..export import ExportError, check_onnx, embed_and_save, engine_extra, export_time, step, parity_frames

log = logging.getLogger(__name__)
BOX_ATOL, SCORE_ATOL, MASK_ATOL, MIN_IOU = 0.05, 1e-3, 1e-2, 0.99
PAIR_SCORE = 0.5  # detections from here up must pair between ONNX Runtime and torch
OUTPUTS = OUTPUT_NAMES["instance"]


def export_instance(checkpoint, out, opset: int | None = None, data=None, splits=None, metrics=None,
                    input_size=None, reference_pt=None, exporter: str = "legacy", min_score: float | None = None):
    """Run the chain (module docstring); returns the embedded :class:`EngineMeta`.
    ``min_score`` replaces the detector's score cut (0.05, for mAP) inside the graph: a
    realtime engine that shows only confident instances skips the others' mask heads."""
    from ..checkpoint import save_checkpoint
    from .model import instance_from_checkpoint

    checkpoint, out = Path(checkpoint), Path(out)
    if exporter != "legacy":
        raise ExportError(f"{checkpoint}: instance models export with the legacy exporter only")
    model, meta, ckpt = step("load", checkpoint, instance_from_checkpoint, checkpoint)
    if input_size is not None and tuple(input_size) != meta.input_size:
        raise ExportError(f"{checkpoint}: an instance model exports at its trained size {meta.input_size} "
                          f"(its anchors are scaled to it)")
    opset = opset or 17
    if min_score is not None:
        if not 0.0 <= min_score < 1.0:
            raise ExportError(f"{checkpoint}: --min-score {min_score} is not within [0, 1)")
        model.model.roi_heads.score_thresh = float(min_score)
    frames = parity_frames(meta, ckpt, checkpoint, data, splits)
    proto = step("torch→onnx", checkpoint, to_onnx, model, frames[-1:], opset)
    step("onnx.checker", checkpoint, check_onnx, proto)
    parity, reference = step("parity", checkpoint, check_parity, model, proto, frames)
    extra = {**engine_extra(meta, ckpt, checkpoint, "legacy", opset, parity, metrics),
             "min_score": model.model.roi_heads.score_thresh}
    final = dataclasses.replace(meta, created=export_time(), extra=extra)
    step("metadata", out, embed_and_save, proto, final, out)
    step("reload", out, _reload, out, final, frames[-1:], reference)
    if reference_pt is not None:
        step("reference checkpoint", reference_pt, save_checkpoint, Path(reference_pt), model, final,
              arch=ckpt["arch"], arch_kwargs=ckpt["arch_kwargs"], args=ckpt.get("args", {}))
    log.info("exported %s → %s (legacy exporter, opset %d)", checkpoint, out, opset)
    return final


def to_onnx(model, example: np.ndarray, opset: int):
    """The traced ``onnx.ModelProto`` of ``model`` for ``example`` ``(1, H, W, 3) uint8``."""
    import onnx
    import torch

    buffer = io.BytesIO()
    dynamic = {name: {0: "K"} for name in OUTPUTS}
    with warnings.catch_warnings():
        # Tracer warnings about Python-side shape arithmetic in torchvision's detection code
        # are expected: torchvision writes those paths to trace correctly (its ONNX tests).
        warnings.simplefilter("ignore")
        torch.onnx.export(model.eval(), (torch.from_numpy(example),), buffer, input_names=[INPUT_NAME],
                          output_names=list(OUTPUTS), dynamic_axes=dynamic, opset_version=opset,
                          dynamo=False, do_constant_folding=True)
    return onnx.load_from_string(buffer.getvalue())


def _torch_outputs(model, frame: np.ndarray) -> dict[str, np.ndarray]:
    import torch

    with torch.inference_mode():
        return {name: v.numpy() for name, v in zip(OUTPUTS, model(torch.from_numpy(frame[None])))}


def _pairs(got: dict, expected: dict) -> tuple[list[tuple[int, int]], list[float]]:
    """Pair each torch detection with the ONNX one of its label nearest in box and score
    (detections of equal score may come out in either order). Returns the pairs and the
    scores of what stayed unpaired."""
    free, pairs = set(range(len(got["scores"]))), []
    for i in range(len(expected["scores"])):
        same = [j for j in free if got["labels"][j] == expected["labels"][i]]
        cost = [float(np.abs(got["boxes"][j] - expected["boxes"][i]).max()
                      + abs(got["scores"][j] - expected["scores"][i])) for j in same]
        if same and min(cost) <= BOX_ATOL + SCORE_ATOL:
            j = same[int(np.argmin(cost))]
            free.discard(j)
            pairs.append((j, i))
    paired = {i for _, i in pairs}
    rest = [float(got["scores"][j]) for j in free]
    return pairs, rest + [float(v) for i, v in enumerate(expected["scores"]) if i not in paired]


def compare(got: dict, expected: dict, size: tuple[int, int]) -> dict:
    """Differences of one frame's outputs, detections paired by :func:`_pairs`; raises
    :class:`ExportError` past the tolerances. Only a detection scoring under ``PAIR_SCORE``
    may stay unpaired: the RPN keeps its 100 best proposals, and where two straddling that
    cut differ in objectness by less than the runtimes' float error (~3e-5), each runtime
    keeps another, whose weak detections then differ too. What is shown (score ≥ 0.5 by
    default) must match."""
    pairs, unpaired = _pairs(got, expected)
    if any(score >= PAIR_SCORE for score in unpaired):
        raise ExportError(f"parity: ONNX found {len(got['scores'])} instances {got['labels'].tolist()}, "
                          f"torch {len(expected['scores'])} {expected['labels'].tolist()}; "
                          f"{len(unpaired)} do not pair up, scoring up to {max(unpaired):.3f}")
    g, e = ([j for j, _ in pairs], [i for _, i in pairs])
    diff = {name: float(np.abs(got[name][g] - expected[name][e]).max(initial=0.0)) for name in ("boxes", "scores", "masks")}
    for name, limit in (("boxes", BOX_ATOL), ("scores", SCORE_ATOL), ("masks", MASK_ATOL)):
        if diff[name] > limit:
            raise ExportError(f"parity: max |onnx - torch| of {name} = {diff[name]:.3g} > {limit}")
    a = paste_masks(got["masks"][g], got["boxes"][g], size)
    b = paste_masks(expected["masks"][e], expected["boxes"][e], size)
    inter, union = (a & b).sum((1, 2)), (a | b).sum((1, 2))
    iou = np.where(union > 0, inter / np.maximum(union, 1), 1.0)
    if iou.size and iou.min() < MIN_IOU:
        raise ExportError(f"parity: a pasted mask has IoU {iou.min():.4f} < {MIN_IOU} between ONNX and torch")
    return {**diff, "min_mask_iou": float(iou.min(initial=1.0)), "instances": int(len(iou)),
            "unpaired": len(unpaired)}


def check_parity(model, proto, frames: np.ndarray, random: int = 4) -> tuple[dict, dict]:
    """ONNX Runtime (in memory) vs torch per frame; the worst differences, and the last
    frame's ONNX outputs (the reload step compares the saved file with them).

    The first ``random`` frames are noise (see :func:`..export.parity_frames`). On noise
    a trained detector's proposals all have objectness near 0 (1e-29 and below), where the
    two runtimes' last bits decide which junk proposals survive NMS, so their detections
    may differ: noise frames are compared and their agreement reported, but only real
    frames must match. Without real frames the check is informative only (warned)."""
    import onnxruntime as ort

    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    worst = {"boxes": 0.0, "scores": 0.0, "masks": 0.0, "min_mask_iou": 1.0, "instances": 0, "unpaired": 0}
    size, agree = frames.shape[1:3], 0
    for index, frame in enumerate(frames):
        got = dict(zip(OUTPUTS, session.run(list(OUTPUTS), {INPUT_NAME: frame[None]})))
        try:
            found = compare(got, _torch_outputs(model, frame), size)
        except ExportError:
            if index >= random:
                raise
            continue
        agree += index < random
        worst = {k: (min if k == "min_mask_iou" else max)(worst[k], found[k]) for k in worst} \
            | {k: worst[k] + found[k] for k in ("instances", "unpaired")}
    real = len(frames) - random
    if real <= 0:
        log.warning("instance parity checked on noise frames only (%d of %d agree): give --data", agree, random)
    result = {"frames": int(real), "random_frames_agreeing": f"{agree}/{random}",
              "max_abs_diff": max(worst["boxes"], worst["scores"], worst["masks"]),
              "tolerance": {"boxes": BOX_ATOL, "scores": SCORE_ATOL, "masks": MASK_ATOL, "min_mask_iou": MIN_IOU},
              **{f"max_abs_diff_{k}": worst[k] for k in ("boxes", "scores", "masks")},
              "min_mask_iou": worst["min_mask_iou"], "instances": worst["instances"],
              "unpaired_below_0.5": worst["unpaired"]}
    log.info("parity on %d real frames (%d instances; %d/%d noise frames agree): max |Δ| boxes %.2e px, "
             "scores %.2e, masks %.2e", real, worst["instances"], agree, random, worst["boxes"], worst["scores"],
             worst["masks"])
    return result, got


def _reload(out: Path, meta, frame: np.ndarray, reference: dict) -> None:
    import json

    from nerveseg.engines.loader import load_engine

    with load_engine(out, backend="onnxruntime", task="instance") as engine:
        if json.loads(engine.meta.to_json()) != json.loads(meta.to_json()):
            raise ExportError(f"{out}: metadata read back differs from what was written")
        got = engine.run(frame)
    same = all(got[n].shape == reference[n].shape and np.allclose(got[n], reference[n], atol=1e-5)
               for n in OUTPUTS)
    if not same:
        raise ExportError(f"{out}: the saved engine's outputs differ from the checked graph")


def export_instance_checkpoint(checkpoint: Path, out: Path, o):
    """The registry entry (:mod:`nerveseg.training.exporters`): ``o`` is an ``ExportOptions``."""
    return export_instance(checkpoint, out, o.opset, o.data, o.splits, o.metrics, o.input_size, o.reference_pt,
                           o.exporter, o.min_score)
