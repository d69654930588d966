"""The two pipeline runs behind the report.

* :func:`every_frame_pass`: the file replayed frame by frame (``BLOCK`` on every edge),
  the pipeline's own recorder writing the configured codec and a lossless ffv1 twin of
  the same frames, and a validation tap on a ``BLOCK`` edge after the overlay that sees
  every rendered frame (pixel checks, ground-truth score). Not timed.
* :func:`real_time_pass`: the file played at its frame rate as a camera would deliver it
  (paced, newest-frame policy), recording as in theatre, with the display probe on the
  view's subscriber edge. Timed, and nothing else runs on the frames.

Both are a plain :class:`NervePipeline`: the tap is one of its ``taps`` (its own
``BLOCK`` edge from the overlay), and the recorder is handed its recording before start.
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import Callable

from tqdm import tqdm

from nerveseg.realtime.config import PipelineConfig
from nerveseg.realtime.frames import Rendered
from nerveseg.realtime.graph import Operator
from nerveseg.realtime.pipeline import Engines, NervePipeline
from nerveseg.realtime.sinks import AviRecorder, Recording


class TapOp(Operator):
    """Hands every rendered frame to the validation checks, in display order."""

    name = "validate"

    def __init__(self, checks: list[Callable[[Rendered], None]]):
        self.checks = checks
        self.frames = 0

    def process(self, r: Rendered) -> None:
        for check in self.checks:
            check(r)
        self.frames += 1
        return None


class TwinRecorder:
    """The configured recorder and a lossless ffv1 twin, fed the same frames (what
    :class:`Recording` needs of an :class:`AviRecorder`: write, close, fits, next_segment,
    path, frames). The report compares the two frame by frame, so a video whose frame
    size changes cannot be validated in one run: that is said, not papered over."""

    def __init__(self, main: AviRecorder, lossless: AviRecorder):
        self.main, self.lossless = main, lossless

    @property
    def path(self) -> Path:
        return self.main.path

    @property
    def frames(self) -> int:
        return self.main.frames

    def write(self, image) -> None:
        self.main.write(image)
        self.lossless.write(image)

    def fits(self, image) -> bool:
        return self.main.fits(image)

    def next_segment(self, number: int) -> "TwinRecorder":
        raise ValueError(f"{self.path}: the frame size changes after frame {self.frames}; "
                         f"validate each part of the video on its own")

    def close(self) -> None:
        try:
            self.main.close()
        finally:
            self.lossless.close()


def _with_source(config: PipelineConfig, spec: str, pace: bool, live: bool) -> PipelineConfig:
    no_files = dataclasses.replace(config.log, csv=None, summary=None)
    # the configured source keys (max_height, read_ahead_ms) kept: only what and how it plays change
    source = dataclasses.replace(config.source, spec=spec, pace=pace, live=live, right=None)
    return dataclasses.replace(config, source=source,
                               record=dataclasses.replace(config.record, path=None), log=no_files)


def _progress(pipeline: NervePipeline, count: Callable[[], int], desc: str, show: bool):
    total = getattr(pipeline.source, "frame_count", None) or None
    bar = tqdm(total=total, desc=desc, unit="frame", disable=not show, file=sys.stderr)
    return bar, lambda: bar.update(count() - bar.n)


def every_frame_pass(config: PipelineConfig, engines: Engines, spec: str, checks: list, folder: Path,
                     progress: bool = True) -> tuple[dict, Path, Path]:
    """Run every frame through the pipeline with ``checks`` on the tap; returns the run's
    summary and the paths of the configured and the lossless recording."""
    tap = TapOp(checks)
    pipeline = NervePipeline(_with_source(config, spec, pace=False, live=False), engines=engines, taps=[tap])
    c, fps = config.record, pipeline.source.fps
    recorded, lossless = folder / f"validate_{c.codec}.avi", folder / "validate_lossless_ffv1.avi"
    twin = TwinRecorder(AviRecorder(recorded, fps, c.codec, c.quality), AviRecorder(lossless, fps, "ffv1"))
    pipeline.ops.record.recording = Recording(twin)
    bar, tick = _progress(pipeline, lambda: tap.frames, "every frame", progress)
    with bar:
        pipeline.start()
        while not pipeline.wait(0.25):
            tick()
        tick()
    return {**pipeline.summary(), "tapped_frames": tap.frames}, recorded, lossless


def real_time_pass(config: PipelineConfig, engines: Engines, spec: str, probe, folder: Path,
                   progress: bool = True, record: bool = True) -> dict:
    """Play the file in real time with ``probe`` on the view's edge, recording (``record``)
    as in theatre; returns the run's summary with the drop counts the delay report needs."""
    timed = _with_source(config, spec, pace=True, live=True)
    if record:
        timed = dataclasses.replace(timed, record=dataclasses.replace(timed.record, path=str(folder / "timed.avi")))
    pipeline = NervePipeline(timed, engines=engines)  # its CSV and summary land beside timed.avi
    probe.attach(pipeline)
    stats = pipeline.ops.log.stats
    bar, tick = _progress(pipeline, lambda: stats.count, "real time", progress)
    seconds = (getattr(pipeline.source, "frame_count", 0) or 1000) / pipeline.source.fps
    with bar:
        probe.drive(pipeline, tick, deadline_s=3 * seconds + 60)
    summary = pipeline.summary()
    channels = summary["channels"]
    summary["counts"] = {"source": pipeline.ops.source.received, "processed": summary["frames"],
                         "dropped_before_gate": summary["dropped"],
                         "dropped_before_view": sum(c["dropped"] for name, c in channels.items()
                                                    if name.endswith("->subscribers"))}
    return summary
