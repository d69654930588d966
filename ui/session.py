"""The view's session: what the window drives, without Qt.

It holds the engines (loaded once), the current :class:`NervePipeline` and the
operator's settings, which outlive a switch of source (eye, threshold, opacity).
Everything slow happens off the caller's thread: a new source starts (engine warm-up
included) in a switch thread after the old one has stopped, snapshots are written by
an I/O worker, recordings are opened and closed by the pipeline's recorder. What
happens comes back through three callbacks, called on those threads:
``on_frame(Rendered)``, ``on_status(SourceState)`` and ``on_notice(Notice)``.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from nerveseg.engines.metadata import EngineError
from nerveseg.realtime.config import PipelineConfig
from nerveseg.engines.errors import UserError
from nerveseg.realtime.events import Notice, SourceState
from nerveseg.realtime.frames import Rendered
from nerveseg.realtime.layer import Layer
from nerveseg.realtime.pipeline import Engines, NervePipeline
from nerveseg.realtime.roi import Roi, check_roi
from nerveseg.realtime.sources import Source, is_camera, open_source
from nerveseg.realtime.steady import PRESET, SteadyConfig
from nerveseg.realtime.sources.stream import is_stream

from .snapshot import save_snapshot

log = logging.getLogger(__name__)

#: rows kept for on-screen statistics: five minutes at 30 FPS
HISTORY = 9000


@dataclass
class Settings:
    """The operator's choices; applied to every pipeline the session builds."""

    eye: str
    threshold: float
    opacity: float
    roi: Roi | None = None
    steady: SteadyConfig | None = None  # None: the YAML's


class ViewSession:
    """``camera_opener``: passed to :class:`CameraSource` (tests use a fake device)."""

    def __init__(self, config: PipelineConfig, engines: Engines, out_dir: Path,
                 on_frame: Callable[[Rendered], None], on_status: Callable[[SourceState], None],
                 on_notice: Callable[[Notice], None], camera_opener: Callable | None = None,
                 signal_timeout: float = 0.5, on_layer: Callable[[Layer], None] | None = None):
        self.config, self.engines, self.out_dir = config, engines, Path(out_dir)
        self.on_frame, self.on_status, self.on_notice = on_frame, on_status, on_notice
        self.on_layer = on_layer or (lambda layer: None)  # live passthrough: each new overlay layer
        self.camera_opener = camera_opener
        self.signal_timeout = signal_timeout
        self.settings = Settings(config.preprocess.eye, config.segment.threshold, config.overlay.opacity)
        self.pipeline: NervePipeline | None = None
        self.spec: str | None = None
        self._switches: list[threading.Thread] = []
        self._switch_lock = threading.Lock()
        self._io = ThreadPoolExecutor(max_workers=1, thread_name_prefix="nerveseg-io")
        self._closing = False

    # -- sources -----------------------------------------------------------------------

    def _source(self, spec: str) -> Source:
        text = str(spec).strip()
        if not text:
            raise UserError("no source given: a camera index, a video file or an image folder")
        # A configured right-eye device pairs with live sources only (a file is one recording).
        live = is_camera(text) or is_stream(text)
        return open_source(text, pace=True, camera=self.config.source.camera, opener=self.camera_opener,
                           right=self.config.source.right if live else None,
                           read_ahead_ms=self.config.source.read_ahead_ms)

    def open(self, spec: str, roi: Roi | None = None, record: bool = False) -> None:
        """Switch to ``spec`` (camera index, video file or image folder), in a switch
        thread: even probing a file is I/O. A source that cannot be opened comes back as
        an ``error`` notice, and the current source then runs on. ``roi``: start with
        this region (else none: one drawn on another picture means nothing here);
        ``record``: start recording with the first frame."""
        if self._closing:
            return
        roi = check_roi(roi)
        thread = threading.Thread(target=self._switch, args=(str(spec), roi, record), name="nerveseg:switch",
                                  daemon=True)
        self._switches = [t for t in self._switches if t.is_alive()] + [thread]
        thread.start()

    def _build(self, spec: str) -> NervePipeline:
        s, c = self.settings, self.config
        config = dataclasses.replace(
            # the configured source keys (max_height, read_ahead_ms...) kept: only what it is changes
            c, source=dataclasses.replace(c.source, spec=spec, pace=True, live=True,
                                          right=c.source.right if is_camera(spec) or is_stream(spec) else None),
            preprocess=dataclasses.replace(c.preprocess, eye=s.eye),
            segment=dataclasses.replace(c.segment, threshold=s.threshold),
            overlay=dataclasses.replace(c.overlay, opacity=s.opacity),
            record=dataclasses.replace(c.record, path=None), log=dataclasses.replace(c.log, csv=None, summary=None))
        pipeline = NervePipeline(config, source=self._source(spec), engines=self.engines, history=HISTORY,
                                 signal_timeout=self.signal_timeout)
        pipeline.subscribe(lambda r, p=pipeline: self.pipeline is p and self.on_frame(r))
        pipeline.subscribe_layers(lambda layer, p=pipeline: self.pipeline is p and self.on_layer(layer))
        pipeline.subscribe_status(lambda st, p=pipeline: self.pipeline is p and self.on_status(st))
        pipeline.subscribe_notices(self.on_notice)  # an old pipeline's "saved" still counts
        return pipeline

    def _switch(self, spec: str, roi: Roi | None, record: bool) -> None:
        with self._switch_lock:  # switches happen one at a time, in the order asked
            if self._closing:
                return
            try:
                new = self._build(spec)
            except (UserError, EngineError, OSError, ValueError) as exc:
                text = " ".join(str(exc).split())
                self.on_notice(Notice("error", f"cannot open {'' if spec in text else spec + ': '}{text}"))
                return
            old, self.pipeline, self.spec = self.pipeline, new, spec
            self.settings.roi = roi
            self._apply_settings(new)  # the operator may have moved a slider while this was built
            self.on_status(SourceState("starting", f"opening {new.source.name}", new.source.name))
            if record:
                self._record(new)
            # One pipeline at a time on the engines: a backend may reuse its buffers.
            if old is not None and not old.close(timeout=3.0):
                log.warning("%s: a thread did not stop in time (left as a daemon)", old.source.name)
            if self._closing or self.pipeline is not new:
                return
            try:
                new.start()
            except Exception as exc:  # an engine failing its warm-up: say so, keep the window
                log.exception("starting %s failed", new.source.name)
                self.on_notice(Notice("error", f"{new.source.name}: could not start ({exc})"))

    def _apply_settings(self, pipeline: NervePipeline) -> None:
        s = self.settings
        pipeline.set_eye(s.eye)
        pipeline.set_threshold(s.threshold)
        pipeline.set_opacity(s.opacity)
        pipeline.set_region(s.roi)
        if s.steady is not None:
            pipeline.set_steady(s.steady)

    # -- controls ----------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self.pipeline is not None and self.pipeline.graph.alive

    @property
    def ended(self) -> bool:
        """A video or image folder that has played to its end."""
        p = self.pipeline
        return (p is not None and not p.source.live and p.graph.fatal is None
                and p.source.status.state == "ended")

    def set_paused(self, paused: bool) -> bool:
        """Pause or resume; on a video that has ended, either plays it again. Returns
        whether the source is now paused."""
        p = self.pipeline
        if p is None:
            return False
        if self.ended and self.spec:
            self.open(self.spec)
            return False
        if paused:
            p.pause()
        else:
            p.resume()
        return paused

    def set_eye(self, eye: str) -> bool:
        """Switch eye; returns True when a region had to be cleared (it was drawn on the
        other picture)."""
        if self.pipeline is not None:
            self.pipeline.set_eye(eye)
        self.settings.eye = eye
        had_roi = self.settings.roi is not None
        self.set_roi(None)
        return had_roi

    def set_steady(self, on: bool) -> SteadyConfig:
        """The steady overlay on (the YAML's knobs, or the preset when it sets none) or off;
        kept for every source opened later. Returns what is now in force."""
        configured = self.config.steady
        steady = (configured if not configured.off else PRESET) if on else SteadyConfig()
        self.settings.steady = steady
        if self.pipeline is not None:
            self.pipeline.set_steady(steady)
        return steady

    def recrop(self) -> bool:
        """Find the border crop again at the next frame; returns True when a region had to
        be cleared (it was drawn on the old crop)."""
        if self.pipeline is not None:
            self.pipeline.redetect_crop()
        had_roi = self.settings.roi is not None
        self.set_roi(None)
        return had_roi

    def set_threshold(self, value: float) -> None:
        if self.pipeline is not None:
            self.pipeline.set_threshold(value)
        self.settings.threshold = value

    def set_opacity(self, value: float) -> None:
        if self.pipeline is not None:
            self.pipeline.set_opacity(value)
        self.settings.opacity = value

    def set_roi(self, roi: Roi | None) -> None:
        roi = check_roi(roi)
        if self.pipeline is not None:
            self.pipeline.set_region(roi)
        self.settings.roi = roi

    # -- outputs -----------------------------------------------------------------------

    def _stamp(self) -> str:
        return time.strftime("%Y%m%d-%H%M%S") + f"-{int(time.time() * 1000) % 1000:03d}"

    def start_recording(self) -> Path:
        """Start recording to a new AVI (CSV beside it) in the output folder; the outcome
        arrives as a notice. Raises :class:`UserError` when nothing is running."""
        if self.pipeline is None:
            raise UserError("no source open: nothing to record")
        return self._record(self.pipeline)

    def _record(self, pipeline: NervePipeline) -> Path:
        path = self.out_dir / f"nerveseg-{self._stamp()}.avi"
        pipeline.start_recording(path)
        return path

    def stop_recording(self) -> None:
        if self.pipeline is not None:
            self.pipeline.stop_recording()

    def snapshot(self, rendered: Rendered | None) -> Path:
        """Write ``rendered`` (the frame on screen) to a PNG in the output folder, in the
        I/O worker; the outcome arrives as a notice."""
        if rendered is None:
            raise UserError("no frame on screen yet: nothing to save")
        path = self.out_dir / f"nerveseg-{self._stamp()}-frame{rendered.index}.png"
        provenance = self.pipeline.provenance if self.pipeline else self.engines.provenance()
        source = self.pipeline.source.name if self.pipeline else ""
        self._io.submit(self._write_snapshot, path, rendered, provenance, source)
        return path

    def _write_snapshot(self, path: Path, rendered: Rendered, provenance: dict, source: str) -> None:
        try:
            save_snapshot(path, rendered.image, provenance, rendered.index, source)
        except (OSError, ValueError) as exc:
            self.on_notice(Notice("error", f"snapshot not saved: {path}: {getattr(exc, 'strerror', None) or exc}",
                                  str(path)))
        else:
            self.on_notice(Notice("snapshot", f"saved {path}", str(path)))

    # -- shutdown ----------------------------------------------------------------------

    def close(self, timeout: float = 5.0) -> bool:
        """Stop everything and join every thread; True when none is left running."""
        self._closing = True
        deadline = time.monotonic() + timeout
        for thread in self._switches:
            thread.join(max(0.0, deadline - time.monotonic()))
        ended = True
        if self.pipeline is not None:
            ended = self.pipeline.close(max(0.5, deadline - time.monotonic()))
        self._io.shutdown(wait=True)
        return ended and not any(t.is_alive() for t in self._switches)
