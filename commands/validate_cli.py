"""``nerveseg validate``: the evidence a hospital asks for, in one report.

    nerveseg validate --engines gate.onnx unet.onnx --video sample.mp4 \\
        --test-set data/classify --test-set data/segment --gate-split runs/gate/splits/test.txt --out report/

Writes ``validation.html`` (self-contained), ``validation.pdf``, ``validation.json`` and the
resolved ``validation.config.yaml``; exits 1 when any check fails, so it can gate a release.
A run stopped part way writes an INCOMPLETE report instead (never PASS) and exits 3 (a
failure) or 130 (Ctrl-C, SIGTERM).
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import shlex
import sys
from pathlib import Path

from nerveseg.realtime import config as cfg
from nerveseg.engines.errors import UserError
from nerveseg.realtime.replay_cli import add_engine_arguments, overrides
from nerveseg.realtime.sources import video_file_arg


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--video", required=True, type=video_file_arg,
                        help="video file (ground truth beside it in <stem>.gt/ is used) or image folder")
    parser.add_argument("--test-set", action="append", default=[], type=Path, metavar="DIR",
                        help="labelled folder: class folders, a Supervisely project, or both as classify/ and "
                             "segment/ (repeatable)")
    parser.add_argument("--gate-split", type=Path, metavar="LIST",
                        help="restrict the classification set to this split list (test.txt, or a splits/ folder)")
    parser.add_argument("--seg-split", type=Path, metavar="LIST", help="the same for the segmentation set")
    parser.add_argument("--engines", nargs="+", type=Path, metavar="FILE",
                        help="the gate and the segmenter, in any order (told apart by their metadata)")
    parser.add_argument("--out", type=Path, default=Path("validation"), help="report folder (default validation/)")
    parser.add_argument("--annotation-threshold-ms", type=float, default=120.0,
                        help="acceptance threshold of the annotation delay (default 120)")
    parser.add_argument("--video-threshold-ms", type=float,
                        help="acceptance threshold of the video delay (default: 5.75 ms with live passthrough, "
                             "else one frame period of the video)")
    parser.add_argument("--delay-statistic", choices=["p50", "p95", "p99", "max"], default="p95",
                        help="the delay statistic held against the thresholds (default p95)")
    parser.add_argument("--pixel-tolerance", type=int, default=0,
                        help="|Δ| a pixel outside the overlay may differ by (default 0: identical)")
    parser.add_argument("--display", choices=["qt", "subscriber"], default="qt",
                        help="where 'on screen' is stamped: the view's paint (default) or the display subscriber")
    parser.add_argument("--no-record-while-timing", action="store_true",
                        help="measure the delays without recording (default: recording on, as in theatre)")
    parser.add_argument("--no-pdf", action="store_true", help="HTML and JSON only")
    parser.add_argument("--keep-recordings", action="store_true", help="keep the AVIs the checks were made on")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    add_engine_arguments(parser)


def _engine_files(args: argparse.Namespace) -> dict:
    """``--engines`` as config overrides: each file's task (from its metadata) says its role."""
    from nerveseg.engines.loader import load_engine
    from nerveseg.engines.metadata import EngineError

    if not args.engines:
        return {}
    if args.gate or args.seg:
        raise UserError("give the engines either with --engines or with --gate/--seg, not both")
    roles: dict[str, Path] = {}
    for path in args.engines:
        with load_engine(path, args.backend or "auto", threads=args.threads or 0) as engine:
            task = engine.meta.task
        if task not in ("classify", "segment"):
            raise EngineError(f"{path}: a {task!r} engine; validate takes one 'classify' and one 'segment' engine")
        if task in roles:
            raise EngineError(f"{path}: a second {task!r} engine (the first is {roles[task]})")
        roles[task] = path
    missing = [task for task in ("classify", "segment") if task not in roles]
    if missing:
        raise UserError(f"--engines {' '.join(map(str, args.engines))}: no {missing[0]!r} engine among them")
    return {"gate": {"engine": str(roles["classify"])}, "segment": {"engine": str(roles["segment"])}}


def _command(args: argparse.Namespace) -> str:
    """The resolved options, for the report: what was asked, whichever way it was typed."""
    skip = ("handler", "command", "verbose")
    parts = []
    for key, value in sorted(vars(args).items()):
        if key in skip or value in (None, False, [], ()):
            continue
        flag = "--" + key.replace("_", "-")
        if value is True:
            parts.append(flag)
        elif key == "test_set":  # the one option given once per value
            parts += [f"{flag} {shlex.quote(str(v))}" for v in value]
        else:
            values = value if isinstance(value, list) else [value]
            parts.append(" ".join([flag, *(shlex.quote(str(v)) for v in values)]))
    return "nerveseg validate " + " ".join(parts)


def options(args: argparse.Namespace):
    from nerveseg.commands.validation.runner import Options

    if args.pixel_tolerance < 0 or args.annotation_threshold_ms <= 0 or (args.video_threshold_ms or 1) <= 0:
        raise UserError("--pixel-tolerance must be ≥ 0 and the delay thresholds > 0")
    return Options(video=args.video, out=args.out, test_sets=tuple(args.test_set), gate_split=args.gate_split,
                   seg_split=args.seg_split, annotation_ms=args.annotation_threshold_ms,
                   video_ms=args.video_threshold_ms, statistic=args.delay_statistic, tolerance=args.pixel_tolerance,
                   display=args.display, pdf=not args.no_pdf, record_while_timing=not args.no_record_while_timing,
                   keep_recordings=args.keep_recordings,
                   progress=not args.no_progress, command=_command(args))


EXIT_INCOMPLETE = 3  # a run that failed part way (interrupted: 130, as every command)


def run(args: argparse.Namespace) -> int:
    """0 PASS, 1 FAIL, 2 bad input (nothing measured), 3 INCOMPLETE (failed part way),
    130 interrupted (INCOMPLETE written); see docs/VALIDATION.md."""
    from nerveseg.engines.interrupts import clear_stop, stop_requested

    from nerveseg.realtime.pipeline import Engines
    from nerveseg.commands.validation.runner import IncompleteRun, validate

    config = cfg.load(args.config, cfg.merge(overrides(args), _engine_files(args)))
    config = dataclasses.replace(config, source=dataclasses.replace(config.source, spec=str(args.video)))
    o = options(args)
    engines = Engines.load(config)
    try:
        results, written = validate(config, engines, o)
    except IncompleteRun as exc:
        logging.getLogger(__name__).debug("validation stopped", exc_info=exc.__cause__)
        print(f"INCOMPLETE  nerveseg validate: {exc}", file=sys.stderr)
        return EXIT_INCOMPLETE
    finally:
        for engine in (engines.gate, engines.segment):
            engine.close()
    code = 0 if results["verdict"]["passed"] else 1
    try:
        for check in results["verdict"]["checks"]:
            print(check["line"])
        print("wrote " + ", ".join(str(path) for path in written.values()))
    except KeyboardInterrupt:
        results["interrupted_after_report"] = True
    if results.get("interrupted_after_report") or stop_requested():
        clear_stop()  # reported here: the outcome is the report's
        # The whole report was in place before the signal: it and its exit code stand.
        print(f"nerveseg validate: interrupted after the report was complete "
              f"(verdict {results['verdict']['status']} in {written['json']})", file=sys.stderr)
    return code
