"""The picture first: live passthrough lowers the OS priority of the inference threads.

On a machine whose cores the networks keep busy (two cores, 1080p60), the display path's
few milliseconds of work per frame (cut the view, hand it over, convert, scale, blit)
queue behind inference for the CPU, and the video delay's tail grows with them
(docs/LIVE.md, docs/BENCHMARKS.md "Live display"). Lowering the inference threads'
priority (``nice``) lets the kernel run the display path first whenever it is ready, while
inference still gets every cycle the display leaves: no core is reserved and idle.

Raising a priority back needs privileges an operating-room account should not have, so
this only ever lowers: the inference operators' threads (lowered from inside themselves,
at the start of each run: new threads every run) and the engines' own worker threads
(ONNX Runtime's intra-op pool, made when an engine loads and kept with it: lowered once,
they stay lowered for the engines' life, which costs nothing once inference already runs
at that level).

Per-thread priorities are Linux's (``setpriority`` on a thread id); elsewhere nothing is
changed and the run's summary says so.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from contextlib import contextmanager
from pathlib import Path

from nerveseg.engines.checks import Range

log = logging.getLogger(__name__)

#: how far inference may be lowered: 0 (not at all) to 19 (the lowest Linux priority)
NICE = Range(0, 19)
SUPPORTED = sys.platform.startswith("linux") and hasattr(os, "setpriority")
_TASKS = Path("/proc/self/task")


def thread_ids() -> set[int]:
    """The native ids of this process's threads (Linux; empty elsewhere)."""
    if not SUPPORTED:
        return set()
    try:
        return {int(p.name) for p in _TASKS.iterdir()}
    except OSError:
        return set()


@contextmanager
def threads_started(into: set):
    """Adds to ``into`` the ids of the threads started while the block ran and still alive
    after it (an engine's worker pool, made when the engine loads)."""
    before = thread_ids()
    yield into
    into.update(thread_ids() - before)


def lower(tid: int, by: int) -> bool:
    """Lower thread ``tid``'s priority to ``by`` above the process's (nice), never raising
    it; True when it is at that level or lower now."""
    if not SUPPORTED or by <= 0:
        return False
    try:
        base = os.getpriority(os.PRIO_PROCESS, os.getpid())
        target = min(19, base + by)
        if os.getpriority(os.PRIO_PROCESS, tid) < target:
            os.setpriority(os.PRIO_PROCESS, tid, target)
        return True
    except OSError as exc:  # the thread ended, or a policy refuses: the run goes on as it is
        log.debug("thread %d: priority not lowered (%s)", tid, exc)
        return False


def lower_this_thread(by: int) -> bool:
    """Lower the calling thread's priority (see :func:`lower`)."""
    return lower(threading.get_native_id(), by)


def lower_all(tids, by: int) -> int:
    """Lower each of ``tids``; how many are now at that level or lower."""
    return sum(lower(t, by) for t in sorted(tids))


def thread_nice(tid: int | None = None) -> int | None:
    """The nice value of ``tid`` (default: the calling thread); None where unsupported."""
    if not SUPPORTED:
        return None
    try:
        return os.getpriority(os.PRIO_PROCESS, threading.get_native_id() if tid is None else tid)
    except OSError:
        return None
