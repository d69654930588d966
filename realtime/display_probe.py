"""Where "on screen" is stamped, for the delay measurement.

Two probes with one interface (``attach``, ``drive``, ``shown``, ``layers_shown``, ``describe``,
``close``); ``layers_shown`` is for live passthrough (docs/LIVE.md), where the overlay is a
layer of its own, on screen from the first paint that draws it:

* ``qt-paint`` (:mod:`nerveseg.ui.paint_probe`, the default): the view's own ``FrameView`` behind the
  view's own ``Bridge``, wired as ``nerveseg view`` wires them; a frame is on screen when
  the widget's paint of it has finished (a real display when there is one, else Qt's
  offscreen platform).
* ``subscriber``: the moment the pipeline hands the frame to the view's subscriber. The
  fallback where Qt cannot start; it leaves out the GUI thread's hand-over and the paint.

``nerveseg.commands.validation.display.make_probe`` picks one and says why. A new way to stamp the screen (a photodiode,
a frame grabber on the monitor's input) is a third class with the same six methods.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Callable

from .frames import Rendered, Stamp, now_ns

#: the operating-room monitor the paint probe's window fills, (width, height)
SCREEN = (1920, 1080)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Shown:
    """A frame that reached the screen. Times from ``time.perf_counter_ns()``:
    ``handoff`` when the pipeline gave it to the view, ``received`` when the GUI thread took
    it, ``painted`` when its first paint finished."""

    index: int
    captured_ns: int
    stamps: tuple[Stamp, ...]
    segmented: bool
    handoff_ns: int
    received_ns: int
    painted_ns: int


@dataclass(frozen=True)
class Handoff:
    """What the probe keeps of a frame at the hand-over (not its pixels)."""

    captured_ns: int
    stamps: tuple[Stamp, ...]
    segmented: bool
    handoff_ns: int

    @classmethod
    def of(cls, r: Rendered) -> "Handoff":
        return cls(r.frame.captured_ns, r.stamps, r.seg.mask is not None, now_ns())

    @classmethod
    def of_layer(cls, layer) -> "Handoff":
        """A live passthrough overlay layer (:class:`~nerveseg.realtime.layer.Layer`)."""
        return cls(layer.captured_ns, layer.stamps, layer.segmented, now_ns())


def run_until_done(pipeline, tick: Callable[[], None], deadline_s: float, step: Callable[[float], None]) -> None:
    """Start ``pipeline`` and wait for its frames to end, calling ``tick`` between waits
    (``step(seconds)`` waits: a sleep, or Qt's event loop). Past ``deadline_s`` the run is stopped."""
    pipeline.start()
    deadline = time.monotonic() + deadline_s
    while pipeline.graph.alive:
        step(0.05)
        tick()
        if time.monotonic() > deadline:
            log.warning("validation run took longer than %.0f s: stopped", deadline_s)
            pipeline.stop()
            deadline = float("inf")
    pipeline.wait(5.0)
    tick()


class SubscriberProbe:
    method = "subscriber"
    where = ("the display subscriber: the moment the pipeline hands the frame to the view "
             "(the GUI thread's hand-over and the paint are not included)")

    def __init__(self, reason: str = ""):
        self.reason = reason
        self._handoffs: dict[int, Handoff] = {}
        self._layers: dict[int, Handoff] = {}
        self._lock = threading.Lock()

    def attach(self, pipeline) -> None:
        pipeline.subscribe(self._on_frame)
        pipeline.subscribe_layers(self._on_layer)

    def _on_frame(self, r: Rendered) -> None:
        with self._lock:
            self._handoffs.setdefault(r.index, Handoff.of(r))

    def _on_layer(self, layer) -> None:
        with self._lock:
            self._layers.setdefault(layer.index, Handoff.of_layer(layer))

    def layers_shown(self) -> list[Shown]:
        """Live passthrough: the overlay layers, as handed to the view (none per-frame)."""
        with self._lock:
            items = sorted(self._layers.items())
        return [Shown(i, h.captured_ns, h.stamps, h.segmented, h.handoff_ns, h.handoff_ns, h.handoff_ns)
                for i, h in items]

    def drive(self, pipeline, tick: Callable[[], None], deadline_s: float) -> None:
        run_until_done(pipeline, tick, deadline_s, time.sleep)

    def shown(self) -> list[Shown]:
        with self._lock:
            items = sorted(self._handoffs.items())
        return [Shown(i, h.captured_ns, h.stamps, h.segmented, h.handoff_ns, h.handoff_ns, h.handoff_ns)
                for i, h in items]

    def describe(self) -> dict:
        return {"method": self.method, "on_screen_means": self.where, "fallback_reason": self.reason or None,
                "not_shown_at_view": 0}

    def close(self) -> None:
        pass
