"""Each stage's CPU time per frame, measured alone: where the CPU goes, not a bound.

Each stage runs over the same frames with the pipeline's own operators and thread
settings, after a warm-up pass (first calls allocate, fill caches and spin up the
engines' thread pools). Process CPU time (``time.process_time``) counts the engines' own
worker threads and the codec threads. A stage alone is not the stage in the pipeline
(idle engine threads spin, caches differ), so their sum is *no* bound on the replay: an
earlier bench divided the replay FPS by ``cores / Σ`` of these and printed efficiencies
of 1.2-1.4. The bound and the efficiency come from the replay's own CPU and wall clocks
(:func:`.modes.machine_use`), where the efficiency cannot exceed 1.
"""

from __future__ import annotations

import os
import tempfile
import threading
import time
from pathlib import Path
from typing import Callable

import numpy as np

from nerveseg.realtime.config import PipelineConfig
from nerveseg.realtime.frames import Frame
from nerveseg.realtime.pipeline import Engines
from nerveseg.realtime.sinks import AviRecorder
from nerveseg.realtime.overlay_op import OverlayOp
from nerveseg.realtime.stages import GateOp, SegmentOp
from nerveseg.realtime.sources import VideoFileSource


def cpu_ms(work: Callable[[], int]) -> float:
    """CPU milliseconds of this process per item for ``work()``, which returns the item count."""
    t0 = time.process_time()
    n = work()
    return 1000 * (time.process_time() - t0) / max(n, 1)


def _decode(video: Path, limit: int) -> int:
    stop, n = threading.Event(), 0
    for _ in VideoFileSource(video).frames(stop):
        n += 1
        if n >= limit:
            stop.set()
            break
    return n


def _each(op, items: list, out: list) -> int:
    for item in items:
        out.append(op.process(item))
    return len(items)


def _encode(rendered: list, config: PipelineConfig) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        recorder = AviRecorder(Path(tmp) / "costs.avi", 30.0, config.record.codec, config.record.quality)
        for r in rendered:
            recorder.write(r.image)
        recorder.close()
    return len(rendered)


def stage_costs(video: Path, frames: list[np.ndarray], engines: Engines, config: PipelineConfig,
                cores: int | None = None) -> dict:
    """CPU ms per frame of decode, preprocess, gate, segment, overlay and encode, each
    run alone over the same frames with the pipeline's own operators and thread settings."""
    cores = cores or os.cpu_count() or 1
    gate = GateOp(engines.gate, config.preprocess, config.gate.nerve_class, config.gate.min_confidence)
    segment = SegmentOp(engines.segment, config.segment.threshold, nerve_class=config.gate.nerve_class)
    overlay = OverlayOp(config.overlay)
    records = [Frame(i, 0, image) for i, image in enumerate(frames)]
    _warm_up(records[:WARM], gate, segment, overlay)
    gated, segmented, rendered = [], [], []
    costs = {"decode": cpu_ms(lambda: _decode(video, len(frames))),
             "preprocess": cpu_ms(lambda: sum(1 for f in records if gate.preprocess(f.image)))}
    # GateOp times preprocess and gate together; the gate alone is the difference.
    costs["gate"] = max(cpu_ms(lambda: _each(gate, records, gated)) - costs["preprocess"], 0.0)
    costs["segment"] = cpu_ms(lambda: _each(segment, gated, segmented))
    costs["overlay"] = cpu_ms(lambda: _each(overlay, segmented, rendered))
    costs["encode"] = cpu_ms(lambda: _encode(rendered, config))
    total = sum(costs.values())
    return {"cpu_ms_per_frame": {k: round(v, 3) for k, v in costs.items()}, "total_cpu_ms": round(total, 3),
            "cores": cores, "warm_up_frames": min(WARM, len(records)),
            "nerve_fraction": round(sum(1 for g in gated if g.is_nerve) / max(len(gated), 1), 3),
            "note": "each stage alone over the same frames, warm; segment runs on the frames the gate calls "
                    "nerve. Where the CPU goes, not a bound: the bound is the replay's own (bench.json replay)"}


WARM = 10  # frames each operator handles before it is timed


def _warm_up(records: list, gate, segment, overlay) -> None:
    for record in records:
        overlay.process(segment.process(gate.process(record)))
