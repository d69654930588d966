"""A recording (AVI + its CSV) and the operator that starts, writes and stops it."""

from __future__ import annotations

import contextlib
import dataclasses
import queue
from pathlib import Path
from typing import Callable

from nerveseg.engines.errors import UserError

from ..events import Notice
from ..frames import Rendered, now_ns
from ..graph import Operator
from .avi import AviRecorder
from .common import error_line
from .csv_log import CsvLog


class Recording:
    """One recording: the annotated AVI and, when ``csv`` is given, its per-frame CSV
    (one row per recorded frame; see :class:`.csv_log.CsvLog`)."""

    def __init__(self, avi: AviRecorder, csv_log: CsvLog | None = None):
        self.avi, self.csv = avi, csv_log
        self.segments: list[AviRecorder] = [avi]  # a new one each time the frame size changes
        if csv_log is not None:
            csv_log.open()

    @property
    def path(self) -> Path:
        return self.avi.path

    @property
    def frames(self) -> int:
        return sum(segment.frames for segment in self.segments)

    def write(self, r: Rendered) -> Rendered:
        """Record ``r``; a frame of another size (the source reconnected in another mode)
        closes this segment and starts ``NAME.partN.avi``: frames are never stretched."""
        t0 = now_ns()
        if not self.avi.fits(r.image):
            self.avi.close()  # numbered from the first file's name: NAME.part3.avi, not NAME.part2.part3.avi
            self.avi = self.segments[0].next_segment(len(self.segments) + 1)
            self.segments.append(self.avi)
        self.avi.write(r.image)
        r = dataclasses.replace(r, stamps=r.stamps + (("encode", t0, now_ns()),))
        if self.csv is not None:
            self.csv.write_frame(r)
        return r

    def close(self) -> None:
        try:
            self.avi.close()  # the earlier segments are closed already
        finally:
            if self.csv is not None:
                self.csv.close()


class RecorderOp(Operator):
    """Writes each rendered frame into the current :class:`Recording`, if any, and
    passes it on (stamped ``encode`` when written).

    Recordings may be started and stopped while running (:meth:`start`, :meth:`stop`,
    from any thread). The files are opened, written and closed in this operator's
    thread only: a command takes effect at the next frame, or within ``idle_s`` when
    no frames come. What happened is told to ``notices`` (started, saved, failed); a
    recording that fails (disk full, unwritable path) is closed and told, and the
    pipeline runs on."""

    name = "record"
    idle_s = 0.1

    def __init__(self, recording: Recording | None = None,
                 notices: Callable[[Notice], None] | None = None,
                 prepare: Callable[[Rendered], Rendered] | None = None, name: str = "record"):
        self.recording = recording
        self.prepare = prepare  # the frame as it is to be recorded (an "as shown" composite)
        self.name = name
        self.notices = notices or (lambda notice: None)
        self.frames = 0  # written, over every recording
        self.files: list[str] = []  # every AVI closed so far, segments included, in order
        self._commands: queue.SimpleQueue = queue.SimpleQueue()

    @property
    def busy(self) -> bool:
        """Recording, or asked to start or stop (any thread): frames must come drawn."""
        return self.recording is not None or not self._commands.empty()

    @property
    def recorder(self) -> AviRecorder | None:
        return self.recording.avi if self.recording is not None else None

    def start(self, make: Callable[[], Recording], path: str | None = None) -> None:
        """Close any current recording and start the one ``make()`` builds (in this
        operator's thread; a :class:`UserError` or ``OSError`` from it is told, about
        ``path``)."""
        self._commands.put((make, path))

    def stop(self) -> None:
        self._commands.put((None, None))

    def _apply(self) -> None:
        while not self._commands.empty():
            make, path = self._commands.get()
            self._close()
            if make is None:
                continue
            try:
                self.recording = make()
            except (UserError, OSError) as exc:
                self.notices(Notice("error", f"recording not started: {error_line(exc)}", path))
            else:
                self.notices(Notice("recording", f"recording to {self.recording.path}",
                                    str(self.recording.path)))

    def _close(self, failure: BaseException | None = None) -> None:
        """Close the current recording and tell: saved, or (``failure``) why it stopped."""
        recording, self.recording = self.recording, None
        if recording is None:
            return
        path, problem = recording.path, failure
        try:
            recording.close()
        except (OSError, ValueError) as exc:
            problem = problem or exc
        self.files.extend(str(s.path) for s in recording.segments if s.frames)
        if recording.frames == 0:  # a header without a frame (a full disk at once) plays nowhere
            with contextlib.suppress(OSError):
                Path(path).unlink(missing_ok=True)
        if problem is None and recording.frames == 0:  # the AVI opens at its first frame
            self.notices(Notice("empty", f"{path}: not written (no frame arrived)", str(path)))
        elif problem is None:
            more = len(recording.segments) - 1
            parts = f", and {more} more segment{'s' * (more > 1)} after a frame-size change" if more else ""
            self.notices(Notice("saved", f"saved {path} ({recording.frames} frames{parts})", str(path),
                                recording.frames))
        else:
            self.notices(Notice("error", f"{path}: recording stopped after {recording.frames} frames "
                                         f"({error_line(problem)})", str(path), recording.frames))

    def process(self, r: Rendered) -> Rendered:
        self._apply()
        if self.recording is None:
            return r
        try:
            r = self.recording.write(self.prepare(r) if self.prepare is not None else r)
        except (OSError, ValueError) as exc:
            self._close(failure=exc)  # what was written stays readable (intra-only codec)
            return r
        self.frames += 1
        return r

    def on_idle(self) -> None:
        self._apply()

    def teardown(self) -> None:
        self._apply()
        self._close()
