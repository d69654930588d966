"""``nerveseg bench``: naive loop, bare engines, pipelined replay and live delays, side
by side in one process on the same frames; writes JSON, a latency PNG and (with
``--update-docs``) the figures in docs/BENCHMARKS.md. Asserts no speed: it measures."""

from __future__ import annotations

import argparse
import datetime
import logging
import sys
from pathlib import Path

from nerveseg.engines import extras, interrupts
from nerveseg.engines.errors import UserError
from nerveseg.realtime import config as cfg
from nerveseg.realtime.replay_cli import add_engine_arguments, overrides
from nerveseg.realtime.sources import video_file_arg

log = logging.getLogger(__name__)
MODES = ("naive", "sequential", "bare", "replay", "single", "live", "costs", "formats", "soak", "scaling",
         "steadiness", "4k")
ROUND_MODES = ("naive", "sequential", "bare", "replay", "single")  # interleaved per round, median round kept
DEFAULT_SINGLE = "samples/models/gate_seg.onnx"
DEFAULT_MODES = "naive,sequential,bare,replay,single,live,costs,formats"
DEFAULT_VIDEO = "samples/stereo_sample.mp4"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("video", nargs="?", default=DEFAULT_VIDEO, type=video_file_arg,
                        help=f"video to run on (default {DEFAULT_VIDEO})")
    add_engine_arguments(parser)
    parser.add_argument("--gate-pt", type=Path, help="torch checkpoint of the gate (naive loop, torch format); "
                                                     "default: the gate engine's path with .pt")
    parser.add_argument("--seg-pt", type=Path, help="torch checkpoint of the segmenter (default: likewise)")
    parser.add_argument("--modes", default=DEFAULT_MODES,
                        help=f"comma-separated, of {', '.join(MODES)} (default {DEFAULT_MODES}; soak and "
                             f"scaling take minutes)")
    parser.add_argument("--single", type=Path,
                        help="single engine (task gate_segment: gate and mask in one forward) for the 'single' "
                             f"mode, run bare and as a replay beside the two engines (default {DEFAULT_SINGLE})")
    parser.add_argument("--rounds", type=int, default=1,
                        help="run naive, bare and replay this many times, interleaved, and report the "
                             "median round: on a shared machine, load moves between modes otherwise")
    parser.add_argument("--soak", type=int, default=10000, help="frames in the soak replay (memory growth)")
    parser.add_argument("--soak-fps", type=float, default=0.0,
                        help="offer the soak's frames live at this rate (newest-frame policy, passthrough: the "
                             "delay a surgeon gets); 0: a replay as fast as possible (default)")
    parser.add_argument("--sizes", default="224,320,512", help="input sizes for the scaling mode")
    parser.add_argument("--backends", default="torch,onnxruntime,openvino,int8,tensorrt",
                        help="formats to compare (torch, onnxruntime, openvino, int8: INT8 files made now by "
                             "`nerveseg quantize` on the video and run by the CPU runtimes listed, tensorrt); "
                             "missing ones say why")
    parser.add_argument("--format-replay", action="store_true",
                        help="formats mode: also replay the video end to end with each format's engines "
                             "(FPS side by side in the run)")
    parser.add_argument("--input-size", type=int, help="engine input size: re-export the checkpoints at this size")
    parser.add_argument("--frames", type=int, default=300, help="frames decoded into memory for bare/live/costs")
    parser.add_argument("--live-fps", default="30,60", help="source frame rates for the live mode")
    parser.add_argument("--uhd-video", type=Path, help="3840x2160 side-by-side video for the 4k mode (default: "
                                                       "synthesised once into --out as uhd_sample.mp4)")
    parser.add_argument("--uhd-card-frames", type=int, default=150, metavar="N",
                        help="4k mode: frames of the video held in memory for the capture-card rows (12 MB "
                             "each at 4K), offered twice over")
    parser.add_argument("--perturb", type=float, default=0.0,
                        help="steadiness mode: make the video's frames flicker first (exposure, noise, blur; "
                             "0 = as recorded, 1 = strong), the same frames for both variants")
    parser.add_argument("--screen", choices=("qt", "subscriber"), default="qt",
                        help="live mode: where a frame counts as shown: the end of the Qt view's paint "
                             "(offscreen without a display; the default) or the hand-off to the view")
    parser.add_argument("--test-set", type=Path, help="folder with classify/ and segment/ (default: a held-out "
                                                      "synthetic set made now)")
    parser.add_argument("--splits", type=Path, help="split lists (classify/test.txt, segment/test.txt) in --test-set")
    parser.add_argument("--test-domain", choices=("classic", "wide", "target"), default="classic",
                        help="the synthetic world of the held-out set made when --test-set is not given: the "
                             "one the engines were trained in (default classic, the shipped engines')")
    parser.add_argument("--min-accuracy", type=float, help="fail (exit 1) when a format's gate accuracy is below")
    parser.add_argument("--min-iou", type=float, help="fail (exit 1) when a format's nerve IoU is below")
    parser.add_argument("--out", type=Path, default=Path("runs/bench"), help="output folder (default runs/bench)")
    parser.add_argument("--update-docs", type=Path, nargs="?", const=Path("docs/BENCHMARKS.md"),
                        help="write the figures into this markdown file (default docs/BENCHMARKS.md)")


def _modes(text: str) -> list[str]:
    modes = [m.strip() for m in text.split(",") if m.strip()]
    unknown = sorted(set(modes) - set(MODES))
    if unknown:
        raise UserError(f"--modes: unknown {', '.join(unknown)}; choose from {', '.join(MODES)}")
    return modes


def _checkpoint(given: Path | None, engine: str) -> Path | None:
    path = given or Path(engine).with_suffix(".pt")
    return path if path.is_file() else None


def run(args: argparse.Namespace) -> int:
    """0 measured, 1 a format below its floor, 130 interrupted (bench.json INCOMPLETE)."""
    from nerveseg.commands import bench
    from nerveseg.commands.bench import modes, report
    from nerveseg.commands.bench.memory_source import decode_frames
    from nerveseg.realtime.pipeline import Engines

    modes_wanted = _modes(args.modes)
    video = Path(args.video)
    args.out.mkdir(parents=True, exist_ok=True)
    config = cfg.load(args.config, overrides(args))
    config = _resize_engines(config, args) if args.input_size else config
    engines = Engines.load(config)
    frames, fps = decode_frames(video, args.frames)
    if not frames:
        raise UserError(f"{video}: no decodable frames")
    results: dict = {"status": "INCOMPLETE", "reason": STARTED, "modes": modes_wanted, "measured": [],
                     "date": datetime.datetime.now().isoformat(timespec="seconds"), "video": str(video),
                     "frames": len(frames), "input_size": list(engines.gate.input_size), "skip": modes.SKIP,
                     "engines": engines.provenance(), "machine": report.machine(), "doc": bench.__doc__}
    report.write_json(results, args.out / "bench.json")  # until the whole run replaces it
    try:
        _measure(args, results, modes_wanted, video, frames, config, engines)
    except (Exception, KeyboardInterrupt) as exc:
        # What was measured is kept, marked INCOMPLETE: no ratio, no docs, no verdict.
        with interrupts.deferred_signals() as held:
            results["reason"] = interrupts.stop_reason(exc)
            report.write_json(results, args.out / "bench.json")
            held.clear()
        print(f"nerveseg bench: INCOMPLETE ({results['reason']}); measured: "
              f"{', '.join(results['measured']) or 'nothing'}; {args.out / 'bench.json'}", file=sys.stderr)
        raise
    interrupts.check_stop()
    results.update(status="complete", reason=None)
    results["ratios"] = report.ratios(results)
    return _finish(results, args)


STARTED = "still running, or stopped without a chance to say so (killed, crashed)"


def _measure(args, results: dict, modes_wanted: list[str], video: Path, frames, config, engines) -> None:
    """Every wanted mode into ``results``, each named in ``results["measured"]`` once done."""
    from .bench import modes
    from .bench.costs import stage_costs

    gate_pt, seg_pt = _checkpoint(args.gate_pt, config.gate.engine), _checkpoint(args.seg_pt, config.segment.engine)
    rounds_modes = [m for m in modes_wanted if m in ROUND_MODES]
    single = _single_engines(args, config) if "single" in rounds_modes else None
    keys = [k for m in rounds_modes for k in (("single_bare", "single_replay") if m == "single" else (m,))]
    collected: dict[str, list[dict]] = {k: [] for k in keys}
    for round_ in range(args.rounds):
        for mode in rounds_modes:
            log.info("bench: %s (round %d of %d)", mode, round_ + 1, args.rounds)
            if mode == "naive":
                collected[mode].append(_unless_missing(lambda: _naive(video, gate_pt, seg_pt, config,
                                                                      args.out / "naive.avi")))
            elif mode == "sequential":
                collected[mode].append(modes.sequential(video, engines.gate, engines.segment, config,
                                                        args.out / "sequential.avi"))
            elif mode == "bare":
                collected[mode].append(modes.bare(frames, engines.gate, engines.segment, config))
            elif mode == "replay":
                collected[mode].append(modes.replay(video, engines, config, args.out / "replay.avi"))
            elif isinstance(single, str):
                collected["single_bare"].append({"skipped": single})
                collected["single_replay"].append({"skipped": single})
            else:
                collected["single_bare"].append(modes.bare(frames, single.gate, single.segment, config))
                collected["single_replay"].append(modes.replay(video, single, config, args.out / "single.avi"))
            interrupts.check_stop()  # a replay ends early on a stop and returns what it had
    for key, runs in collected.items():
        results[key] = _median_round(runs)
    results["measured"] += rounds_modes
    if single is not None and not isinstance(single, str):
        results["single_engine"] = single.provenance()["gate"]
    for mode in [m for m in modes_wanted if m not in ROUND_MODES]:
        log.info("bench: %s", mode)
        if mode == "live":
            # Side by side in one run: the picture straight to the screen, and each frame
            # waiting for its own mask (docs/LIVE.md).
            results["live"] = _live_rows(frames, engines, config, args)
        elif mode == "costs":
            results["costs"] = stage_costs(video, frames, engines, config)
        elif mode == "formats":
            results["formats"], results["test_set"] = _unless_missing(
                lambda: _formats(args, config, gate_pt, seg_pt),
                lambda why: ([{"format": "every format", "backend": "", "precision": None, "skipped": why}], ""))
        elif mode == "soak":
            results["soak"] = modes.soak(frames, engines, config, args.soak, args.out / "soak.avi",
                                         fps=args.soak_fps)
        elif mode == "scaling":
            results["scaling"] = _scaling(frames, args)
        elif mode == "steadiness":
            results["steadiness"] = _steadiness(video, config, engines, args.perturb)
        elif mode == "4k":
            results["4k"] = _unless_missing(lambda: _uhd(args, config, engines))
        interrupts.check_stop()
        results["measured"].append(mode)


def _uhd(args, config, engines) -> dict:
    from .bench import uhd

    return uhd.measure(uhd.uhd_video(args.out, args.uhd_video), engines, config, args.screen,
                       card_frames=args.uhd_card_frames)


def _steadiness(video: Path, config, engines, perturb: float = 0.0) -> dict:
    """The steady overlay off, as configured (or the preset), scored on ``video``'s ground
    truth (``VIDEO.gt/``: docs/VALIDATION.md); a video without one is said, not guessed."""
    from nerveseg.realtime.steady import PRESET, SteadyConfig

    from .bench.steadiness import steadiness
    from .validation.groundtruth import find_video_truth

    truth = find_video_truth(video, engines.gate.classes)
    if truth is None:
        return {"skipped": f"{video}: no ground truth beside it ({video.stem}.gt/)"}
    steady = config.steady if not config.steady.off else PRESET
    return steadiness(config, engines, video, truth, {"off": SteadyConfig(), "steady": steady}, perturb)


def _unless_missing(work, skipped=lambda why: {"skipped": why}):
    """``work()``, or, when it needs an extra this install lacks (the runtime install has
    no torch), ``skipped(why)``: bench runs every mode it can and names the others."""
    try:
        return work()
    except ImportError as exc:
        why = extras.missing_extra(exc)
        if why is None:
            raise
        return skipped(why)


def skipped_modes(results: dict) -> list[str]:
    """One line per mode (or format) that was not measured, with why."""
    lines = []
    for key, value in results.items():
        rows = value if isinstance(value, list) else [value]
        for row in rows:
            if isinstance(row, dict) and row.get("skipped"):
                name = f"{key} {row['format']}" if "format" in row else key
                lines.append(f"{name}: {row['skipped']}")
    return lines


def _single_engines(args, config):
    """The single gate_segment engine as both engines, or a line saying why the mode is skipped."""
    import dataclasses

    from nerveseg.engines.metadata import EngineError

    from nerveseg.realtime.pipeline import Engines

    path = args.single or Path(DEFAULT_SINGLE)
    if not path.is_file():
        return f"{path}: no single engine (train one with 'nerveseg train gate-seg', export it)"
    single_config = dataclasses.replace(config, gate=dataclasses.replace(config.gate, engine=str(path)))
    try:
        engines = Engines.load(single_config)
    except EngineError as exc:
        return str(exc)
    if engines.gate.meta.task != "gate_segment":
        return f"{path}: task {engines.gate.meta.task!r}, expected 'gate_segment' (gate and mask in one engine)"
    return engines


def _median_round(rounds: list[dict]) -> dict:
    """The round with the median FPS, with every round's FPS beside it."""
    measured = [r for r in rounds if r.get("fps")]
    if not measured:
        return rounds[0]
    chosen = sorted(measured, key=lambda r: r["fps"])[len(measured) // 2]
    return {**chosen, "fps_rounds": [r["fps"] for r in measured]} if len(measured) > 1 else chosen


def _live_rows(frames, engines, config, args) -> list[dict]:
    """Per rate, side by side: passthrough as configured (inference below the display path),
    passthrough with inference not lowered, and per-frame. Lowering an engine's worker
    threads cannot be undone without privileges, so the rows that must not be lowered run
    on a second load of the same engines."""
    from nerveseg.realtime.pipeline import Engines

    from .bench import modes

    plain = Engines.load(config) if config.display.inference_nice else engines
    rows = []
    for rate in _rates(args.live_fps):
        for display, nice, pair in (("passthrough", None, engines), ("passthrough", 0, plain),
                                    ("per-frame", None, plain)):
            if nice == 0 and not config.display.inference_nice:
                continue  # the configured row is this one already
            rows.append(modes.live(frames, rate, pair, config, display=display, screen=args.screen,
                                   inference_nice=nice))
    return rows


def _scaling(frames, args) -> dict:
    try:
        import torch  # noqa: F401  (only to say why the mode is skipped without it)
    except ImportError:
        return {"skipped": "needs the train extra (torch) to build and export the backbones"}
    from nerveseg.commands.bench.scaling import scaling, scaling_table

    sizes = tuple(int(v) for v in args.sizes.split(",") if v.strip())
    rows = scaling(frames, sizes=sizes, threads=args.threads or 0)
    return {"rows": rows, "markdown": scaling_table(rows)}


def _naive(video: Path, gate_pt: Path | None, seg_pt: Path | None, config, out: Path) -> dict:
    from nerveseg.engines.loader import load_engine
    from nerveseg.engines.metadata import EngineError

    from nerveseg.commands.bench import modes

    if gate_pt is None or seg_pt is None:
        return {"skipped": "no torch checkpoints (--gate-pt/--seg-pt, or .pt beside the engines)"}
    try:
        gate = load_engine(gate_pt, "torch", task="classify")
        seg = load_engine(seg_pt, "torch", task="segment")
    except EngineError as exc:
        return {"skipped": str(exc)}
    return modes.naive(video, gate, seg, config, out)


def _formats(args, config, gate_pt, seg_pt) -> tuple[list[dict], str]:
    from nerveseg.commands.bench import formats

    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    data, described = formats.held_out_set(args.test_set, domain=args.test_domain)
    gate, seg = Path(config.gate.engine), Path(config.segment.engine)
    int8 = formats.int8_engines(gate, seg, Path(args.video), args.out, data, described) if "int8" in backends else None
    replay = _format_replay(args, config) if args.format_replay else None
    rows = [formats.measure(f, data, args.splits, replay)
            for f in formats.candidate_formats(gate, seg, gate_pt, seg_pt, backends, int8)]
    return formats.relative(rows), described


def _format_replay(args, config):
    """``(gate, seg, slug) -> dict``: the replay mode with a format's engines."""
    from nerveseg.commands.bench import modes
    from nerveseg.realtime.pipeline import Engines

    return lambda gate, seg, slug: modes.replay(Path(args.video), Engines(gate, seg), config,
                                                args.out / f"replay_{slug}.avi")


def _rates(text: str) -> list[float]:
    try:
        return [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise UserError(f"--live-fps {text!r}: expected numbers like 30,60") from None


def _resize_engines(config, args):
    """Engines re-exported from the checkpoints at ``--input-size``, in the output folder."""
    import dataclasses

    from nerveseg.training.exporters import export

    size = args.input_size
    paths = {}
    for part, engine in (("gate", config.gate.engine), ("segment", config.segment.engine)):
        checkpoint = _checkpoint(args.gate_pt if part == "gate" else args.seg_pt, engine)
        if checkpoint is None:
            raise UserError(f"{engine}: --input-size {size} needs the torch checkpoint beside it (.pt)")
        paths[part] = args.out / f"{part}_{size}.onnx"
        export(checkpoint, paths[part], input_size=(size, size))
    return dataclasses.replace(config, gate=dataclasses.replace(config.gate, engine=str(paths["gate"])),
                               segment=dataclasses.replace(config.segment, engine=str(paths["segment"])))


def _finish(results: dict, args) -> int:
    from nerveseg.commands.bench import formats, report

    report.write_json(results, args.out / "bench.json")
    png = report.latency_png(results, args.out / "latency.png")
    print(report.table(results))
    for line in skipped_modes(results):
        print(f"nerveseg bench: skipped {line}", file=sys.stderr)
    print(f"wrote {args.out / 'bench.json'}" + (f", {png}" if png else ""))
    if args.update_docs:
        report.update_docs(results, args.update_docs)
        print(f"updated {args.update_docs}")
    failures = formats.failing(results.get("formats", []), args.min_accuracy, args.min_iou)
    for line in failures:
        print(f"nerveseg bench: below the floor: {line}")
    return 1 if failures else 0
