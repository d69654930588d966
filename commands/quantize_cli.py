"""``nerveseg quantize ENGINE.onnx --out NEW.onnx --calib VIDEO|FOLDER``: an INT8 engine
for the CPU (ONNX Runtime static QDQ), checked against its FP32 parent on the held-out
synthetic test set before it is written (see :mod:`nerveseg.commands.quantize`).

Exit 0: written, within ``--max-drop``/``--max-iou-drop``. Exit 1: a drop beyond its
limit; nothing written (``--keep-failed`` writes it anyway, marked ``passed: false``).
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from nerveseg.engines.errors import UserError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("engine", type=Path, help="FP32 .onnx engine exported by `nerveseg export` (with metadata)")
    parser.add_argument("--out", type=Path, required=True, help="the INT8 .onnx file to write (never the input)")
    parser.add_argument("--calib", required=True,
                        help="video file or image folder the calibration frames come from (through the "
                             "pipeline's source and preprocessor)")
    # The ranges must cover the whole video: on the shipped sample (its glare grows at frame
    # 120) the gate calibrated on its first 64 frames lost 2.7 points, on all 180 none.
    parser.add_argument("--calib-frames", type=int, default=256, help="calibration frames (at most)")
    parser.add_argument("--calib-every", type=int, default=1,
                        help="take every N-th frame (spreads a few frames over a long video)")
    parser.add_argument("--test-set", type=Path, help="folder with classify/ and segment/ for the accuracy check "
                                                      "(default: a held-out synthetic set made now)")
    parser.add_argument("--test-domain", choices=("classic", "wide", "target"), default="classic",
                        help="the synthetic world of the held-out set made when --test-set is not given: the "
                             "one the engines were trained in (default classic, the shipped engines')")
    parser.add_argument("--max-drop", type=float, default=0.005,
                        help="largest allowed drop in gate accuracy (a fraction: 0.005 = half a point)")
    parser.add_argument("--max-iou-drop", type=float, default=0.01, help="largest allowed drop in mean nerve IoU")
    parser.add_argument("--keep-first", type=int, default=1,
                        help="leave the first N convolutions in FP32 (they read the normalised image)")
    parser.add_argument("--keep-last", type=int, default=1,
                        help="leave the last N weighted layers and what follows them to the output (a "
                             "segmenter's head and the upsampling of its logits) in FP32")
    parser.add_argument("--per-tensor", action="store_true", help="one weight scale per tensor (default: per channel)")
    parser.add_argument("--keep-failed", action="store_true",
                        help="write the file even when a drop exceeds its limit (marked passed: false; exit 1)")


def _check(args: argparse.Namespace) -> None:
    for name in ("engine", "out"):
        path = getattr(args, name)
        if path.suffix.lower() != ".onnx":
            raise UserError(f"{path}: {'--out' if name == 'out' else 'the engine'} must be an .onnx file")
    for name, least in (("calib_frames", 1), ("calib_every", 1), ("keep_first", 0), ("keep_last", 0)):
        if getattr(args, name) < least:
            raise UserError(f"--{name.replace('_', '-')} {getattr(args, name)}: must be a whole number ≥ {least}")
    for name in ("max_drop", "max_iou_drop"):
        if not 0 <= getattr(args, name) <= 1:
            raise UserError(f"--{name.replace('_', '-')} {getattr(args, name)}: must be within [0, 1]")


def run(args: argparse.Namespace) -> int:
    from nerveseg.commands.bench.formats import held_out_set
    from nerveseg.commands.quantize import Options, build
    from nerveseg.engines import extras

    from nerveseg.engines.onnxruntime_backend import read_onnx_meta

    _check(args)
    extras.require("onnx", "nerveseg quantize")
    read_onnx_meta(args.engine)  # missing, unreadable, no metadata: said before the test set is made
    if not Path(args.calib).exists():
        raise UserError(f"{args.calib}: calibration video or folder not found")
    options = Options(args.calib_frames, args.calib_every, not args.per_tensor, args.keep_first,
                      args.keep_last, args.max_drop, args.max_iou_drop, args.keep_failed)
    # 300 gate images: one image is a third of a point, finer than the default --max-drop
    data, said = held_out_set(args.test_set, per_class=100, seg_count=60, domain=args.test_domain)
    try:
        check = build(args.engine, args.out, args.calib, data, said, options)
    finally:
        if args.test_set is None:
            shutil.rmtree(data, ignore_errors=True)
    _say(args, check, check["frames"])
    return 0 if check["passed"] else 1


def _say(args: argparse.Namespace, check: dict, frames: int) -> None:
    figures = ", ".join(f"{k.replace('_', ' ')} {check['fp32'][k]:.4f} → {check['int8'][k]:.4f}" for k in check["fp32"])
    if check["passed"]:
        print(f"{args.out}: INT8 (static QDQ, {frames} calibration frames from {args.calib}); {figures} "
              f"on the {check['test_set']}")
        return
    kept = f"{args.out}: written anyway (--keep-failed), marked passed: false" if args.keep_failed else \
        f"{args.out}: not written"
    print(f"{kept}: {'; '.join(check['failed'])} on the {check['test_set']}", file=sys.stderr)
