"""Reading with a deadline: a decoder that stops answering ends the input, it does
not hang the replay.

A file on a stalled network share, or a decoder stuck on a pathological packet, blocks
inside FFmpeg where no Python code runs, so nothing can interrupt it. The reads run in
a worker thread instead; the consumer waits at most ``timeout`` seconds for each item
and then gives up with :class:`Stalled`. The stuck worker is a daemon: it is left
behind (it ends by itself if the read ever returns, at its next check of ``halt``).

Only time spent *waiting for the reader* counts: while the consumer is paused or held
by backpressure downstream, the worker fills its small queue and waits, and no
deadline runs.
"""

from __future__ import annotations

import queue
import threading
import time
from typing import Callable, Iterator, TypeVar

T = TypeVar("T")

_POLL_S = 0.05  # how often each side looks at the stop events


class Stalled(Exception):
    """The reader delivered nothing for longer than the deadline."""


class _End:
    def __init__(self, error: BaseException | None = None):
        self.error = error


def _offer(box: queue.Queue, item: object, halt: threading.Event) -> bool:
    """Put ``item`` unless ``halt`` is set first; True when it was put."""
    while not halt.is_set():
        try:
            box.put(item, timeout=_POLL_S)
            return True
        except queue.Full:
            continue
    return False


def with_deadline(read: Callable[[threading.Event], Iterator[T]], stop: threading.Event, timeout: float,
                  name: str = "reader", depth: int = 2) -> Iterator[T]:
    """Yield what ``read(halt)`` yields, read in a worker thread, in order.

    Ends when the reader ends or ``stop`` is set; raises :class:`Stalled` when the
    reader gives nothing for ``timeout`` seconds; re-raises the reader's own
    exception. ``read`` must check ``halt`` between items so it ends when asked."""
    if timeout <= 0:
        raise ValueError(f"stall timeout must be positive, not {timeout}")
    box: queue.Queue = queue.Queue(maxsize=depth)
    halt = threading.Event()

    def work() -> None:
        try:
            for item in read(halt):
                if not _offer(box, item, halt):
                    return
            _offer(box, _End(), halt)
        except BaseException as exc:  # handed to the consumer, which decides
            _offer(box, _End(exc), halt)

    worker = threading.Thread(target=work, name=f"{name}:read", daemon=True)
    worker.start()
    try:
        yield from _consume(box, stop, timeout)
    finally:
        halt.set()
        worker.join(1.0)  # a worker stuck in a read stays behind as a daemon


def _consume(box: queue.Queue, stop: threading.Event, timeout: float) -> Iterator:
    deadline = time.monotonic() + timeout
    while not stop.is_set():
        try:
            item = box.get(timeout=_POLL_S)
        except queue.Empty:
            if time.monotonic() > deadline:
                raise Stalled(f"no frame decoded for {timeout:g} s") from None
            continue
        if isinstance(item, _End):
            if item.error is not None:
                raise item.error
            return
        yield item
        deadline = time.monotonic() + timeout
