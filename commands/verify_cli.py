"""``nerveseg verify A B``: do two engines agree on the same frames?

Exit status 0 when every threshold holds, 1 when one fails, 2 for bad input.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from nerveseg.engines.backends import BACKEND_CHOICES


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("a", type=Path, help="reference engine (e.g. the .onnx under ONNX Runtime, FP32)")
    parser.add_argument("b", type=Path, help="engine to check (e.g. a TensorRT .engine, a .pt, another .onnx)")
    parser.add_argument("--backend-a", default="auto", choices=BACKEND_CHOICES, help="backend for A (default auto)")
    parser.add_argument("--backend-b", default="auto", choices=BACKEND_CHOICES, help="backend for B (default auto)")
    parser.add_argument("--frames", help="video file or image folder (default: --n synthetic frames)")
    parser.add_argument("--n", type=int, default=64, help="frames to compare (default 64)")
    parser.add_argument("--eye", choices=["left", "right", "full"], default="left",
                        help="which part of a stereo frame the pipeline feeds (default left)")
    parser.add_argument("--min-agreement", type=float, default=0.99, help="gate agreement needed (default 0.99)")
    parser.add_argument("--min-iou", type=float, default=0.98, help="pooled mask IoU needed (default 0.98)")
    parser.add_argument("--max-diff", type=float, help="fail when a max |logit difference| exceeds this")
    parser.add_argument("--mask-threshold", type=float, default=0.5, help="mask probability threshold (0.5)")
    parser.add_argument("--threads", type=int, default=0, help="CPU threads per engine (0: runtime's choice)")
    parser.add_argument("--json", type=Path, help="also write the report to this JSON file")


def run(args: argparse.Namespace) -> int:
    from nerveseg.engines.errors import UserError
    from nerveseg.engines.preprocess import PreprocessConfig

    from nerveseg.engines.loader import load_engine
    from nerveseg.engines.sample_frames import synthetic_frames
    from nerveseg.realtime.sample_frames import load_frames
    from nerveseg.engines.verify import Thresholds, compare, format_report

    if args.n < 1 or not 0.0 < args.mask_threshold < 1.0:
        raise UserError("--n must be >= 1 and --mask-threshold between 0 and 1")
    thresholds = Thresholds(args.min_agreement, args.min_iou, args.max_diff, args.mask_threshold)
    a = load_engine(args.a, args.backend_a, threads=args.threads)
    b = load_engine(args.b, args.backend_b, threads=args.threads)
    if args.frames:
        frames = load_frames(args.frames, a.input_size, args.n, PreprocessConfig(eye=args.eye))
        source = str(args.frames)
    else:
        frames = synthetic_frames(args.n, a.input_size)
        source = f"{args.n} synthetic frames (seed 0); pass --frames for real ones"
    report = compare(a, b, frames, thresholds)
    print(f"frames from: {source}")
    print(format_report(report))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({**report.to_dict(), "frames_source": source}, indent=2))
    a.close()
    b.close()
    return 0 if report.ok else 1
