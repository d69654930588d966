"""The export chain for an instance (Mask R-CNN) checkpoint: :func:`nerveseg.training.export.export`
hands instance checkpoints here; the steps and their names are the same.

1. ``load``: rebuild the :class:`~nerveseg.training.models.maskrcnn.InstanceModel`;
2. ``torch→onnx``: the legacy (TorchScript) exporter traces the wrapper on a real frame
   (so the traced graph has seen detections); input ``image`` ``(1, H, W, 3) uint8`` (one
   frame per call: Mask R-CNN's per-image outputs have no common batch shape), outputs
   ``boxes``, ``labels``, ``scores``, ``masks`` with a dynamic instance count ``K``;
3. ``onnx.checker``;
4. ``parity``: per frame, ONNX Runtime vs torch: same ``K`` and labels, boxes within
   ``BOX_ATOL`` px, scores within ``SCORE_ATOL``, mask probabilities within ``MASK_ATOL``,
   and every pasted mask with IoU ≥ ``MIN_IOU``;
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

from ..export import ExportError, _check, _embed_and_save, _extra, _now, _step, parity_frames

log = logging.getLogger(__name__)
BOX_ATOL, SCORE_ATOL, MASK_ATOL, MIN_IOU = 0.05, 1e-3, 1e-2, 0.99
OUTPUTS = OUTPUT_NAMES["instance"]


def export_instance(checkpoint, out, opset: int | None = None, data=None, splits=None, metrics=None,
                    input_size=None, reference_pt=None, exporter: str = "legacy"):
    """Run the chain (module docstring); returns the embedded :class:`EngineMeta`."""
    from ..checkpoint import save_checkpoint
    from .model import instance_from_checkpoint

    checkpoint, out = Path(checkpoint), Path(out)
    if exporter != "legacy":
        raise ExportError(f"{checkpoint}: instance models export with the legacy exporter only")
    model, meta, ckpt = _step("load", checkpoint, instance_from_checkpoint, checkpoint)
    if input_size is not None and tuple(input_size) != meta.input_size:
        raise ExportError(f"{checkpoint}: an instance model exports at its trained size {meta.input_size} "
                          f"(its anchors are scaled to it)")
    opset = opset or 17
    frames = parity_frames(meta, ckpt, checkpoint, data, splits)
    proto = _step("torch→onnx", checkpoint, to_onnx, model, frames[-1:], opset)
    _step("onnx.checker", checkpoint, _check, proto)
    parity, reference = _step("parity", checkpoint, check_parity, model, proto, frames)
    extra = _extra(meta, ckpt, checkpoint, "legacy", opset, parity, metrics)
    final = dataclasses.replace(meta, created=_now(), extra=extra)
    _step("metadata", out, _embed_and_save, proto, final, out)
    _step("reload", out, _reload, out, final, frames[-1:], reference)
    if reference_pt is not None:
        _step("reference checkpoint", reference_pt, save_checkpoint, Path(reference_pt), model, final,
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


def compare(got: dict, expected: dict, size: tuple[int, int]) -> dict:
    """Differences of one frame's outputs; raises :class:`ExportError` past the tolerances."""
    if len(got["scores"]) != len(expected["scores"]) or not np.array_equal(got["labels"], expected["labels"]):
        raise ExportError(f"parity: ONNX found {len(got['scores'])} instances {got['labels'].tolist()}, "
                          f"torch {len(expected['scores'])} {expected['labels'].tolist()}")
    diff = {name: float(np.abs(got[name] - expected[name]).max(initial=0.0)) for name in ("boxes", "scores", "masks")}
    for name, limit in (("boxes", BOX_ATOL), ("scores", SCORE_ATOL), ("masks", MASK_ATOL)):
        if diff[name] > limit:
            raise ExportError(f"parity: max |onnx - torch| of {name} = {diff[name]:.3g} > {limit}")
    a, b = (paste_masks(o["masks"], o["boxes"], size) for o in (got, expected))
    inter, union = (a & b).sum((1, 2)), (a | b).sum((1, 2))
    iou = np.where(union > 0, inter / np.maximum(union, 1), 1.0)
    if iou.size and iou.min() < MIN_IOU:
        raise ExportError(f"parity: a pasted mask has IoU {iou.min():.4f} < {MIN_IOU} between ONNX and torch")
    return {**diff, "min_mask_iou": float(iou.min(initial=1.0)), "instances": int(len(iou))}


def check_parity(model, proto, frames: np.ndarray) -> tuple[dict, dict]:
    """ONNX Runtime (in memory) vs torch on every frame; the worst differences, and the
    last frame's ONNX outputs (the reload step compares the saved file with them)."""
    import onnxruntime as ort

    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    worst = {"boxes": 0.0, "scores": 0.0, "masks": 0.0, "min_mask_iou": 1.0, "instances": 0}
    size = frames.shape[1:3]
    for frame in frames:
        got = dict(zip(OUTPUTS, session.run(list(OUTPUTS), {INPUT_NAME: frame[None]})))
        found = compare(got, _torch_outputs(model, frame), size)
        worst = {k: (min if k == "min_mask_iou" else max)(worst[k], found[k]) for k in worst} \
            | {"instances": worst["instances"] + found["instances"]}
    result = {"frames": int(len(frames)), "max_abs_diff": max(worst["boxes"], worst["scores"], worst["masks"]),
              "tolerance": {"boxes": BOX_ATOL, "scores": SCORE_ATOL, "masks": MASK_ATOL, "min_mask_iou": MIN_IOU},
              **{f"max_abs_diff_{k}": worst[k] for k in ("boxes", "scores", "masks")},
              "min_mask_iou": worst["min_mask_iou"], "instances": worst["instances"]}
    log.info("parity on %d frames (%d instances): max |Δ| boxes %.2e px, scores %.2e, masks %.2e",
             len(frames), worst["instances"], worst["boxes"], worst["scores"], worst["masks"])
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
