"""Where a frame goes: the edge table :data:`EDGES` and the one function that wires it.

    source ─▶ gate (preprocess + classify) ─▶ segment ─▶ overlay ─┬▶ record ─▶ log
                                                                 ├▶ subscribers (live view)
                                                                 └▶ taps (validation, tests)
    watchdog (own thread): the source's state ─▶ status listeners

Live passthrough (docs/LIVE.md, the default for live sources) adds a display path that
waits for no inference: source ─▶ show ─┬▶ subscribers (the view) and ─▶ the "as shown"
recorder; the overlay posts each new layer on a :class:`~.layer.LayerBoard`, read by show
and told to the view. Live, show and the subscribers run in the capture thread (``INLINE``
edges: no hand-over between capture and the view's mailbox), so a subscriber must return
at once, as the view's one-slot :class:`~nerveseg.ui.bridge.Bridge` does. Edges name the
display modes they belong to.

Replay (files, tests) uses ``BLOCK`` on every edge: every frame, in order. Live sources
put a one-slot ``DROP_OLDEST`` edge after the source, so inference always takes the
newest frame and the drops are counted; every later edge holds one frame, so no queue
builds up in front of a slow stage, and the view is fed before the recorder, whose
edge holds a second of frames and drops its oldest beyond that. Subscribers (the Qt
view) sit on a ``DROP_OLDEST`` edge of their own: a slow screen never slows the recording.

While running, from any thread: pause/resume the source, switch eye, set the
segmenter's threshold and region, the overlay's opacity, start and stop a recording
(the methods of :class:`NervePipeline`).
"""

from __future__ import annotations

import json
import logging
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

from nerveseg.engines.base import Engine
from nerveseg.engines.loader import load_engine

from .config import PipelineConfig, to_dict
from nerveseg.engines.errors import UserError
from .events import Listeners, Notice, SourceState
from .frames import Rendered
from .graph import Operator, Graph, Policy
from .layer import Layer, LayerBoard
from .passthrough import ShowOp, as_shown
from .priority import SUPPORTED, lower_all, status, threads_started
from .sinks import AviRecorder, CsvLog, LogOp, RecorderOp, Recording, SubscriberOp, check_writable, write_summary
from .sources import Source, open_source
from .sources.base import reduced_size
from .overlay_op import OverlayOp
from .stages import GateOp, SegmentOp, SourceOp, frame_size_problem, too_small
from .stats import describe
from .steady import SteadyConfig
from .truth import TruthScorer
from .watchdog import Watchdog

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Ops:
    """The pipeline's operators, by stage. ``taps``: extra ``BLOCK`` consumers of the
    overlay's output (validation checks, tests), in the order given to ``compose``."""

    source: SourceOp
    gate: GateOp
    segment: SegmentOp
    overlay: OverlayOp
    record: RecorderOp
    log: LogOp
    subscribers: SubscriberOp
    taps: tuple[Operator, ...] = ()
    show: ShowOp | None = None  # live passthrough only (:mod:`.passthrough`)
    shown_record: RecorderOp | None = None


@dataclass(frozen=True)
class Edge:
    """One channel: ``upstream`` → ``downstream`` (fields of :class:`Ops`) with a
    ``(capacity, policy)`` for live sources and one for replay. A capacity of ``"q"`` is
    the config's ``queue_capacity``; ``"1s"`` a second of the source's frames."""

    upstream: str
    downstream: str
    live: tuple[int | str, Policy]
    replay: tuple[int | str, Policy]
    modes: tuple[str, ...] = ("per-frame", "passthrough")


BLOCK, DROP, INLINE = Policy.BLOCK, Policy.DROP_OLDEST, Policy.INLINE
# Live: latency over completeness. The newest frame enters, one waits per edge, the view
# is fed before the recorder, and a recorder more than a second behind loses its oldest
# frames (counted) rather than stall the view. Replay: every frame, in order, lossless.
# Passthrough (docs/LIVE.md): the source also feeds the display path, which waits for no
# inference; the view and the "as shown" recorder hang off it instead of the overlay.
# Live, the show and the hand-over to the view run in the capture thread itself (INLINE):
# each thread hand-over on this path was a wake-up in the video delay's tail. Live, the
# segmenter and the overlay run in the gate's thread (INLINE): one frame in inference at
# a time, gated, segmented and drawn before the gate takes the newest frame. A pipelined
# chain kept up to three frames in it, each waiting for the stage ahead: a mask's age grew
# by those waits whenever inference ran near the source's rate (docs/LIVE.md, "One frame
# in inference"). Replay keeps the pipelined chain: there every frame is wanted, and the
# stages overlap.
PASS = ("passthrough",)
EDGES: tuple[Edge, ...] = (
    Edge("source", "show", live=(0, INLINE), replay=("q", BLOCK), modes=PASS),
    Edge("source", "gate", live=(1, DROP), replay=("q", BLOCK)),
    Edge("gate", "segment", live=(0, INLINE), replay=("q", BLOCK)),
    Edge("segment", "overlay", live=(0, INLINE), replay=("q", BLOCK)),
    Edge("overlay", "subscribers", live=(2, DROP), replay=(2, DROP), modes=("per-frame",)),
    Edge("show", "subscribers", live=(0, INLINE), replay=(2, DROP), modes=PASS),
    Edge("show", "shown_record", live=("1s", DROP), replay=("q", BLOCK), modes=PASS),
    Edge("overlay", "record", live=("1s", DROP), replay=("q", BLOCK)),
    Edge("record", "log", live=("q", BLOCK), replay=("q", BLOCK)),
)


@dataclass
class Engines:
    """The gate and the segmenter. ``workers``: the native ids of the threads the engines
    started when they loaded (ONNX Runtime's intra-op pool), lowered with the inference
    operators in live passthrough (:mod:`.priority`); empty when unknown."""

    gate: Engine
    segment: Engine
    workers: set = field(default_factory=set)

    @classmethod
    def load(cls, config: PipelineConfig) -> "Engines":
        """The two engines of ``config``. A ``gate_segment`` gate segments too: it is then
        both, and the segment section is not used (one engine, one forward per frame)."""
        workers: set = set()
        with threads_started(workers):
            gate = load_engine(config.gate.engine, config.gate.backend, threads=config.gate.threads)
        if gate.meta.task == "gate_segment":
            log.info("%s gates and segments in one pass: the segment engine setting is not used",
                     config.gate.engine)
            return cls(gate, gate, workers)
        gate.meta.expect(config.gate.engine, task="classify")
        with threads_started(workers):
            seg = load_engine(config.segment.engine, config.segment.backend, threads=config.segment.threads)
        # An instance engine (Mask R-CNN) or a region-conditioned one may stand in for the segmenter.
        if seg.meta.task not in ("instance", "region_segment"):
            seg.meta.expect(config.segment.engine, task="segment")
        return cls(gate, seg, workers)

    def provenance(self) -> dict:
        return {"gate": self.gate.provenance.to_dict(), "segment": self.segment.provenance.to_dict()}


# Seconds a stop (Ctrl-C, SIGTERM, the end of --duration) waits for the frames in
# flight before it abandons a stage stuck in native code; then as long again for the
# outputs to close: the whole stop stays within 2 s (docs/RELIABILITY.md).
STOP_S = 0.8


class NervePipeline:
    """A built, wired pipeline. ``start()`` then ``wait()``; ``stop()`` ends a live run.

    ``history``: rows kept for the latency statistics (None: all; a long-running view
    keeps a window). ``signal_timeout``: seconds without a frame from a live source
    before the watchdog says "no signal". ``taps``: operators fed every rendered frame
    on a ``BLOCK`` edge of their own (validation's checks, tests). ``scorer``: a
    :class:`~.truth.TruthScorer`; the overlay scores each frame with it (panel, CSV
    columns) and the summary gets its means as ``ground_truth``."""

    def __init__(self, config: PipelineConfig, source: Source | None = None, engines: Engines | None = None,
                 history: int | None = None, signal_timeout: float = 0.5, taps: Sequence[Operator] = (),
                 scorer: TruthScorer | None = None):
        self.config = config
        self.scorer = scorer  # replay --gt (realtime/truth.py): frames scored on their annotations
        if scorer is not None:
            scorer.max_height = config.source.max_height  # its masks reduced as the frames are
        s = config.source
        self.source = source or open_source(s.spec, pace=s.pace, camera=s.camera, right=s.right,
                                            read_ahead_ms=s.read_ahead_ms)
        self.engines = engines or Engines.load(config)
        self.live = self.source.live if config.source.live is None else config.source.live
        self.passthrough = config.display.passthrough(self.live)
        self.board = LayerBoard() if self.passthrough else None
        self.as_shown = self.passthrough and config.record.content == "as-shown"
        if config.record.content == "as-shown" and not self.passthrough and config.record.path:
            log.info("%s: per-frame display: what is shown is each frame with its own mask, so the "
                     "'as shown' recording is the annotated one", self.source.name)
        size = getattr(self.source, "size", None)  # a file says its frame size when opened
        if size and too_small(size):
            raise UserError(f"{self.source.name}: {frame_size_problem(*size)}")
        self.provenance = self.engines.provenance()
        self.outputs = self._outputs()
        self.history = history
        self.notices: Listeners[Notice] = Listeners()
        self.output_errors: list[str] = []  # outputs that failed (disk full): said in the summary
        self.notices.add(self._keep_error)
        self.graph, self.ops = self.compose(taps)
        self.watchdog = Watchdog(self.ops.source, self.graph, self.live, timeout=signal_timeout)
        self.started_unix = None
        self.interrupted = False  # ended by Ctrl-C: said in the summary
        self.lowered_workers = 0  # engine worker threads lowered below the display path (passthrough)

    def _keep_error(self, notice: Notice) -> None:
        if notice.kind == "error":
            self.output_errors.append(notice.message)

    def _outputs(self) -> dict[str, Path | None]:
        rec = Path(self.config.record.path) if self.config.record.path else None
        csv_path = self.config.log.csv or (rec.with_suffix(".csv") if rec else None)
        summary = self.config.log.summary or (rec.with_suffix(".json") if rec else None)
        outputs = {"avi": rec, "csv": Path(csv_path) if csv_path else None,
                   "summary": Path(summary) if summary else None}
        # The AVI and the CSV are checked by their writers when built (compose); the
        # summary has no writer until the end, so it is checked here, once.
        if outputs["summary"] is not None:
            check_writable(outputs["summary"])
        return outputs

    def compose(self, taps: Sequence[Operator] = ()) -> tuple[Graph, Ops]:
        """Build the operators and wire :data:`EDGES` (live or replay), one channel per
        edge; each of ``taps`` gets its own ``BLOCK`` edge from the overlay."""
        c = self.config
        # The configured recording (replay, run --record) starts with the run; its CSV is
        # the log's (an "as shown" one has its own, of the frames shown). The view starts
        # and stops its own, each with a CSV beside it.
        avi = self.outputs["avi"]
        gate = GateOp(self.engines.gate, c.preprocess, c.gate.nerve_class, c.gate.min_confidence, c.steady,
                      c.gate.every)
        shown = self._recording(avi, self._shown_csv(avi)) if avi and self.as_shown else None
        taps_draw = any(getattr(t, "draws", True) for t in taps)  # a tap that needs drawn frames (the mask track does not)
        ops = Ops(
            source=SourceOp(self.source, c.source.max_height),
            gate=gate,
            segment=SegmentOp(self.engines.segment, c.segment.threshold, nerve_class=c.gate.nerve_class,
                              smoothing=c.steady.alpha),
            overlay=OverlayOp(c.overlay, board=self.board, scorer=self.scorer,
                              draw_frames=lambda: taps_draw or self.ops.record.busy),
            record=RecorderOp(self._recording(avi) if avi and not self.as_shown else None, self.notices),
            log=LogOp(self.outputs["csv"], self.provenance, keep=self.history, notices=self.notices),
            subscribers=SubscriberOp(),
            taps=tuple(taps),
            show=ShowOp(gate, self.board, c.display) if self.passthrough else None,
            shown_record=(RecorderOp(shown, self.notices, prepare=as_shown, name="shown_record")
                          if self.passthrough else None),
        )
        if self.passthrough:  # the picture first: everything but the display path runs lower
            for op in (ops.gate, ops.segment, ops.overlay, ops.record, ops.log, ops.shown_record, *ops.taps):
                op.nice = c.display.inference_nice
            if self.live:  # and, where allowed and asked, the capture thread (it shows inline) real-time
                ops.source.realtime, ops.source.realtime_asked = c.display.realtime()
        sizes = {"q": c.queue_capacity, "1s": max(2, round(self.source.fps))}
        p = Graph("nerveseg")
        mode = "passthrough" if self.passthrough else "per-frame"
        for edge in (e for e in EDGES if mode in e.modes):
            capacity, policy = edge.live if self.live else edge.replay
            p.connect(getattr(ops, edge.upstream), getattr(ops, edge.downstream),
                      capacity=sizes.get(capacity, capacity), policy=policy)
        for tap in ops.taps:
            p.connect(ops.overlay, tap, capacity=c.queue_capacity, policy=BLOCK)
        return p, ops

    def _recording(self, avi: Path, csv: Path | None = None) -> Recording:
        """A recording to ``avi`` (and a CSV beside it when ``csv``); checks both paths."""
        c = self.config.record
        meta = {"comment": json.dumps({"nerveseg": self.provenance}, separators=(",", ":")),
                "title": f"nerveseg annotated {Path(self.source.name).name}"}
        avi_recorder = AviRecorder(avi, self.source.fps, c.codec, c.quality, meta)
        return Recording(avi_recorder, CsvLog(csv, self.provenance) if csv is not None else None)

    @staticmethod
    def _shown_csv(avi: Path) -> Path:
        return avi.with_name(avi.stem + ".shown.csv")

    def subscribe(self, callback: Callable[[Rendered], None]) -> None:
        """``callback(rendered)`` for every frame shown (on a pipeline thread; newest-frame
        policy). Passthrough: the raw view with the layer then in force (``rendered.layer``)."""
        self.ops.subscribers.subscribe(callback)

    def subscribe_layers(self, callback: Callable[[Layer], None]) -> None:
        """``callback(layer)`` for every new overlay layer (passthrough only; the overlay's thread)."""
        if self.board is not None:
            self.board.subscribe(callback)

    def subscribe_status(self, callback: Callable[[SourceState], None]) -> None:
        """``callback(state)`` whenever the source's state changes (on the watchdog's thread)."""
        self.watchdog.subscribe(callback)

    def subscribe_notices(self, callback: Callable[[Notice], None]) -> None:
        """``callback(notice)`` when a recording starts, is saved or fails (on a pipeline thread)."""
        self.notices.add(callback)

    # -- controls: safe from any thread while running --------------------------------

    def pause(self) -> None:
        self.ops.source.pause()

    def resume(self) -> None:
        self.ops.source.resume()

    @property
    def paused(self) -> bool:
        return self.ops.source.paused

    def set_threshold(self, value: float) -> None:
        """The segmenter's mask threshold, from the next frame on."""
        self.ops.segment.threshold = value

    def set_opacity(self, value: float) -> None:
        """The overlay's mask opacity, from the next frame on."""
        self.ops.overlay.opacity = value

    def set_region(self, roi) -> None:
        """Segment only inside ``roi`` (a :mod:`.roi` shape; None: the whole field)."""
        self.ops.segment.roi = roi

    def set_eye(self, eye: str) -> None:
        """``left``, ``right`` or ``full``; frames already past the gate keep the old one."""
        try:
            self.ops.gate.eye = eye
        except ValueError as exc:
            raise UserError(str(exc)) from None

    def set_steady(self, steady: SteadyConfig) -> None:
        """The steady overlay's knobs (:mod:`.steady`; ``SteadyConfig()``: off), from the next frame."""
        self.ops.gate.set_steady(steady)
        self.ops.segment.set_smoothing(steady.alpha)

    @property
    def steady(self) -> SteadyConfig:
        return self.ops.gate.steady

    def redetect_crop(self) -> None:
        """Find the border crop again at the next frame (it is otherwise fixed for the run)."""
        self.ops.gate.preprocess.redetect()

    def start_recording(self, avi: str | Path) -> None:
        """Record the annotated frames to ``avi`` with the per-frame CSV beside it. Opened
        in the recorder's thread: success or failure comes back as a :class:`Notice`."""
        avi = Path(avi)
        if avi.suffix.lower() != ".avi":
            raise UserError(f"{avi}: the recording must be an .avi file")
        if self.started_unix is not None and not self.graph.alive:  # before start() it waits for frames
            raise UserError(f"{self.source.name}: has ended, nothing to record")
        if self.as_shown:  # every frame shown, as it was shown; its CSV has a row per frame shown
            self.ops.shown_record.start(lambda: self._recording(avi, self._shown_csv(avi)), str(avi))
        else:
            self.ops.record.start(lambda: self._recording(avi, avi.with_suffix(".csv")), str(avi))

    def stop_recording(self) -> None:
        self.ops.record.stop()
        if self.ops.shown_record is not None:
            self.ops.shown_record.stop()

    # -- life cycle -------------------------------------------------------------------

    def start(self) -> "NervePipeline":
        for engine in {id(e): e for e in (self.engines.gate, self.engines.segment)}.values():
            engine.warmup()  # once each: a gate_segment engine is both
        if self.passthrough and self.config.display.inference_nice:
            self.lowered_workers = lower_all(self.engines.workers, self.config.display.inference_nice)
        self.started_unix = time.time()
        self.graph.start()
        self.watchdog.start()
        return self

    def stop(self) -> None:
        self.graph.stop()
        self.ops.source.resume()  # a paused file source waits on this: let it see the stop

    def wait(self, timeout: float | None = None) -> bool:
        """Join every thread (the watchdog's too); True when all ended within ``timeout``."""
        deadline = None if timeout is None else time.monotonic() + timeout
        ended = self.graph.wait(timeout)
        if ended:
            self.watchdog.stop()
        remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
        return self.watchdog.join(remaining) and ended

    def close(self, timeout: float = 5.0) -> bool:
        """Stop and join everything; True when every thread ended. A thread stuck in a
        driver call past ``timeout`` is left (it is a daemon) after its channels close."""
        self.stop()
        if not self.wait(timeout):
            self.graph.abort()
            self.watchdog.stop()
            return self.wait(min(1.0, timeout))
        return True

    @property
    def alive(self) -> bool:
        return self.graph.alive or self.watchdog.alive

    def run(self) -> dict:
        """Start, wait for the source to end, write the summary and return it."""
        self.start()
        try:
            while not self.wait(0.2):
                pass
        except KeyboardInterrupt:
            self.interrupted = True
            self.close(timeout=STOP_S)
        return self.finish()

    def summary(self) -> dict:
        stats = self.ops.log.stats.summary()
        return {
            "nerveseg": {"engines": self.provenance, "config": to_dict(self.config)},
            "source": {**self.source.describe(), **self._reduction()},
            "view": self.ops.gate.preprocess.describe(),
            "mode": "live" if self.live else "replay",
            "interrupted": self.interrupted,
            "outputs": {k: str(v) for k, v in self.outputs.items() if v is not None},
            "display": self._display_summary(),
            "recorded_frames": sum(op.frames for op in self._recorders()),
            # a new segment whenever the frame size changed
            "recordings": [f for op in self._recorders() for f in op.files],
            # live only: frames the recorder lost because it fell a second behind
            "recording_dropped": sum(ch.dropped for ch in self.graph.channels if ch.name.endswith("record")),
            "stage_errors": dict(self.graph.item_errors),
            "output_errors": list(self.output_errors),
            "errors": [f"{name}: {exc}" for name, exc in self.graph.errors],
            "channels": {ch.name: {"dropped": ch.dropped, "high_water": ch.high_water}
                         for ch in self.graph.channels},
            "machine": {"python": platform.python_version(), "platform": platform.platform(),
                        "processor": platform.processor() or platform.machine()},
            "started_unix": self.started_unix,
            **stats,
            **({"ground_truth": self.scorer.report()} if self.scorer is not None else {}),
        }

    def _reduction(self) -> dict:
        """``source.max_height`` at work: the size frames arrived at and the size everything
        after worked at (nothing when no frame was reduced)."""
        op = self.ops.source
        if op.reduced_from is None:
            return {}
        h, w = op.reduced_from
        rh, rw = reduced_size(h, w, op.max_height)
        return {"reduced": {"from": [h, w], "to": [rh, rw], "max_height": op.max_height}}

    def _recorders(self) -> list[RecorderOp]:
        return [op for op in (self.ops.record, self.ops.shown_record) if op is not None]

    def _display_summary(self) -> dict:
        d = self.config.display
        out = {"mode": "passthrough" if self.passthrough else "per-frame",
               "recording": self.config.record.content if self.passthrough else "annotated"}
        if self.passthrough:
            show = self.ops.show
            out.update(fade_after_ms=d.fade_after_ms, hide_after_ms=d.hide_after_ms, frames_shown=show.frames,
                       inference_priority=self._priority_summary(),
                       shown_without_overlay_too_old=show.hidden, layers=self.board.posted,
                       # capture of the overlay's frame → the frame it was shown with (the view adds its paint)
                       overlay_age_ms=describe(list(show.ages)) if show.ages else None)
        return out

    def _priority_summary(self) -> dict:
        """How far inference was lowered below the display path, and on how many threads."""
        nice = self.config.display.inference_nice
        ops = [self.ops.gate, self.ops.segment, self.ops.overlay]
        source = self.ops.source
        realtime = {"priority": source.realtime, "capture_thread": status(source.realtime, source.realtime_note)}
        return {"nice": nice, "supported": SUPPORTED, "engine_workers_lowered": self.lowered_workers,
                "display_path_realtime": realtime,
                "note": ("not lowered (display.inference_nice 0)" if not nice else
                         f"inference threads ({', '.join(o.name for o in ops)}, recorders, log) and "
                         f"{self.lowered_workers} engine worker thread(s) at nice +{nice}" if SUPPORTED else
                         "per-thread priorities are Linux's: not lowered on this system")}

    def finish(self) -> dict:
        summary = self.summary()
        path = self.outputs["summary"]
        if path is not None:
            try:
                write_summary(path, summary)
            except OSError as exc:  # a full disk: the run's result is still printed
                message = f"{path}: summary not written ({exc.strerror or exc})"
                self.output_errors.append(message)
                summary["output_errors"].append(message)
        return summary
