"""``nerveseg run``: the live pipeline on a camera (or a paced file), headless.

The newest-frame policy keeps latency bounded; drops are counted. A camera that is
missing or stops is reported as "no signal" and retried until it comes back.
Ctrl-C ends the run cleanly (recording closed, summary written).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from nerveseg.engines import interrupts, outputs

from . import config as cfg
from nerveseg.engines.errors import UserError
from .replay_cli import (add_camera_arguments, add_display_arguments, add_engine_arguments, camera_overrides,
                         display_overrides, exit_status, overrides)
from .sources import source_arg
from .stats import format_table


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--source", required=True, type=source_arg,
                        help="camera index (0, 1, ...) or device path (/dev/video2), stream URL (rtsp://, "
                             "http://, tcp://, udp://, srt://, ...), or a video file / image folder played at "
                             "its frame rate")
    parser.add_argument("--record", type=Path, help="AVI to write (CSV and JSON beside it; --record-content "
                        "as-shown adds NAME.shown.csv)")
    parser.add_argument("--log", type=Path, help="per-frame CSV (default: beside the recording)")
    parser.add_argument("--duration", type=float, help="stop after this many seconds")
    add_engine_arguments(parser)
    add_camera_arguments(parser)
    add_display_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from .pipeline import STOP_S, NervePipeline

    if args.record is not None and args.record.suffix.lower() != ".avi":
        raise UserError(f"{args.record}: the recording must be an .avi file")
    extra = {"source": {"spec": args.source, "pace": True, "live": True},
             "record": {"path": str(args.record) if args.record else None},
             "log": {"csv": str(args.log) if args.log else None}}
    config = cfg.load(args.config, cfg.merge(cfg.merge(cfg.merge(overrides(args), camera_overrides(args)),
                                                       display_overrides(args)), extra))
    if args.record:
        outputs.claim(args.record.with_suffix(".config.yaml"))  # before any output is opened
    pipeline = NervePipeline(config)
    if args.record:
        cfg.save(config, args.record.with_suffix(".config.yaml"))
    # Told as they happen, from the watchdog's and the recorder's threads: "no signal"
    # while a camera read hangs, a recording that stops when the disk is full.
    pipeline.subscribe_status(lambda s: print(f"source {s.source}: {s.text}", file=sys.stderr, flush=True))
    pipeline.subscribe_notices(lambda n: print(f"nerveseg run: {'error: ' if n.kind == 'error' else ''}"
                                               f"{n.message}", file=sys.stderr, flush=True))
    pipeline.start()
    deadline = None if args.duration is None else time.monotonic() + args.duration
    try:
        while not pipeline.wait(0.2):
            if (deadline is not None and time.monotonic() >= deadline) or interrupts.stop_requested():
                break
    except KeyboardInterrupt:
        pass  # Ctrl-C is how a live run ends: close as after --duration
    interrupts.clear_stop()  # ... so it is not an interruption of the command
    if not pipeline.close(timeout=STOP_S):
        print(f"nerveseg run: warning: {pipeline.source.name}: a thread did not stop (left behind)", file=sys.stderr)
    summary = pipeline.finish()
    print(format_table(summary))
    return exit_status("run", pipeline, summary, outputs_told=True)
