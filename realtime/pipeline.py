"""Where a frame goes: the one function that builds and wires the pipeline.

    source ─▶ gate (preprocess + classify) ─▶ segment ─▶ overlay ─┬▶ record ─▶ log
                                                                 └▶ subscribers (live view)

Replay (files, tests) uses ``BLOCK`` on every edge: every frame, in order. Live sources
put a one-slot ``DROP_OLDEST`` edge after the source, so inference always takes the
newest frame and the drops are counted. Subscribers (the Qt view) sit on a
``DROP_OLDEST`` edge of their own: a slow screen never slows the recording.
"""

from __future__ import annotations

import json
import logging
import platform
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from nerveseg.engines.base import Engine
from nerveseg.engines.loader import load_engine

from .config import PipelineConfig, to_dict
from .frames import Rendered, now_ns
from .graph import Pipeline, Policy
from .sinks import AviRecorder, LogOp, RecorderOp, SubscriberOp, check_writable
from .sources import Source, open_source
from .stages import GateOp, OverlayOp, SegmentOp, SourceOp

log = logging.getLogger(__name__)


@dataclass
class Engines:
    gate: Engine
    segment: Engine

    @classmethod
    def load(cls, config: PipelineConfig) -> "Engines":
        gate = load_engine(config.gate.engine, config.gate.backend, task="classify", threads=config.gate.threads)
        seg = load_engine(config.segment.engine, config.segment.backend, task="segment",
                          threads=config.segment.threads)
        return cls(gate, seg)

    def provenance(self) -> dict:
        return {"gate": self.gate.provenance.to_dict(), "segment": self.segment.provenance.to_dict()}


class NervePipeline:
    """A built, wired pipeline. ``start()`` then ``wait()``; ``stop()`` ends a live run."""

    def __init__(self, config: PipelineConfig, source: Source | None = None, engines: Engines | None = None):
        self.config = config
        self.source = source or open_source(config.source.spec, pace=config.source.pace)
        self.engines = engines or Engines.load(config)
        self.live = self.source.live if config.source.live is None else config.source.live
        self.provenance = self.engines.provenance()
        self.outputs = self._outputs()
        self.graph, self.ops = self.compose()
        self.started_unix = None

    def _outputs(self) -> dict[str, Path | None]:
        rec = Path(self.config.record.path) if self.config.record.path else None
        csv_path = self.config.log.csv or (rec.with_suffix(".csv") if rec else None)
        summary = self.config.log.summary or (rec.with_suffix(".json") if rec else None)
        outputs = {"avi": rec, "csv": Path(csv_path) if csv_path else None,
                   "summary": Path(summary) if summary else None}
        for path in outputs.values():
            if path is not None:
                check_writable(path)
        return outputs

    def compose(self) -> tuple[Pipeline, dict]:
        c = self.config
        source = SourceOp(self.source)
        gate = GateOp(self.engines.gate, c.preprocess, c.gate.nerve_class, c.gate.min_confidence)
        segment = SegmentOp(self.engines.segment, c.segment.threshold)
        overlay = OverlayOp(c.overlay)
        log_op = LogOp(self.outputs["csv"], self.provenance)
        subscribers = SubscriberOp()
        ops = {"source": source, "gate": gate, "segment": segment, "overlay": overlay, "log": log_op,
               "subscribers": subscribers}

        p = Pipeline("nerveseg")
        q = c.queue_capacity
        if self.live:
            gate.inbox = p.connect(source, gate, capacity=1, policy=Policy.DROP_OLDEST)
        else:
            gate.inbox = p.connect(source, gate, capacity=q, policy=Policy.BLOCK)
        p.connect(gate, segment, capacity=q, policy=Policy.BLOCK)
        p.connect(segment, overlay, capacity=q, policy=Policy.BLOCK)
        if self.outputs["avi"] is not None:
            ops["record"] = RecorderOp(self._recorder())
            p.connect(overlay, ops["record"], capacity=q, policy=Policy.BLOCK)
            p.connect(ops["record"], log_op, capacity=q, policy=Policy.BLOCK)
        else:
            p.connect(overlay, log_op, capacity=q, policy=Policy.BLOCK)
        p.connect(overlay, subscribers, capacity=2, policy=Policy.DROP_OLDEST)
        return p, ops

    def _recorder(self) -> AviRecorder:
        c = self.config.record
        meta = {"comment": json.dumps({"nerveseg": self.provenance}, separators=(",", ":")),
                "title": f"nerveseg annotated {Path(self.source.name).name}"}
        return AviRecorder(self.outputs["avi"], self.source.fps, c.codec, c.quality, meta)

    def subscribe(self, callback: Callable[[Rendered], None]) -> None:
        self.ops["subscribers"].subscribe(callback)

    def start(self) -> "NervePipeline":
        for engine in (self.engines.gate, self.engines.segment):
            engine.warmup()
        self.started_unix = time.time()
        self.ops["log"].t0_ns = now_ns()
        self.graph.start()
        return self

    def stop(self) -> None:
        self.graph.stop()

    def wait(self, timeout: float | None = None) -> bool:
        return self.graph.wait(timeout)

    def run(self) -> dict:
        """Start, wait for the source to end, write the summary and return it."""
        self.start()
        try:
            while not self.wait(0.2):
                pass
        except KeyboardInterrupt:
            self.stop()
            self.wait(5.0)
        return self.finish()

    def summary(self) -> dict:
        stats = self.ops["log"].stats.summary()
        return {
            "nerveseg": {"engines": self.provenance, "config": to_dict(self.config)},
            "source": self.source.describe(),
            "mode": "live" if self.live else "replay",
            "outputs": {k: str(v) for k, v in self.outputs.items() if v is not None},
            "recorded_frames": self.ops["record"].recorder.frames if "record" in self.ops else 0,
            "stage_errors": dict(self.graph.item_errors),
            "errors": [f"{name}: {exc}" for name, exc in self.graph.errors],
            "channels": {ch.name: {"dropped": ch.dropped, "high_water": ch.high_water}
                         for ch in self.graph.channels},
            "machine": {"python": platform.python_version(), "platform": platform.platform(),
                        "processor": platform.processor() or platform.machine()},
            "started_unix": self.started_unix,
            **stats,
        }

    def finish(self) -> dict:
        summary = self.summary()
        path = self.outputs["summary"]
        if path is not None:
            path.write_text(json.dumps(summary, indent=2, default=str))
        return summary
