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
from nerveseg.realtime.frames import now_ns
from nerveseg.realtime.pipeline import Engines, NervePipeline
from nerveseg.realtime.sources.file import VideoFileSource
from nerveseg.realtime.stats import describe

from .modes import trimmed

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


def paced(video: Path, engines: Engines, config: PipelineConfig) -> dict:
    """The file played live at its frame rate (newest-frame policy, nothing recorded):
    drops, annotation delay (capture → a frame with its mask shown), the source's
    achieved rate, and each stage's time."""
    source = VideoFileSource(video, pace=True)
    config = dataclasses.replace(config, source=dataclasses.replace(config.source, live=True),
                                 record=dataclasses.replace(config.record, path=None))
    pipeline = NervePipeline(config, source=source, engines=engines)
    shown: list[tuple[int, int, bool]] = []  # (index, delay_ns, has_mask)
    pipeline.subscribe(lambda r: shown.append((r.index, now_ns() - r.frame.captured_ns, r.seg.mask is not None)))
    start = time.perf_counter()
    summary = pipeline.run()
    elapsed = time.perf_counter() - start
    kept = trimmed(shown)
    annotation = [d / 1e6 for _, d, m in kept if m]
    offered = source.frame_count or summary["frames"]
    return {"what": f"{source.size[1]}x{source.size[0]} file served live at {source.fps:g} FPS (paced source)",
            "video": str(video), "size": list(source.size), "fps_offered": source.fps, "offered": offered,
            "processed": summary["frames"], "shown": len(shown), "dropped": summary["dropped"],
            "dropped_fraction": round(1 - len(shown) / offered, 4) if offered else None,
            "source_fps": round(summary["frames"] / elapsed, 2) if elapsed else None,
            "video_delay_ms": describe([d / 1e6 for _, d, _ in kept]), "annotation_delay_ms": describe(annotation),
            "stages_ms": summary["stages_ms"], "note": summary["note"]}


def lines(result: dict) -> list[str]:
    """The report's lines for the mode."""
    if "skipped" in result:
        return [f"4k skipped: {result['skipped']}"]
    a, v = result["annotation_delay_ms"], result["video_delay_ms"]
    stages = ", ".join(f"{k} {s.get('p50', 0):.1f}" for k, s in result["stages_ms"].items() if isinstance(s, dict))
    return [f"4k {result['what']}: {result['shown']} of {result['offered']} shown "
            f"(dropped fraction {result['dropped_fraction']}), source {result['source_fps']} FPS; "
            f"annotation delay p50 {a.get('p50')} p99 {a.get('p99')} ms; video delay p99 {v.get('p99')} ms",
            f"4k stage p50 ms: {stages}"]
