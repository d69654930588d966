"""A small operator graph: one thread per operator, bounded channels between them.

Every thread boundary is a :class:`Channel` with a named :class:`Policy`:

* ``BLOCK``: the producer waits for room. Files and tests: lossless, deterministic.
* ``DROP_OLDEST``: the oldest waiting item is thrown away to make room. Live video:
  latency over completeness. Drops are counted on the channel.
* ``REJECT``: the new item is thrown away when full (counted too).
* ``INLINE``: no channel and no thread: the downstream operator runs in the upstream's
  thread, right after it. For a step too short to be worth a thread hand-over, on a path
  whose every hand-over costs a wake-up in the tail (live passthrough's display path:
  ``source → show → subscribers``). It must never wait: it would stall its upstream.

An operator processes one item at a time. Closing flows downstream: when a source ends
(or the pipeline stops) it closes its outputs, each operator drains its input, runs
``teardown`` and closes its own outputs. Threads stop by event and join, never by force.
"""

from __future__ import annotations

import collections
import enum
import logging
import threading
import time
from typing import Any, Iterator

from .priority import lower_this_thread, to_realtime

log = logging.getLogger(__name__)


class Policy(enum.Enum):
    BLOCK = "block"
    DROP_OLDEST = "drop_oldest"
    REJECT = "reject"
    INLINE = "inline"


class Closed(Exception):
    """Raised by :meth:`Channel.get` when the channel is closed and empty."""


class Channel:
    """A bounded FIFO between two threads with a named backpressure policy."""

    def __init__(self, name: str, capacity: int, policy: Policy):
        if capacity < 1:
            raise ValueError(f"channel {name}: capacity must be ≥ 1, not {capacity}")
        self.name, self.capacity, self.policy = name, capacity, policy
        self._items: collections.deque = collections.deque()
        self._cond = threading.Condition()
        self._closed = False
        self.dropped = 0
        self.high_water = 0

    def put(self, item: Any) -> bool:
        """Offer ``item``; returns False when it (or nothing) was dropped by policy or the
        channel is closed. ``BLOCK`` waits for room."""
        with self._cond:
            if self._closed:
                return False
            if len(self._items) >= self.capacity:
                if self.policy is Policy.BLOCK:
                    while len(self._items) >= self.capacity and not self._closed:
                        self._cond.wait()
                    if self._closed:
                        return False
                elif self.policy is Policy.DROP_OLDEST:
                    self._items.popleft()
                    self.dropped += 1
                else:
                    self.dropped += 1
                    return False
            self._items.append(item)
            self.high_water = max(self.high_water, len(self._items))
            self._cond.notify_all()
            return True

    def get(self, timeout: float | None = None) -> Any:
        """The next item; raises :class:`Closed` once closed and drained, ``TimeoutError``
        when ``timeout`` passes with nothing to read."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while not self._items:
                if self._closed:
                    raise Closed(self.name)
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    raise TimeoutError(self.name)
                self._cond.wait(remaining)
            item = self._items.popleft()
            self._cond.notify_all()
            return item

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def __len__(self) -> int:
        return len(self._items)


class Operator:
    """One stage. Subclasses implement :meth:`process` (and optionally ``setup`` /
    ``teardown``, which run in the operator's own thread).

    ``process`` returns the item to pass downstream, or None to pass nothing.
    Configuration is checked in ``__init__``; ``process`` does no setup work.
    """

    name = "operator"
    #: consecutive per-item failures tolerated before the pipeline is stopped
    max_consecutive_errors = 25
    #: seconds without input after which :meth:`on_idle` runs (None: never). For
    #: operators that take commands (start/stop a recording) which must not wait for
    #: the next frame: a paused or silent source sends none.
    idle_s: float | None = None
    #: the channel feeding this operator, set by :meth:`Graph.connect` (its drop
    #: count is what a newest-frame stage reports); None for a source
    inbox: "Channel | None" = None
    #: lower this operator's thread's OS priority by this much when it starts (live
    #: passthrough lowers inference below the display path: realtime/priority.py)
    nice: int = 0
    #: run this operator's thread under the real-time policy at this priority (0: no;
    #: the display path's capture thread: realtime/priority.py); ``realtime_note``: why not
    realtime: int = 0
    realtime_note: str | None = None
    #: the real-time priority was asked for by number (a refusal is a warning), not ``auto``
    realtime_asked: bool = True

    def setup(self) -> None:
        """Called once in the operator's thread before the first item."""

    def process(self, item: Any) -> Any:
        raise NotImplementedError

    def on_error(self, item: Any, exc: Exception) -> Any:
        """What to pass downstream when ``process`` raised on ``item``; default: nothing."""
        return None

    def on_idle(self) -> None:
        """Called in the operator's thread after ``idle_s`` seconds without input."""

    def teardown(self) -> None:
        """Called once in the operator's thread after the input is closed and drained."""


class SourceOperator(Operator):
    """A stage without input: :meth:`items` yields until the source ends or ``stop`` is set."""

    def items(self, stop: threading.Event) -> Iterator[Any]:
        raise NotImplementedError


class Graph:
    """Operators wired by channels, each run in its own thread.

    Build with :meth:`connect` (one call per edge), then :meth:`start` and :meth:`wait`.
    """

    def __init__(self, name: str = "pipeline"):
        self.name = name
        self.stop_event = threading.Event()
        self.channels: list[Channel] = []
        self._inputs: dict[Operator, Channel] = {}
        self._outputs: dict[Operator, list[Channel]] = collections.defaultdict(list)
        self._inline: dict[Operator, list[Operator]] = collections.defaultdict(list)  # INLINE edges
        self._consecutive: collections.Counter = collections.Counter()  # failures in a row, per operator
        self._operators: list[Operator] = []
        self._threads: list[threading.Thread] = []
        self.errors: list[tuple[str, BaseException]] = []
        self.fatal: BaseException | None = None
        self.item_errors: collections.Counter = collections.Counter()

    def _add(self, op: Operator) -> None:
        if op not in self._operators:
            self._operators.append(op)

    def connect(self, upstream: Operator, downstream: Operator, capacity: int = 4,
                policy: Policy = Policy.BLOCK) -> Channel | None:
        """Wire ``upstream`` → ``downstream`` through a new channel (``INLINE``: none, the
        downstream runs in the upstream's thread; returns None)."""
        if downstream in self._inputs or self._parent(downstream) is not None:
            raise ValueError(f"{downstream.name} already has an input")
        if policy is Policy.INLINE:
            if isinstance(downstream, SourceOperator):
                raise ValueError(f"{downstream.name}: a source has no input")
            self._add(upstream)
            self._add(downstream)
            self._inline[upstream].append(downstream)
            return None
        channel = Channel(f"{upstream.name}->{downstream.name}", capacity, policy)
        self._add(upstream)
        self._add(downstream)
        self._inputs[downstream] = channel
        downstream.inbox = channel
        self._outputs[upstream].append(channel)
        self.channels.append(channel)
        return channel

    def _parent(self, op: Operator) -> Operator | None:
        """The operator in whose thread ``op`` runs (an ``INLINE`` edge), if any."""
        return next((up for up, downs in self._inline.items() if op in downs), None)

    def _inline_below(self, op: Operator) -> list[Operator]:
        """The operators run in ``op``'s thread through ``INLINE`` edges, nearest first."""
        out, todo = [], list(self._inline.get(op, ()))
        while todo:
            child = todo.pop(0)
            out.append(child)
            todo.extend(self._inline.get(child, ()))
        return out

    def inbox(self, op: Operator) -> Channel | None:
        return self._inputs.get(op)

    @property
    def operators(self) -> list[Operator]:
        return list(self._operators)

    def start(self) -> "Graph":
        for op in (o for o in self._operators if self._parent(o) is None):
            thread = threading.Thread(target=self._run_op, args=(op,), name=f"{self.name}:{op.name}",
                                      daemon=True)
            self._threads.append(thread)
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        """Ask the sources to end; everything downstream drains and ends after them."""
        self.stop_event.set()

    def abort(self) -> None:
        """Stop at once: close every channel so blocked producers and consumers wake."""
        self.stop_event.set()
        for channel in self.channels:
            channel.close()

    def wait(self, timeout: float | None = None) -> bool:
        """Join every thread; True when all ended within ``timeout``."""
        deadline = None if timeout is None else time.monotonic() + timeout
        for thread in self._threads:
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            thread.join(remaining)
        return not any(t.is_alive() for t in self._threads)

    @property
    def alive(self) -> bool:
        return any(t.is_alive() for t in self._threads)

    def _emit(self, op: Operator, item: Any) -> None:
        for channel in self._outputs.get(op, ()):
            channel.put(item)
        for child in self._inline.get(op, ()):
            self._process(child, item)

    def _process(self, op: Operator, item: Any) -> None:
        """``op`` on ``item`` in the calling thread (its own, or its upstream's for an
        ``INLINE`` edge), its output passed on; a failure is counted, logged and handed to
        ``on_error``, and too many in a row stop the run."""
        try:
            out = op.process(item)
            self._consecutive[op] = 0
        except Exception as exc:
            self._consecutive[op] += 1
            consecutive = self._consecutive[op]
            self.item_errors[op.name] += 1
            log.warning("%s failed on one item (%d in a row): %s", op.name, consecutive, exc)
            if consecutive >= op.max_consecutive_errors:
                raise RuntimeError(f"{op.name}: {consecutive} consecutive failures, last: {exc}") from exc
            out = op.on_error(item, exc)
        if out is not None:
            self._emit(op, out)

    def _run_op(self, op: Operator) -> None:
        try:
            if op.nice:
                lower_this_thread(op.nice)
            if op.realtime:
                op.realtime_note = to_realtime(op.realtime)
                if op.realtime_note:
                    (log.warning if op.realtime_asked else log.info)("%s: real-time priority %s", op.name,
                                                                     op.realtime_note)
            op.setup()
            for child in self._inline_below(op):
                child.setup()
            if isinstance(op, SourceOperator):
                for item in op.items(self.stop_event):
                    self._emit(op, item)
                    if self.stop_event.is_set():
                        break
            else:
                self._drain(op, self._inputs[op])
        except BaseException as exc:  # a bug or a fatal input error: stop the run, keep the error
            log.error("%s failed: %s", op.name, exc, exc_info=not isinstance(exc, (OSError, ValueError)))
            self.errors.append((op.name, exc))
            self.fatal = self.fatal or exc
            # Stop the sources and refuse more input here (so producers blocked on this
            # operator wake), but let everything already past it drain downstream: the
            # frames processed before the failure still reach the recording.
            self.stop_event.set()
            if op in self._inputs:
                self._inputs[op].close()
        finally:
            for each in (op, *self._inline_below(op)):
                try:
                    each.teardown()
                except Exception as exc:
                    log.error("%s teardown failed: %s", each.name, exc)
                    self.errors.append((each.name, exc))
                for channel in self._outputs.get(each, ()):
                    channel.close()

    def _drain(self, op: Operator, inbox: Channel) -> None:
        while True:
            try:
                item = inbox.get(op.idle_s)
            except Closed:
                return
            except TimeoutError:
                op.on_idle()
                continue
            self._process(op, item)
