"""``nerveseg build-engine MODEL.onnx``: a TensorRT engine for this GPU, with its sidecar.

Engines only run on the GPU model and TensorRT version that built them, so build on the
machine that will run them (``--backend tensorrt`` with the ONNX file does this
automatically, into the engine cache).
"""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("onnx", type=Path, help="ONNX model exported by `nerveseg export` (with metadata)")
    precision = parser.add_mutually_exclusive_group()
    precision.add_argument("--fp16", action="store_true", help="FP16 kernels (default: FP32)")
    precision.add_argument("--int8", action="store_true", help="INT8 with FP16 fallback; needs --calib-dir")
    parser.add_argument("--calib-dir", type=Path, help="folder of frames for INT8 calibration")
    parser.add_argument("--calib-frames", type=int, default=256, help="at most this many calibration frames")
    parser.add_argument("--workspace", type=int, default=2048, metavar="MB", help="builder workspace (MB)")
    parser.add_argument("--opt-level", type=int, default=3, help="builder optimisation level 0-5 (default 3)")
    parser.add_argument("--max-batch", type=int, default=4, help="largest batch the engine accepts")
    parser.add_argument("--timing-cache", type=Path, help="timing cache file (default: in the engine cache)")
    parser.add_argument("--out", type=Path, help="engine file (default: MODEL.<precision>.engine beside MODEL)")


def run(args: argparse.Namespace) -> int:
    from nerveseg.engines.errors import UserError

    from nerveseg.engines.onnxruntime_backend import read_onnx_meta
    from nerveseg.engines.tensorrt_build import BuildOptions, build_engine
    from nerveseg.realtime.sample_frames import calibration_frames

    if args.calib_dir is not None and not args.int8:
        raise UserError(f"{args.calib_dir}: --calib-dir is only used with --int8")
    if args.calib_frames < 1:
        raise UserError(f"--calib-frames {args.calib_frames}: need at least 1")
    precision = "int8" if args.int8 else "fp16" if args.fp16 else "fp32"
    options = BuildOptions(precision, args.workspace, args.opt_level, args.max_batch, args.timing_cache)
    calibration = None
    if args.int8:
        input_size = read_onnx_meta(args.onnx).input_size  # missing file / no metadata: one line
        calibration = calibration_frames(args.calib_dir, input_size, args.calib_frames)
    out = args.out or args.onnx.with_name(f"{args.onnx.stem}.{precision}.engine")
    sidecar = build_engine(args.onnx, out, options, calibration=calibration)
    print(f"{out}: {sidecar.meta.model} {precision} for {sidecar.key.gpu_name} "
          f"(TensorRT {sidecar.key.tensorrt_version}); metadata in {out.name}.json")
    return 0
