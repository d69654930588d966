"""The source watchdog: says "no signal" even while a camera read hangs.

A source reports its own state (``ok``, ``no signal`` while reconnecting, ``ended``),
but only between reads: a driver that blocks in ``read()`` for seconds silences it.
The watchdog runs in its own thread, looks every ``period`` seconds at when the source
last delivered a frame, and tells its listeners whenever the state a person should see
changes. A live source that has delivered nothing for ``timeout`` seconds is ``no
signal``, so the view says so within ``timeout + period`` whatever the driver does.
"""

from __future__ import annotations

import threading
from typing import Callable

from .events import Listeners, SourceState
from .frames import now_ns
from .graph import Graph
from .stages import SourceOp


class Watchdog:
    """Watches ``source_op`` of ``graph``; ``live``: frames are expected continuously
    (a paused file or a finished one is not "no signal")."""

    def __init__(self, source_op: SourceOp, graph: Graph, live: bool, timeout: float = 0.5,
                 period: float = 0.1):
        if timeout <= 0 or period <= 0:
            raise ValueError(f"watchdog timeout and period must be positive, not {timeout}, {period}")
        self.source_op, self.graph, self.live = source_op, graph, live
        self.timeout_ns, self.period = int(timeout * 1e9), period
        self.listeners: Listeners[SourceState] = Listeners()
        self.current = SourceState("starting", source=source_op.source.name)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._started_ns = now_ns()

    def subscribe(self, callback: Callable[[SourceState], None]) -> None:
        self.listeners.add(callback)

    def evaluate(self) -> SourceState:
        """The state to show now."""
        op = self.source_op
        name = op.source.name
        state, message, _ = op.source.status.snapshot()
        if self.graph.fatal is not None:
            return SourceState("failed", " ".join(str(self.graph.fatal).split()), name, op.received)
        if state in ("ended", "failed"):
            return SourceState(state, message, name, op.received)
        if op.paused:
            return SourceState("paused", "", name, op.received)
        if self.live and state in ("starting", "ok"):
            silent_ns = now_ns() - (op.last_frame_ns or self._started_ns)
            if silent_ns > self.timeout_ns:
                return SourceState("no signal", f"no frame for {silent_ns // 1_000_000_000 or '<1'} s",
                                   name, op.received)
        return SourceState(state, message, name, op.received)

    def _check(self) -> None:
        state = self.evaluate()
        if (state.state, state.message) != (self.current.state, self.current.message):
            self.current = state
            self.listeners(state)
        else:
            self.current = state  # frame count moves on silently

    def _run(self) -> None:
        while not self._stop.wait(self.period):
            self._check()
            if not self.graph.alive:
                break
        self._check()

    def start(self) -> None:
        self._started_ns = now_ns()
        self._thread = threading.Thread(target=self._run, name=f"{self.graph.name}:watchdog", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def join(self, timeout: float | None = None) -> bool:
        if self._thread is not None:
            self._thread.join(timeout)
        return not self.alive

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()
