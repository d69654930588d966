"""``nerveseg export CHECKPOINT --out MODEL.onnx`` and the exporter registry.

One exporter per task, each running the checked chain of :mod:`.export` (load →
torch→onnx → onnx.checker → parity → metadata → reload) with its own inputs and parity:
a new task's exporter is one module with an ``(checkpoint, out, options) -> EngineMeta``
function and one line in :data:`EXPORTERS`.
"""

from __future__ import annotations

import argparse
import logging
from dataclasses import dataclass
from pathlib import Path

from .export import PROVENANCE, ExportError, export_dense
from .instance.export import export_instance_checkpoint
from .region.export import export_region_checkpoint

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ExportOptions:
    """What every exporter may use; ``input_size`` ``(h, w)`` exports at another size than
    trained, ``reference_pt`` also writes the weights-only torch checkpoint with the same
    metadata, ``min_score`` (instance only) moves the detector's score cut into the graph,
    ``calibrate`` (gates) fits the temperature and unfamiliar-view thresholds on the
    validation split into the metadata (:mod:`nerveseg.engines.calibration`)."""

    exporter: str = "legacy"
    opset: int | None = None
    data: str | Path | None = None
    splits: str | Path | None = None
    metrics: str | Path | None = None
    input_size: tuple[int, int] | None = None
    reference_pt: str | Path | None = None
    min_score: float | None = None
    calibrate: bool = False


# task (the checkpoint's meta.task) → exporter
EXPORTERS = {
    "classify": export_dense,
    "segment": export_dense,
    "gate_segment": export_dense,
    "region_segment": export_region_checkpoint,
    "instance": export_instance_checkpoint,
}


def export(checkpoint, out, provenance: dict | None = None, **options):
    """Export ``checkpoint`` to ``out`` with the exporter of its task; returns the embedded
    :class:`EngineMeta`. ``options``: the fields of :class:`ExportOptions`; ``provenance``
    (:func:`.rebuildable.check`: the export revision, and ``dirty`` reasons) goes into
    the engine's ``extra``."""
    from .instance.model import checkpoint_task

    checkpoint, out = Path(checkpoint), Path(out)
    task = checkpoint_task(checkpoint)
    # An unreadable file has no task: the dense exporter's load step names the problem.
    exporter = EXPORTERS.get(task or "classify")
    if exporter is None:
        raise ExportError(f"{checkpoint}: no exporter for task {task!r}; known: {', '.join(EXPORTERS)}")
    token = PROVENANCE.set(dict(provenance or {}))
    try:
        return exporter(checkpoint, out, ExportOptions(**options))
    finally:
        PROVENANCE.reset(token)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", metavar="CHECKPOINT", help="training checkpoint (best.pt)")
    parser.add_argument("--out", required=True, metavar="MODEL.onnx", help="ONNX file to write")
    parser.add_argument("--exporter", choices=("legacy", "dynamo"), default="legacy",
                        help="torch.onnx exporter (default legacy: 30x faster here, same graph quality)")
    parser.add_argument("--opset", type=int, default=None, help="ONNX opset (default 17 legacy, 18 dynamo)")
    parser.add_argument("--data", default=None,
                        help="dataset for real parity frames (default: the training data)")
    parser.add_argument("--splits", default=None, metavar="DIR",
                        help="split lists for real frames (default: splits/ beside the checkpoint)")
    parser.add_argument("--metrics", default=None, metavar="JSON",
                        help="metrics.json from `nerveseg eval` to embed as extra.test_metrics")
    parser.add_argument("--input-size", type=int, default=None, metavar="N",
                        help="export at N×N instead of the trained size (the models are fully convolutional)")
    parser.add_argument("--reference-pt", default=None, metavar="MODEL.pt",
                        help="also write the weights-only torch reference (no optimizer state) with the "
                             "same metadata, for the torch backend and the naive benchmark")
    parser.add_argument("--allow-dirty", action="store_true",
                        help="export although the checkpoint was trained from, or this checkout holds, "
                             "uncommitted changes; the engine is marked dirty (default: refuse)")
    parser.add_argument("--calibrate", action="store_true",
                        help="gates: fit the temperature and the unfamiliar-view thresholds on the validation "
                             "split (splits/val.txt) into the engine's metadata (docs/VALIDATION.md)")
    parser.add_argument("--min-score", type=float, default=None, metavar="S",
                        help="instance engines: drop detections scoring under S inside the graph, so their "
                             "masks are never computed (default: as trained, 0.05; 0.5 is ~3x faster)")


def run(args: argparse.Namespace) -> int:
    from . import rebuildable
    from .checkpoint import read_checkpoint

    size = (args.input_size, args.input_size) if args.input_size else None
    trained = (read_checkpoint(args.checkpoint).get("meta") or {}).get("revision")
    provenance = rebuildable.check(args.checkpoint, trained, args.allow_dirty)
    meta = export(args.checkpoint, args.out, exporter=args.exporter, opset=args.opset,
                  data=args.data, splits=args.splits, metrics=args.metrics, input_size=size,
                  reference_pt=args.reference_pt, min_score=args.min_score, provenance=provenance,
                  calibrate=args.calibrate)
    parity = meta.extra["parity"]
    print(f"wrote {args.out}: {meta.model} {meta.task} {list(meta.classes)} {meta.input_size}; "
          f"parity max|Δ| {parity['max_abs_diff']:.2e} on {parity['frames']} frames"
          + (f"; temperature {meta.extra['calibration']['temperature']:.3f}" if args.calibrate else ""))
    return 0


