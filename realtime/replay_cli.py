"""``nerveseg replay``: a video file or image folder to an annotated AVI, every frame."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from . import config as cfg
from .errors import UserError
from .stats import format_table


def add_engine_arguments(parser: argparse.ArgumentParser) -> None:
    """Options shared by every command that runs the pipeline."""
    parser.add_argument("--config", type=Path, help="YAML run configuration (sections per stage)")
    parser.add_argument("--gate", help=f"classifier gate engine (default {cfg.DEFAULT_GATE})")
    parser.add_argument("--seg", help=f"segmentation engine (default {cfg.DEFAULT_SEGMENTER})")
    parser.add_argument("--backend", help="engine backend: auto, onnxruntime, torch, tensorrt")
    parser.add_argument("--threads", type=int, help="inference threads per engine (0: runtime's choice)")
    parser.add_argument("--eye", choices=["left", "right", "full"], help="which part of a stereo frame to use")
    parser.add_argument("--threshold", type=float, help="segmentation probability threshold")
    parser.add_argument("--codec", choices=["mjpeg", "ffv1", "h264"], help="AVI codec (ffv1: lossless)")


def overrides(args: argparse.Namespace) -> dict:
    """CLI options as a config overlay (unset options leave the YAML/defaults alone)."""
    engine = {"backend": args.backend, "threads": args.threads}
    return {
        "gate": {"engine": args.gate, **engine},
        "segment": {"engine": args.seg, "threshold": args.threshold, **engine},
        "preprocess": {"eye": args.eye},
        "record": {"codec": args.codec},
    }


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("input", help="video file or image folder")
    parser.add_argument("--out", required=True, type=Path, help="annotated AVI to write (CSV and JSON beside it)")
    add_engine_arguments(parser)
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from .pipeline import NervePipeline

    if args.out.suffix.lower() != ".avi":
        raise UserError(f"{args.out}: the recording must be an .avi file")
    extra = {"source": {"spec": args.input, "pace": False, "live": False}, "record": {"path": str(args.out)}}
    config = cfg.load(args.config, cfg.merge(overrides(args), extra))
    pipeline = NervePipeline(config)
    cfg.save(config, args.out.with_suffix(".config.yaml"))
    summary = _run_with_progress(pipeline, show=not args.no_progress)
    print(format_table(summary))
    print(f"wrote {args.out} ({summary['recorded_frames']} frames), "
          f"{pipeline.outputs['csv']}, {pipeline.outputs['summary']}")
    return _exit_status(pipeline, summary)


def _run_with_progress(pipeline, show: bool) -> dict:
    from tqdm import tqdm

    total = getattr(pipeline.source, "frame_count", None) or None
    rows = pipeline.ops["log"].stats.rows
    pipeline.start()
    with tqdm(total=total, unit="frame", desc="replay", disable=not show, file=sys.stderr) as bar:
        try:
            while not pipeline.wait(0.25):
                bar.update(len(rows) - bar.n)
        except KeyboardInterrupt:
            pipeline.stop()
            pipeline.wait(5.0)
        bar.update(len(rows) - bar.n)
    return pipeline.finish()


def _exit_status(pipeline, summary: dict) -> int:
    source = pipeline.source
    name = source.name
    if pipeline.graph.fatal is not None:
        print(f"nerveseg: error: {name}: stopped early ({pipeline.graph.fatal}); "
              f"{summary['recorded_frames']} frames kept", file=sys.stderr)
        return 1
    ended_early = getattr(source, "ended_early", None)
    if ended_early or source.skipped:
        problem = ended_early or f"{source.skipped} undecodable frame(s) skipped"
        print(f"nerveseg: error: {name}: damaged input ({problem}); "
              f"{summary['recorded_frames']} good frames kept", file=sys.stderr)
        return 1
    return 0
