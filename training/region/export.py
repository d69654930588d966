"""The export chain for ``region_segment`` checkpoints: two inputs, ``image`` and ``region``.

:func:`nerveseg.training.export.export` hands region checkpoints here after its ``load``
step; the steps and their checks are the same (torch→onnx, ``onnx.checker``, parity,
metadata, reload), each failure named by :func:`nerveseg.training.export.step`. Parity
frames come with regions: the whole field, none at all, random boxes, and test samples.
"""

from __future__ import annotations

import dataclasses
import io
import logging
import warnings
from pathlib import Path

import numpy as np

from nerveseg.engines.errors import UserError
from nerveseg.training import export as chain

log = logging.getLogger(__name__)


def to_onnx(model, meta, exporter: str = "legacy", opset: int = 17):
    """The ``onnx.ModelProto`` of ``model`` (a ``NormalizedModel`` over a region model):
    inputs ``image`` ``(N, H, W, 3) uint8`` and ``region`` ``(N, H, W, 1) uint8``, output
    ``mask_logits`` ``(N, 1, H, W) float32``, ``N`` dynamic."""
    import onnx
    import torch

    from nerveseg.engines.metadata import INPUT_NAME, OUTPUT_NAMES, REGION_INPUT

    output = OUTPUT_NAMES[meta.task][0]
    h, w = meta.input_size
    # Batch 2, not 1: torch.export specialises size-1 dimensions.
    example = (torch.zeros((2, h, w, 3), dtype=torch.uint8), torch.ones((2, h, w, 1), dtype=torch.uint8))
    model = model.eval()
    if exporter == "dynamo":
        batch = torch.export.Dim("N", min=1, max=4096)
        program = torch.onnx.export(model, example, input_names=[INPUT_NAME, REGION_INPUT],
                                    output_names=[output], dynamic_shapes=({0: batch}, ({0: batch},)),
                                    opset_version=opset, dynamo=True, verbose=False)
        return program.model_proto
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # the legacy exporter, chosen knowingly
        torch.onnx.export(model, example, buffer, input_names=[INPUT_NAME, REGION_INPUT], output_names=[output],
                          dynamic_axes={INPUT_NAME: {0: "N"}, REGION_INPUT: {0: "N"}, output: {0: "N"}},
                          opset_version=opset, dynamo=False, do_constant_folding=True)
    return onnx.load_from_string(buffer.getvalue())


def random_regions(count: int, size: tuple[int, int], seed: int = 0) -> np.ndarray:
    """``(count, H, W, 1) uint8``: the whole field, nothing, then random boxes."""
    rng = np.random.default_rng(seed)
    h, w = size
    regions = np.zeros((count, h, w, 1), np.uint8)
    regions[0] = 1
    for k in range(2, count):
        y0, x0 = rng.integers(0, h // 2), rng.integers(0, w // 2)
        regions[k, y0:y0 + rng.integers(2, h - y0 + 1), x0:x0 + rng.integers(2, w - x0 + 1)] = 1
    return regions[:count]


def parity_inputs(meta, ckpt: dict, checkpoint: Path, data=None, splits=None, real: int = 8,
                  random: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """``(images (N, H, W, 3) uint8, regions (N, H, W, 1) uint8)``: noise frames with
    :func:`random_regions`, plus up to ``real`` test samples with their own regions."""
    from nerveseg.training.splits import read_split

    from .data import load_sample, read_index, samples_of

    images = np.random.default_rng(0).integers(0, 256, (random, *meta.input_size, 3), dtype=np.uint8)
    regions = random_regions(random, meta.input_size)
    data = Path(data or ckpt.get("args", {}).get("data", ""))
    try:
        samples = samples_of(read_index(data), read_split(Path(splits or checkpoint.parent / "splits"), "test"))
    except UserError as exc:
        log.warning("parity on random frames only: %s", exc)
        samples = []
    loaded = [load_sample(data, sample, meta.input_size) for sample in samples[:real]]
    if loaded:
        images = np.concatenate([images, np.stack([item[0] for item in loaded])])
        regions = np.concatenate([regions, np.stack([item[1] for item in loaded])[..., None]])
    return images, regions


def check_parity(model, proto, meta, images: np.ndarray, regions: np.ndarray) -> tuple[dict, np.ndarray]:
    """ONNX Runtime (in memory) against torch on ``(images, regions)``; the tolerances of
    :mod:`nerveseg.training.export` (max |Δ logit| and mask IoU per frame)."""
    import onnxruntime as ort
    import torch

    from nerveseg.training.metrics import iou_dice

    with torch.inference_mode():
        expected = model(torch.from_numpy(images), torch.from_numpy(regions)).numpy()
    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    got = session.run(None, {"image": images, "region": regions})[0]
    if got.shape != expected.shape:
        raise chain.ExportError(f"parity: ONNX output {got.shape} but torch {expected.shape}")
    diff = float(np.abs(got - expected).max())
    tolerance = chain.ATOL + chain.RTOL * float(np.abs(expected).max())
    iou = iou_dice(got[:, 0] > 0, expected[:, 0] > 0)[0]
    result = {"frames": int(len(images)), "max_abs_diff": diff, "tolerance": tolerance,
              "min_mask_iou": float(iou.min())}
    if diff > tolerance:
        raise chain.ExportError(f"parity: max |onnx - torch| = {diff:.3g} > {tolerance:.3g}")
    if iou.min() < chain.MIN_IOU:
        raise chain.ExportError(f"parity: mask IoU {iou.min():.4f} < {chain.MIN_IOU} on a frame")
    return result, got


def _reload(out: Path, meta, images, regions, reference) -> None:
    import json

    from nerveseg.engines.loader import load_engine

    with load_engine(out, backend="onnxruntime", task=meta.task) as engine:
        if json.loads(engine.meta.to_json()) != json.loads(meta.to_json()):
            raise chain.ExportError(f"{out}: metadata read back differs from what was written")
        got = engine.run(images, region=regions)["mask_logits"]
    if float(np.abs(got - reference).max()) > 1e-5:
        raise chain.ExportError(f"{out}: the saved engine's outputs differ from the checked graph")


def export_region(model, meta, ckpt: dict, checkpoint: Path, out: Path, exporter: str, opset: int,
                  data=None, splits=None, metrics=None, reference_pt=None):
    """The chain after ``load`` (see :mod:`nerveseg.training.exporters`); returns the
    embedded :class:`EngineMeta`."""
    from nerveseg.training.checkpoint import save_checkpoint

    step = chain.step
    proto = step("torch→onnx", checkpoint, to_onnx, model, meta, exporter, opset)
    step("onnx.checker", checkpoint, chain.check_onnx, proto)
    images, regions = parity_inputs(meta, ckpt, checkpoint, data, splits)
    parity, reference = step("parity", checkpoint, check_parity, model, proto, meta, images, regions)
    extra = chain.engine_extra(meta, ckpt, checkpoint, exporter, opset, parity, metrics)
    final = dataclasses.replace(meta, created=chain.export_time(), extra=extra)
    step("metadata", out, chain.embed_and_save, proto, final, out)
    step("reload", out, _reload, out, final, images, regions, reference)
    if reference_pt is not None:
        step("reference checkpoint", reference_pt, save_checkpoint, Path(reference_pt), model, final,
             arch=ckpt["arch"], arch_kwargs=ckpt["arch_kwargs"], args=ckpt.get("args", {}))
    log.info("exported %s → %s (%s exporter, opset %d, inputs image + region)", checkpoint, out, exporter, opset)
    return final


def export_region_checkpoint(checkpoint: Path, out: Path, o):
    """The registry entry (:mod:`nerveseg.training.exporters`): ``o`` is an ``ExportOptions``."""
    from nerveseg.training.checkpoint import model_from_checkpoint

    if o.min_score is not None:
        raise chain.ExportError(f"{checkpoint}: --min-score applies to instance (Mask R-CNN) checkpoints only")
    model, meta, ckpt = chain.step("load", checkpoint, model_from_checkpoint, checkpoint)
    if o.input_size is not None:
        meta = dataclasses.replace(meta, input_size=tuple(o.input_size))
    opset = o.opset or (17 if o.exporter == "legacy" else 18)
    return export_region(model, meta, ckpt, checkpoint, out, o.exporter, opset, o.data, o.splits, o.metrics,
                         o.reference_pt)
