"""``nerveseg replay``: a video file or image folder to an annotated AVI, every frame."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from nerveseg.engines import outputs
from nerveseg.engines.errors import UserError
from nerveseg.engines.loader import BACKEND_CHOICES

from . import config as cfg
from .sources import source_arg
from .stages import MIN_FRAME_SIDE, one_line
from .stats import format_table


def add_engine_choice_arguments(parser: argparse.ArgumentParser) -> None:
    """The configuration, the engines, how they run and the mask threshold: every command
    that runs the gate and the segmenter (the pipeline's, and ``prelabel`` on images)."""
    parser.add_argument("--config", type=Path, help="YAML run configuration (sections per stage)")
    parser.add_argument("--gate", help=f"classifier gate engine (default {cfg.DEFAULT_GATE})")
    parser.add_argument("--seg", help=f"segmentation engine (default {cfg.DEFAULT_SEGMENTER})")
    parser.add_argument("--backend", choices=BACKEND_CHOICES,
                        help="engine backend (default: the config's, else auto; see docs/TENSORRT.md)")
    parser.add_argument("--threads", type=int, help="inference threads per engine (0: runtime's choice)")
    parser.add_argument("--threshold", type=float, help="segmentation probability threshold")


def add_engine_arguments(parser: argparse.ArgumentParser) -> None:
    """Options shared by every command that runs the pipeline."""
    add_engine_choice_arguments(parser)
    parser.add_argument("--eye", choices=["left", "right", "full"], help="which part of a stereo frame to use")
    parser.add_argument("--codec", choices=["mjpeg", "ffv1", "h264"], help="AVI codec (ffv1: lossless)")
    parser.add_argument("--max-height", type=int, metavar="ROWS",
                        help="frames taller than this are scaled down to it as they arrive (shape kept): the "
                             "display, the engines' input, the overlay and the recording work at that size "
                             "(default 0: never; a 4K source on a 1080p screen: 1080; docs/SOURCES.md)")
    parser.add_argument("--gate-every", type=int, metavar="N",
                        help="run the gate on every Nth frame only, the frames between holding its verdict "
                             "(1 to 10; default 1: every frame). Saves the gate's time on N-1 of N frames at "
                             "the cost of a label up to N-1 frames old; needs a separate segmenter")


def add_camera_arguments(parser: argparse.ArgumentParser) -> None:
    """The camera mode (``source.camera`` in the YAML), for the live commands."""
    parser.add_argument("--camera-size", metavar="WxH", help="ask the camera for this size, e.g. 1920x1080 "
                        "(default: the device's own, often 640x480 on a capture card)")
    parser.add_argument("--camera-fps", type=float, help="ask the camera for this frame rate (default: the device's)")
    parser.add_argument("--camera-format", choices=["auto", "MJPG", "YUYV", "NV12", "H264"],
                        help="pixel format to ask for (default: auto, the driver's choice)")
    parser.add_argument("--camera-api", choices=["auto", "v4l2", "dshow", "msmf", "avfoundation"],
                        help="OpenCV capture API (default: auto)")
    parser.add_argument("--right-source", metavar="SPEC", type=source_arg,
                        help="a second camera or stream for the right eye, paired with --source by capture time")
    parser.add_argument("--layout", choices=["auto", "side-by-side", "side-by-side-half", "top-bottom", "mono"],
                        help="how a frame holds the eyes (default: auto, from the frame's shape)")


def add_display_arguments(parser: argparse.ArgumentParser) -> None:
    """How the live picture is shown and recorded (``display`` and ``record.content`` in the YAML)."""
    parser.add_argument("--display", choices=["auto", "passthrough", "per-frame"],
                        help="passthrough: every frame shown at once, the overlay a layer over it; per-frame: "
                             "each frame shown with its own mask, after its inference (default: auto, "
                             "passthrough for live sources; docs/LIVE.md)")
    parser.add_argument("--fade-after-ms", type=float, help="passthrough: the overlay's age at which it starts "
                        "to fade (default 100)")
    parser.add_argument("--hide-after-ms", type=float, help="passthrough: the overlay's age at which it is "
                        "hidden (default 250)")
    parser.add_argument("--inference-nice", type=int, help="passthrough: how far the inference threads' OS "
                        "priority is lowered below the display path's, 0 to 19 (default 10; 0: not lowered)")
    parser.add_argument("--realtime-priority", type=int, help="live passthrough: run the display path's threads "
                        "(capture, show, the window's) under the real-time policy at this priority, 1 to 99, "
                        "0: off (default: auto, 10 where the account has the right to, else off; docs/LIVE.md)")
    parser.add_argument("--record-content", choices=["annotated", "as-shown"],
                        help="what a recording holds: annotated (each frame inference took, drawn with its "
                             "mask; the default) or as-shown (passthrough: every frame shown, with the overlay "
                             "as it was on screen)")


def display_overrides(args: argparse.Namespace) -> dict:
    return {"display": {"mode": args.display, "fade_after_ms": args.fade_after_ms,
                        "hide_after_ms": args.hide_after_ms, "inference_nice": args.inference_nice,
                        "realtime_priority": args.realtime_priority},
            "record": {"content": args.record_content}}


def camera_overrides(args: argparse.Namespace) -> dict:
    return {"source": {"camera": {"size": args.camera_size, "fps": args.camera_fps,
                                  "format": args.camera_format, "api": args.camera_api},
                       "right": args.right_source},
            "preprocess": {"layout": args.layout}}


def overrides(args: argparse.Namespace) -> dict:
    """CLI options as a config overlay (unset options leave the YAML/defaults alone)."""
    engine = {"backend": args.backend, "threads": args.threads}
    return {
        "gate": {"engine": args.gate, "every": getattr(args, "gate_every", None), **engine},
        "segment": {"engine": args.seg, "threshold": args.threshold, **engine},
        "preprocess": {"eye": args.eye},
        "record": {"codec": args.codec},
        "source": {"max_height": getattr(args, "max_height", None)},
    }


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("input", type=source_arg, help="video file or image folder")
    parser.add_argument("--out", required=True, type=Path,
                        help="OUT.avi: the annotated recording; OUT.mkv: the input's own video stream, copied "
                             "(not re-encoded), with a lossless mask track beside it (a video file only; "
                             "docs/SOURCES.md). CSV and JSON beside it")
    parser.add_argument("--avi", type=Path, metavar="PATH",
                        help="with --out OUT.mkv: also write the annotated AVI here")
    add_engine_arguments(parser)
    parser.add_argument("--gt", type=Path, metavar="DIR",
                        help="the video's annotations (labels.csv + masks/, as samples/stereo_sample.gt): each "
                             "frame scored (IoU, Dice, gate right/wrong) on the overlay, in the CSV and the summary")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from .pipeline import NervePipeline

    suffix = args.out.suffix.lower()
    if suffix not in (".avi", ".mkv"):
        raise UserError(f"{args.out}: the recording must be an .avi file (annotated) or an .mkv file "
                        f"(the input's stream kept, with a mask track)")
    avi = args.avi if suffix == ".mkv" else args.out
    if getattr(args, "avi", None) is not None and suffix != ".mkv":
        raise UserError(f"{args.avi}: --avi goes with --out OUT.mkv (the AVI is --out itself otherwise)")
    if avi is not None and avi.suffix.lower() != ".avi":
        raise UserError(f"{avi}: --avi must name an .avi file")
    extra = {"source": {"spec": args.input, "pace": False, "live": False},
             "record": {"path": str(avi) if avi else None}}
    if suffix == ".mkv":
        from .sinks.mask_track import check_stream_input

        check_stream_input(args.input)
        extra["log"] = {"csv": str(args.out.with_suffix(".csv")), "summary": str(args.out.with_suffix(".json"))}
    config = cfg.load(args.config, cfg.merge(overrides(args), extra))
    parts = _scored_parts(config, args.gt) if getattr(args, "gt", None) else {}
    saved_config = outputs.claim(args.out.with_suffix(".config.yaml"))  # before any output is opened
    tap = _mask_track(args.out) if suffix == ".mkv" else None
    pipeline = NervePipeline(config, taps=[tap] if tap else [], **parts)
    cfg.save(config, saved_config)
    summary = _run_with_progress(pipeline, show=not args.no_progress)
    print(format_table(summary))
    if "ground_truth" in summary:
        print(truth_table(summary["ground_truth"]))
    kept = _keep_stream(args.input, args.out, tap, pipeline, summary) if tap else None
    print(written(pipeline, summary) + (f", {args.out} ({kept})" if kept else ""))
    return exit_status("replay", pipeline, summary)


def _mask_track(out: Path):
    """The tap writing the masks for ``--out OUT.mkv`` (its path and OUT's checked now)."""
    from .sinks.common import check_writable
    from .sinks.mask_track import MaskTrackOp, partial_path

    check_writable(out)
    return MaskTrackOp(partial_path(out))


def _keep_stream(video: str, out: Path, tap, pipeline, summary: dict) -> str | None:
    """``OUT.mkv`` from the input's stream and the masks written by ``tap``; what it holds,
    for the last line (None: no mask was written, so no file)."""
    import json

    from .sinks.mask_track import keep_stream

    if not tap.frames:
        tap.path.unlink(missing_ok=True)
        return None
    meta = {"comment": json.dumps({"nerveseg": pipeline.provenance}, separators=(",", ":")),
            "title": f"nerveseg masks for {Path(video).name}"}
    try:
        copied = keep_stream(video, tap.path, out, meta, tap.box or "")
    finally:
        tap.path.unlink(missing_ok=True)
    if copied["stopped"]:  # every packet before it kept; the run's status says so
        summary["output_errors"].append(f"{out}: the input's stream copied up to a damaged part: {copied['stopped']}")
    return f"original stream: {copied['video_packets']} packets copied; mask track: {copied['mask_frames']} frames"


def _scored_parts(config: cfg.PipelineConfig, gt: Path) -> dict:
    """The source, engines and scorer of a replay scored on ``gt``, the annotations
    checked against the video before anything runs (a mismatch: UserError, exit 2)."""
    from .pipeline import Engines
    from .sources import open_source
    from .truth import TruthScorer, load_truth

    source = open_source(config.source.spec, pace=False)
    engines = Engines.load(config)
    size = getattr(source, "size", None) or _first_image_size(source)
    p = config.preprocess
    truth = load_truth(gt, engines.gate.classes, size, getattr(source, "frame_count", 0) or 0, p.layout, p.eye)
    return {"source": source, "engines": engines, "scorer": TruthScorer(truth, p.eye)}


def _first_image_size(source) -> tuple[int, int]:
    """``(H, W)`` of an image folder's first image (a video says its size when opened)."""
    import cv2

    files = getattr(source, "files", None) or []
    image = cv2.imread(str(files[0])) if files else None
    if image is None:
        raise UserError(f"{source.name}: cannot tell the frame size to check the annotations against")
    return image.shape[:2]


def truth_table(report: dict) -> str:
    """The ground-truth score in a few lines: means with their 95 % intervals."""
    def mean(m: dict) -> str:
        if m.get("mean") is None:
            return "n/a"
        ci = "" if m.get("ci_low") is None else f" (95% CI {m['ci_low']:.3f}-{m['ci_high']:.3f})"
        return f"{m['mean']:.3f}{ci}, n={m['n']}"

    return "\n".join([f"ground truth {report['folder']}: {report['scored_frames']} of "
                      f"{report['annotated_frames']} annotated frames scored",
                      f"  gate accuracy   {mean(report['gate_accuracy'])}",
                      f"  IoU             {mean(report['iou'])}",
                      f"  Dice            {mean(report['dice'])}",
                      f"  IoU (nerve)     {mean(report['iou_nerve_frames'])}"])


def written(pipeline, summary: dict) -> str:
    """The outputs that are on disk after the run, one line: never a file it did not write
    (an AVI opens at its first frame, an empty CSV is removed, a summary may fail)."""
    names = []
    for kind, path in pipeline.outputs.items():
        if path is not None and path.exists() and (kind != "avi" or summary["recorded_frames"]):
            frames = f" ({summary['recorded_frames']} frames)" if kind == "avi" else ""
            names.append(f"{path}{frames}")
    return "wrote " + ", ".join(names) if names else "wrote nothing"


def _run_with_progress(pipeline, show: bool) -> dict:
    from tqdm import tqdm

    from .pipeline import STOP_S

    total = getattr(pipeline.source, "frame_count", None) or None
    rows = pipeline.ops.log.stats
    pipeline.start()
    with tqdm(total=total, unit="frame", desc="replay", disable=not show, file=sys.stderr) as bar:
        try:
            while not pipeline.wait(0.25):
                bar.update(rows.count - bar.n)
        except KeyboardInterrupt:
            pipeline.interrupted = True
            pipeline.close(timeout=STOP_S)  # frames in flight are written, the AVI closed
        bar.update(rows.count - bar.n)
    return pipeline.finish()


def problems(pipeline, summary: dict, outputs: bool = True) -> list[str]:
    """What went wrong in a run, one line each, naming the input or the file
    (empty: nothing). ``outputs``: include outputs that stopped (already told live)."""
    source, name = pipeline.source, pipeline.source.name
    found = []
    if pipeline.graph.fatal is not None:
        found.append(f"{name}: stopped early ({one_line(pipeline.graph.fatal)})")
    # A camera's failed reads are its outages, told live as "no signal": not damage.
    small = getattr(source, "too_small", 0)
    undecodable = source.skipped - small
    damage = [f"{undecodable} undecodable frame(s) skipped"] if undecodable and not source.live else []
    if small:
        damage.append(f"{small} frame(s) smaller than {MIN_FRAME_SIDE}×{MIN_FRAME_SIDE} px skipped")
    if getattr(source, "concealed", 0):
        damage.append(f"{source.concealed} frame(s) decoded with concealed errors (kept)")
    if getattr(source, "ended_early", None):
        damage.append(f"stopped reading early: {source.ended_early}")
    if damage:
        found.append(f"{name}: damaged input: {'; '.join(damage)}")
    if summary["frames"] == 0 and pipeline.graph.fatal is None:
        # A live run with no frame at all is a failure even when stopped by hand.
        if source.live:
            found.append(f"{name}: no frame received")
        elif not pipeline.interrupted:
            found.append(f"{name}: no decodable frame")
    failed = summary["stage_errors"]
    if failed:
        where = ", ".join(f"{op} {n}" for op, n in failed.items())
        found.append(f"{name}: {sum(failed.values())} frame(s) failed ({where}): "
                     f"shown raw with a warning, status 'failed' in the CSV")
    scorer = getattr(pipeline, "scorer", None)
    if scorer is not None:
        found += scorer.run_problems(complete=not pipeline.interrupted and pipeline.graph.fatal is None,
                                     undecodable=int(getattr(source, "skipped", 0) or 0))
    return found + (summary["output_errors"] if outputs else [])


def exit_status(command: str, pipeline, summary: dict, outputs_told: bool = False) -> int:
    """Print the problems and return the exit status: 130 interrupted, 1 something went
    wrong (the outputs hold every good frame), 0 clean. ``outputs_told``: outputs that
    stopped were already printed as they happened (they still count)."""
    for problem in problems(pipeline, summary, outputs=not outputs_told):
        print(f"nerveseg {command}: error: {problem}", file=sys.stderr)
    if pipeline.interrupted:
        print(f"nerveseg {command}: interrupted; {summary['recorded_frames']} frames recorded, outputs closed",
              file=sys.stderr)
        return 130
    return 1 if problems(pipeline, summary) else 0
