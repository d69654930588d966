"""Stopping cleanly: summaries written whole, Ctrl-C and SIGTERM held while they are.

A report or summary is written to a temporary file beside its target and renamed into
place (:func:`write_atomic`), so a reader never sees half of one; a group of files that
must agree (a report's HTML, JSON and PDF) is renamed inside :func:`deferred_signals`,
so an interruption cannot leave one file saying PASS and another saying INCOMPLETE.
"""

from __future__ import annotations

import os
import signal
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
# Set by every stop signal. The KeyboardInterrupt a handler raises can be swallowed when
# it lands in a destructor or a weakref callback ("Exception ignored in ..."): the run
# would go on as if nothing came. Whoever is about to write a verdict asks this first.
_STOP = threading.Event()


def request_stop(signum=None, frame=None) -> None:
    """Signal handler: remember the stop, then stop as Ctrl-C does."""
    _STOP.set()
    raise KeyboardInterrupt


def stop_requested() -> bool:
    return _STOP.is_set()


def clear_stop() -> None:
    _STOP.clear()


INTERRUPTED = "interrupted (Ctrl-C or SIGTERM)"


def is_stop(exc: BaseException) -> bool:
    """Whether ``exc`` ended the work because of a stop: a ``KeyboardInterrupt``, or any
    failure raised after a stop signal came. A signal that lands inside a library's native
    code can come out as that library's own error (matplotlib's "Invalid bounding box",
    a decoder's "Immediate exit requested"): it is still the stop, not a failure."""
    return isinstance(exc, KeyboardInterrupt) or _STOP.is_set()


def stop_reason(exc: BaseException) -> str:
    """The one-line reason a report gives for work ``exc`` ended: interrupted, or failed."""
    if is_stop(exc):
        return INTERRUPTED
    return f"failed: {type(exc).__name__}: {' '.join(str(exc).split())}"


def check_stop() -> None:
    """Raise ``KeyboardInterrupt`` if a stop signal came, even one whose exception was lost."""
    if _STOP.is_set():
        raise KeyboardInterrupt


@contextmanager
def deferred_signals() -> Iterator[list[int]]:
    """Hold SIGINT and SIGTERM while the block runs; one that came is then raised as
    ``KeyboardInterrupt`` (the way every command stops). Off the main thread, where
    Python cannot set handlers, the block just runs."""
    if threading.current_thread() is not threading.main_thread():
        yield []
        return
    held: list[int] = []

    def hold(signum, frame) -> None:
        _STOP.set()
        held.append(signum)

    previous = {sig: signal.signal(sig, hold) for sig in STOP_SIGNALS
                if signal.getsignal(sig) is not signal.SIG_IGN}  # an ignored Ctrl-C stays ignored
    try:
        yield held
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if held:
        raise KeyboardInterrupt


def temp_beside(path: str | Path) -> Path:
    """A new empty file in ``path``'s folder for :func:`commit` to rename onto ``path``.
    Its name is short: the target's own may already be as long as names can be."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=".nerveseg-", suffix=".partial", dir=path.parent)
    os.close(fd)
    return Path(name)


def commit(pairs: dict[Path, Path]) -> None:
    """Rename every ``temp → target`` of ``pairs`` with signals held (all or, on a crash, none)."""
    with deferred_signals():
        for temp, target in pairs.items():
            os.replace(temp, target)


def write_atomic(path: str | Path, data: str | bytes) -> Path:
    """Write ``data`` (text as UTF-8) to ``path`` whole or not at all: a temporary file
    beside it, flushed to disk, then renamed over it with signals held. A full disk or a
    kill leaves the old file (or none), never half of one; the temporary file goes."""
    temp = temp_beside(path)
    try:
        with open(temp, "wb") as handle:
            handle.write(data if isinstance(data, bytes) else data.encode("utf-8"))
            handle.flush()
            os.fsync(handle.fileno())
        commit({temp: Path(path)})
    finally:
        temp.unlink(missing_ok=True)
    return Path(path)
