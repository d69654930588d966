"""``bench --modes 4k``: a 3840×2160 side-by-side video served live at its own frame rate.

Unlike the ``live`` mode (pre-decoded frames from memory), the frames here come from the
file through the real source, paced at the file's rate: at 4K a decoded RGB frame is
25 MB, so decoding (and its RGB conversion) is part of the per-frame work under test, and
holding the clip in memory is not an option. The video is made once by ``nerveseg synth
video --video-size 3840x2160`` into the bench folder (it is not shipped: ~3.5 MB a second).
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

from nerveseg.engines.errors import UserError
from nerveseg.realtime.config import PipelineConfig
from nerveseg.realtime.pipeline import Engines, NervePipeline
from nerveseg.realtime.sources.file import VideoFileSource

UHD = (2160, 3840)


def uhd_video(out: Path, given: Path | None, seconds: float = 3.0) -> Path:
    """``given`` (any 4K side-by-side file), or ``out/uhd_sample.mp4``, synthesised once
    (the training package's generator: the ``train`` extra)."""
    if given is not None:
        if not given.is_file():
            raise UserError(f"{given}: --uhd-video not found")
        return given
    path = out / "uhd_sample.mp4"
    if not path.is_file():
        from nerveseg.training.synth import write_video

        write_video(path, seconds=seconds, fps=30, size=UHD, progress=False)
    return path


def paced(video: Path, engines: Engines, config: PipelineConfig, screen: str = "qt") -> dict:
    """The file played live at its frame rate (newest-frame policy, the configured display
    mode, nothing recorded), measured as the ``live`` mode and ``nerveseg validate`` measure:
    frames shown and dropped, the rates of frames shown and of frames inference took, video
    and annotation delay (capture
    → painted on ``screen``), and each stage's time."""
    from ..validation.delays import delay_report
    from ..validation.display import make_probe

    source = VideoFileSource(video, pace=True)
    config = dataclasses.replace(config, source=dataclasses.replace(config.source, live=True),
                                 record=dataclasses.replace(config.record, path=None))
    pipeline = NervePipeline(config, source=source, engines=engines)
    probe = make_probe(screen)
    start = time.perf_counter()
    try:
        probe.attach(pipeline)
        probe.drive(pipeline, lambda: None, deadline_s=3 * source.frame_count / source.fps + 60)
        shown, layers = probe.shown(), probe.layers_shown() if pipeline.passthrough else None
    finally:
        probe.close()
    elapsed = time.perf_counter() - start
    summary = pipeline.summary()
    report = delay_report(shown, source.fps, {}, layers)
    offered = source.frame_count or summary["frames"]
    return {"what": f"{source.size[1]}x{source.size[0]} file served live at {source.fps:g} FPS (paced source)",
            "video": str(video), "size": list(source.size), "display": report["display_mode"],
            "fps_offered": source.fps, "offered": offered, "processed": summary["frames"], "shown": len(shown),
            "shown_with_mask": report["frames"]["shown_with_mask"],
            "dropped": summary["dropped"], "dropped_fraction": round(1 - len(shown) / offered, 4) if offered else None,
            # frames inference took, and frames painted, per second of the run (the file
            # holds a few seconds: warm-up and tear-down are in the second)
            "inference_fps": round(summary["frames"] / elapsed, 2) if elapsed else None,
            "shown_fps": round(len(shown) / elapsed, 2) if elapsed else None,
            "video_delay_ms": report["video"]["stats"], "annotation_delay_ms": report["annotation"]["stats"],
            "stages_ms": summary["stages_ms"], "note": summary["note"]}


def lines(result: dict) -> list[str]:
    """The report's lines for the mode."""
    if "skipped" in result:
        return [f"4k skipped: {result['skipped']}"]
    a, v = result["annotation_delay_ms"] or {}, result["video_delay_ms"] or {}
    stages = ", ".join(f"{k} {s.get('p50', 0):.1f}" for k, s in result["stages_ms"].items() if isinstance(s, dict))
    return [f"4k {result['what']}, {result['display']} display: {result['shown']} of {result['offered']} shown "
            f"({result['shown_with_mask']} with a mask) "
            f"(dropped fraction {result['dropped_fraction']}), shown {result['shown_fps']} FPS, "
            f"inference {result['inference_fps']} FPS; "
            f"annotation delay p50 {a.get('p50')} p99 {a.get('p99')} ms; video delay p99 {v.get('p99')} ms",
            f"4k stage p50 ms: {stages}"]
