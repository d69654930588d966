"""INT8 engines for the CPU: static post-training quantization of an exported ``.onnx``
engine with ONNX Runtime (QDQ format), then an accuracy check against the FP32 parent.

Calibration frames come from a video or image folder through the pipeline's own source
and preprocessor (:func:`nerveseg.realtime.sample_frames.load_frames`), so the ranges the
quantizer records are those of the frames the engine sees at run time. The new file keeps
the parent's nerveseg metadata, with ``extra`` extended by ``precision``, ``quantization``
(method, versions, calibration source and hash) and ``parent`` (path, sha256), and
``accuracy_check`` (FP32 vs INT8 on the held-out set, the allowed drop, the verdict).
"""

from __future__ import annotations

import dataclasses
import datetime
import logging
import os
from pathlib import Path

import numpy as np

from nerveseg.engines.metadata import META_KEY, EngineError, EngineMeta, file_sha256

log = logging.getLogger(__name__)

QUANTIZABLE = ("classify", "segment", "gate_segment")


class _Frames:
    """ONNX Runtime's ``CalibrationDataReader``: one ``{"image": (1, H, W, 3) uint8}`` at a time."""

    def __init__(self, frames: np.ndarray):
        self.frames, self.index = frames, 0

    def get_next(self) -> dict | None:
        if self.index >= len(self.frames):
            return None
        self.index += 1
        return {"image": self.frames[self.index - 1:self.index]}


def calibration(source: str | Path, input_size: tuple[int, int], frames: int, every: int) -> np.ndarray:
    """Every ``every``-th of the first ``frames * every`` frames of ``source``, preprocessed:
    ``(N, H, W, 3) uint8`` (spread over the video, not only its first seconds)."""
    from nerveseg.realtime.sample_frames import load_frames

    return load_frames(source, input_size, frames * every)[::every]


def first_convs(path: Path, count: int) -> list[str]:
    """The names of the first ``count`` Conv nodes of the ONNX graph at ``path``, in graph order."""
    import onnx

    return [n.name for n in onnx.load(str(path)).graph.node if n.op_type == "Conv"][:count]


#: ops with weights: where the walk back from an output stops (:func:`output_tail`)
WEIGHTED = ("Conv", "ConvTranspose", "Gemm", "MatMul")
#: ops that pass one tensor on, reshaped, resampled or squashed: walked through
PASS_ON = ("Resize", "Upsample", "Sigmoid", "Softmax", "LogSoftmax", "Transpose", "Reshape", "Flatten", "Identity",
           "Squeeze", "Unsqueeze", "Relu", "Clip", "Cast")


def output_tail(path: Path, count: int) -> list[str]:
    """The names of the nodes from each graph output of the ONNX graph at ``path`` back to
    and including its last ``count`` weighted nodes (:data:`WEIGHTED`), through the ops
    that only pass a tensor on (:data:`PASS_ON`): a segmenter's head convolution and the
    upsampling of its logits to the mask's size, a classifier's last layer. Stops at any
    other op (an addition, a concatenation), which is not the output's own."""
    import onnx

    graph = onnx.load(str(path)).graph
    made_by = {out: node for node in graph.node for out in node.output}
    tail: list[str] = []
    for output in graph.output:
        node, left = made_by.get(output.name), count
        while node is not None and left > 0 and node.op_type in WEIGHTED + PASS_ON:
            if node.name not in tail:
                tail.append(node.name)
            left -= node.op_type in WEIGHTED
            node = made_by.get(node.input[0]) if node.input else None
    return tail


def quantize_file(parent: Path, out: Path, frames: np.ndarray, per_channel: bool = True,
                  keep_first: int = 1, keep_last: int = 1) -> list[str]:
    """Static QDQ INT8 of ``parent`` into ``out`` (weights int8 per channel, activations
    uint8, MinMax ranges over ``frames`` ``(N, H, W, 3) uint8``), the first ``keep_first``
    convolutions left in FP32. Returns the names of the nodes left in FP32.

    Why the first convolution stays FP32: it reads the normalised image, whose fine grey
    levels carry the band (near-monochrome frames); quantized, the sample gate lost 28
    points of accuracy on the held-out set, kept in FP32 about one image in 300."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(_Frames, CalibrationDataReader):
        pass

    prepared = out.with_name(f".{out.stem}.prepared.onnx")
    try:
        # shape inference and constant folding first: ONNX Runtime's advice for static quantization
        quant_pre_process(str(parent), str(prepared), skip_symbolic_shape=True)
        kept = first_convs(prepared, keep_first)
        kept += [name for name in output_tail(prepared, keep_last) if name not in kept]
        quantize_static(str(prepared), str(out), Reader(frames), quant_format=QuantFormat.QDQ,
                        per_channel=per_channel, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                        nodes_to_exclude=kept)
    except Exception as exc:  # the quantizer raises plain exceptions for graphs it cannot handle
        first = " ".join(str(exc).split())[:200] or type(exc).__name__
        raise EngineError(f"{parent}: ONNX Runtime could not quantize it ({first})") from None
    finally:
        prepared.unlink(missing_ok=True)
    return kept


def int8_meta(meta: EngineMeta, parent: Path, source: str | Path, frames: int, every: int,
              per_channel: bool, kept: list[str], check: dict) -> EngineMeta:
    """The parent's metadata with precision, quantization, parent and accuracy check added."""
    import onnxruntime

    source = Path(source)
    calib = {"source": str(source), "frames": frames, "every": every, "preprocess": "the pipeline's defaults"}
    if source.is_file():
        calib["sha256"] = file_sha256(source)
    extra = {**meta.extra, "precision": "int8",
             "quantization": {"method": "onnxruntime static QDQ", "onnxruntime": onnxruntime.__version__,
                              "weights": "int8 per channel" if per_channel else "int8 per tensor",
                              "activations": "uint8 per tensor", "calibrate": "MinMax", "calibration": calib,
                              "fp32_nodes": kept},
             "parent": {"path": str(parent), "sha256": file_sha256(parent), "model": meta.model,
                        "precision": meta.extra.get("precision", "fp32")},
             "accuracy_check": check}
    created = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    return dataclasses.replace(meta, extra=extra, created=created)


def write_meta(path: Path, meta: EngineMeta) -> None:
    """Replace the nerveseg metadata inside the ONNX file ``path``."""
    import onnx

    model = onnx.load(str(path))
    for prop in list(model.metadata_props):
        if prop.key == META_KEY:
            model.metadata_props.remove(prop)
    model.metadata_props.add(key=META_KEY, value=meta.to_json())
    onnx.save(model, str(path))


def accuracy(engine, data: Path) -> dict:
    """Gate accuracy and/or nerve IoU of ``engine`` on ``data`` (classify/, segment/)."""
    from nerveseg.training import data as datasets
    from nerveseg.training.evaluation import evaluate_gate, evaluate_seg

    found = {}
    if engine.meta.task in ("classify", "gate_segment"):
        report = evaluate_gate(engine, data / "classify", datasets.list_classification(data / "classify"), 1)
        found["gate_accuracy"] = round(float(report["accuracy"]), 4)
    if engine.meta.task in ("segment", "gate_segment"):
        report = evaluate_seg(engine, data / "segment", datasets.list_segmentation(data / "segment"), 1)
        found["nerve_iou"] = round(float(report["iou"]["mean"]), 4)
    return found


def compare(fp32: dict, int8: dict, max_drop: float, max_iou_drop: float, test_set: str) -> dict:
    """The check written into the INT8 metadata; ``passed`` False when a drop exceeds its limit."""
    limits = {"gate_accuracy": max_drop, "nerve_iou": max_iou_drop}
    drops = {k: round(fp32[k] - int8[k], 4) for k in fp32}
    failed = [f"{k.replace('_', ' ')} drops {drops[k]:.4f} ({fp32[k]:.4f} → {int8[k]:.4f}), more than {limits[k]}"
              for k in drops if drops[k] > limits[k]]
    return {"test_set": test_set, "fp32": fp32, "int8": int8, "drop": drops,
            "max_drop": {k: limits[k] for k in fp32}, "passed": not failed, "failed": failed}


@dataclasses.dataclass(frozen=True)
class Options:
    """How :func:`build` quantizes and what it allows (the CLI's options)."""

    calib_frames: int = 256
    calib_every: int = 1
    per_channel: bool = True
    keep_first: int = 1
    keep_last: int = 1
    max_drop: float = 0.005
    max_iou_drop: float = 0.01
    keep_failed: bool = False


def build(parent: Path, out: Path, calib: str | Path, data: Path, described: str, options: Options) -> dict:
    """Quantize ``parent`` into ``out``, score both on ``data`` and write ``out`` (whole: a
    partial file beside it, then a rename) if the drops are within the limits or
    ``options.keep_failed``. Returns the accuracy check, with ``frames`` (calibration
    frames used) and ``written``."""
    from nerveseg.engines.loader import load_engine

    fp32 = load_engine(parent, "onnxruntime")  # missing, unreadable, no metadata: one line
    if fp32.meta.task not in QUANTIZABLE:
        raise EngineError(f"{parent}: a {fp32.meta.task!r} engine; quantize takes {', '.join(QUANTIZABLE)}")
    if fp32.meta.extra.get("precision", "fp32") != "fp32":
        raise EngineError(f"{parent}: already {fp32.meta.extra['precision']}; quantize its FP32 parent")
    frames = calibration(calib, fp32.input_size, options.calib_frames, options.calib_every)
    tmp = out.with_name(f".{out.stem}.partial.onnx")
    try:
        kept = quantize_file(parent, tmp, frames, options.per_channel, options.keep_first, options.keep_last)
        with load_engine(tmp, "onnxruntime", task=fp32.meta.task) as int8:
            check = compare(accuracy(fp32, data), accuracy(int8, data), options.max_drop, options.max_iou_drop,
                            described)
        write_meta(tmp, int8_meta(fp32.meta, parent, calib, len(frames), options.calib_every,
                                  options.per_channel, kept, check))
        written = check["passed"] or options.keep_failed
        if written:
            os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
        fp32.close()
    return {**check, "frames": len(frames), "written": written}
