"""The checked chain from torch to ONNX, its shared steps, and the exporter for dense
models (classifier, segmenter, gate + mask). ``nerveseg export`` and the exporter
registry live in :mod:`.exporters`.

Steps, each raising :class:`ExportError` with its name if it fails:

1. ``load``: rebuild the checkpoint's model from the registry inside ``NormalizedModel``;
2. ``torch→onnx``: input ``image`` ``(N, H, W, 3) uint8`` with dynamic ``N``, outputs
   ``logits`` and/or ``mask_logits`` (the contract of :mod:`nerveseg.engines.metadata`);
   the legacy TorchScript exporter by default (see docs/TRAINING.md for why);
3. ``onnx.checker``: full check with shape inference;
4. ``parity``: ONNX Runtime against torch on random and real frames: max abs logit
   difference ≤ ``1e-3 + 1e-3·max|torch|``, and for masks also IoU ≥ 0.99 per frame;
5. ``metadata``: ``EngineMeta`` (with parity and test metrics in ``extra``) under the
   ONNX metadata key ``nerveseg``, then save;
6. ``reload``: open the file with ``load_engine`` as the runtime will, check the metadata
   reads back and the outputs match the in-memory session.
"""

from __future__ import annotations

import contextvars
import dataclasses
import json
import logging
import warnings
from pathlib import Path

import numpy as np

from nerveseg.engines.errors import UserError

log = logging.getLogger(__name__)
ATOL, RTOL, MIN_IOU = 1e-3, 1e-3, 0.99


class ExportError(UserError):
    """A failed export step; the message names the step and the file."""


# What rebuildable.check said of this export (the export revision, and ``dirty`` reasons),
# added to every exporter's ``extra`` by engine_extra: set by exporters.export around the chain.
PROVENANCE: contextvars.ContextVar[dict] = contextvars.ContextVar("export_provenance", default={})


def step(name: str, source, func, *args, **kwargs):
    try:
        return func(*args, **kwargs)
    except ExportError:
        raise
    except Exception as exc:  # any failure inside a step is reported as that step's failure
        log.debug("export step %s failed", name, exc_info=True)
        text = " ".join(str(exc).split())[:300] or type(exc).__name__
        raise ExportError(f"{source}: export step {name!r} failed: {text}") from exc


def export_dense(checkpoint: Path, out: Path, o):
    """The chain for a classifier, segmenter or gate + mask checkpoint; returns the
    embedded :class:`EngineMeta` (a registry entry of :mod:`.exporters`; ``o`` is its
    ``ExportOptions``)."""
    from nerveseg.training.checkpoint import model_from_checkpoint, save_checkpoint

    if o.min_score is not None:
        raise ExportError(f"{checkpoint}: --min-score applies to instance (Mask R-CNN) checkpoints only")
    model, meta, ckpt = step("load", checkpoint, model_from_checkpoint, checkpoint)
    if o.input_size is not None:
        meta = dataclasses.replace(meta, input_size=tuple(o.input_size))
    opset = o.opset or (17 if o.exporter == "legacy" else 18)
    proto = step("torch→onnx", checkpoint, to_onnx, model, meta, o.exporter, opset)
    step("onnx.checker", checkpoint, check_onnx, proto)
    frames = parity_frames(meta, ckpt, checkpoint, o.data, o.splits)
    parity, reference = step("parity", checkpoint, check_parity, model, proto, meta, frames)
    extra = engine_extra(meta, ckpt, checkpoint, o.exporter, opset, parity, o.metrics)
    if o.calibrate:  # the engine's backends then divide its logits by T: so must the reference
        extra["calibration"] = step("calibration", checkpoint, calibrate_model, model, meta, ckpt, checkpoint, o)
        t = extra["calibration"]["temperature"]
        reference = [r / t if name == "logits" else r for name, r in zip(OUTPUT_ORDER(meta), reference)]
    final = dataclasses.replace(meta, created=export_time(), extra=extra)
    step("metadata", out, embed_and_save, proto, final, out)
    step("reload", out, reload_check, out, final, frames, reference)
    if o.reference_pt is not None:
        step("reference checkpoint", o.reference_pt, save_checkpoint, Path(o.reference_pt), model, final,
             arch=ckpt["arch"], arch_kwargs=ckpt["arch_kwargs"], args=ckpt.get("args", {}))
    log.info("exported %s → %s (%s exporter, opset %d)", checkpoint, out, o.exporter, opset)
    return final


def OUTPUT_ORDER(meta) -> tuple[str, ...]:  # noqa: N802 (reads as the constant it looks up)
    from nerveseg.engines.metadata import OUTPUT_NAMES

    return OUTPUT_NAMES[meta.task]


def calibrate_model(model, meta, ckpt: dict, checkpoint: Path, o) -> dict:
    """A gate's ``extra.calibration`` (:mod:`nerveseg.engines.calibration`): the temperature
    and thresholds fitted on the validation split of the checkpoint's data, the network's
    logits computed by ``model`` itself."""
    import torch

    from .calibrate_cli import calibration_values
    from .data import label_of, read_rgb
    from .splits import read_scored

    if meta.task not in ("classify", "gate_segment"):
        raise ExportError(f"{checkpoint}: --calibrate applies to gates, this is a {meta.task!r} checkpoint")
    args = ckpt.get("args", {})
    # A single engine's run keeps the U-Net's split lists beside it (for export's parity frames):
    # its gate is calibrated on the gate's own data and validation split.
    data = Path(o.data or args.get("gate_data") or args.get("data", ""))
    folder = Path(o.splits or args.get("gate_splits") or checkpoint.parent / "splits")
    held, train = read_scored(folder, "val", data), read_scored(folder, "train", data)
    if len(held) < 10:
        raise ExportError(f"{folder}/val.txt: {len(held)} images; --calibrate needs at least 10")
    logits = []
    with torch.inference_mode():
        for start in range(0, len(held), 16):
            batch = np.stack([read_rgb(data / item, meta.input_size) for item in held[start:start + 16]])
            out = model(torch.from_numpy(batch))
            logits.append((out[0] if isinstance(out, tuple) else out).numpy().astype(np.float64))
    truth = np.array([label_of(item, meta.classes) for item in held])
    values, _ = calibration_values(np.concatenate(logits), truth, data, train, held, meta.input_size, 0.99,
                                   f"val split of {data} ({len(held)} images), at export")
    return values


def to_onnx(model, meta, exporter: str, opset: int):
    """The traced ``onnx.ModelProto`` of ``model`` (a ``NormalizedModel``) per the contract."""
    import io

    import onnx
    import torch

    from nerveseg.engines.metadata import INPUT_NAME, OUTPUT_NAMES

    outputs = list(OUTPUT_NAMES[meta.task])  # gate_segment: logits and mask_logits from one forward
    h, w = meta.input_size
    # Batch 2, not 1: torch.export specialises size-1 dimensions.
    example = torch.zeros((2, h, w, 3), dtype=torch.uint8)
    model = model.eval()
    if exporter == "dynamo":
        batch = torch.export.Dim("N", min=1, max=4096)
        program = torch.onnx.export(model, (example,), input_names=[INPUT_NAME], output_names=outputs,
                                    dynamic_shapes={"image": {0: batch}}, opset_version=opset,
                                    dynamo=True, verbose=False)
        return program.model_proto
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        # Chosen knowingly (docs/TRAINING.md): the deprecation notice is not news to the user.
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(model, (example,), buffer, input_names=[INPUT_NAME], output_names=outputs,
                          dynamic_axes={name: {0: "N"} for name in [INPUT_NAME, *outputs]}, opset_version=opset,
                          dynamo=False, do_constant_folding=True)
    return onnx.load_from_string(buffer.getvalue())


def check_onnx(proto) -> None:
    import onnx

    onnx.checker.check_model(proto, full_check=True)


def parity_frames(meta, ckpt: dict, checkpoint: Path, data=None, splits=None, real: int = 8,
                  random: int = 4) -> np.ndarray:
    """``(N, H, W, 3) uint8``: ``random`` noise frames plus up to ``real`` test-split frames."""
    from .data import read_rgb
    from .splits import read_split

    h, w = meta.input_size
    frames = [np.random.default_rng(0).integers(0, 256, (random, h, w, 3), dtype=np.uint8)]
    data = Path(data or ckpt.get("args", {}).get("data", ""))
    folder = Path(splits) if splits else checkpoint.parent / "splits"
    try:
        items = read_split(folder, "test", data)[:real]
    except UserError as exc:
        log.warning("parity on random frames only: %s", exc)
        items = []
    if items:
        frames.append(np.stack([read_rgb(data / item, (h, w)) for item in items]))
    return np.concatenate(frames)


def check_parity(model, proto, meta, frames: np.ndarray) -> tuple[dict, list[np.ndarray]]:
    """Compare ONNX Runtime (in memory) with torch on ``frames``, output by output; raise
    if out of tolerance. Returns the figures and ONNX Runtime's outputs."""
    import onnxruntime as ort
    import torch

    from .metrics import iou_dice

    with torch.inference_mode():
        expected = model(torch.from_numpy(frames))
    expected = [t.numpy() for t in (expected if isinstance(expected, (tuple, list)) else (expected,))]
    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    got = session.run(None, {session.get_inputs()[0].name: frames})
    names = [o.name for o in session.get_outputs()]
    result = {"frames": int(len(frames)), "max_abs_diff": 0.0, "tolerance": 0.0}
    for name, g, e in zip(names, got, expected):
        if g.shape != e.shape:
            raise ExportError(f"parity: ONNX output {name} {g.shape} but torch {e.shape}")
        diff, tolerance = float(np.abs(g - e).max()), ATOL + RTOL * float(np.abs(e).max())
        if diff > tolerance:
            raise ExportError(f"parity: max |onnx - torch| of {name} = {diff:.3g} > {tolerance:.3g}")
        if diff / tolerance >= result["max_abs_diff"] / max(result["tolerance"], 1e-12):
            result.update(max_abs_diff=diff, tolerance=tolerance)
        if name == "mask_logits":
            iou = iou_dice(g[:, 0] > 0, e[:, 0] > 0)[0]
            result["min_mask_iou"] = float(iou.min())
            if iou.min() < MIN_IOU:
                raise ExportError(f"parity: mask IoU {iou.min():.4f} < {MIN_IOU} on a frame")
    log.info("parity on %d frames: max |Δ| %.2e (tolerance %.2e)", len(frames), result["max_abs_diff"],
             result["tolerance"])
    return result, got


def engine_extra(meta, ckpt: dict, checkpoint: Path, exporter: str, opset: int, parity: dict,
           metrics) -> dict:
    from nerveseg.engines.metadata import file_sha256

    extra = {**meta.extra, **PROVENANCE.get()}
    extra.update(exporter=f"torch.onnx {exporter}", opset=opset, checkpoint=checkpoint.name,
                 checkpoint_sha256=file_sha256(checkpoint), epoch=ckpt.get("epoch"),
                 val_metrics=ckpt.get("metrics"), parity=parity)
    if meta.task in ("segment", "gate_segment"):
        extra.setdefault("threshold", 0.5)
    if metrics:
        report = json.loads(Path(metrics).read_text())
        if report.get("task") != meta.task:
            raise ExportError(f"{metrics}: metrics are for a {report.get('task')!r} model, "
                              f"this is a {meta.task!r} model")
        extra["test_metrics"] = {"split": report.get("split"), **report["summary"]}
    return extra


def embed_and_save(proto, meta, out: Path) -> None:
    import onnx

    from nerveseg.engines.metadata import META_KEY

    onnx.helper.set_model_props(proto, {META_KEY: meta.to_json()})
    out.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(proto, str(out))


def reload_check(out: Path, meta, frames: np.ndarray, reference: np.ndarray) -> None:
    from nerveseg.engines.loader import load_engine

    with load_engine(out, backend="onnxruntime", task=meta.task) as engine:
        if json.loads(engine.meta.to_json()) != json.loads(meta.to_json()):
            raise ExportError(f"{out}: metadata read back differs from what was written")
        got = list(engine.run(frames).values())
    if any(float(np.abs(g - r).max()) > 1e-5 for g, r in zip(got, reference)):
        raise ExportError(f"{out}: the saved engine's outputs differ from the checked graph")


def export_time() -> str:
    from .runlog import utc_now

    return utc_now()
