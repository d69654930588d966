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

The other direction, opt-in (``display.realtime_priority``): the display path's own threads
(the capture thread, which shows each frame inline, and the GUI thread that paints it) run
under ``SCHED_FIFO``, so the kernel gives them a core the moment they are ready instead of
at the next time slice. Threads they start go back to the normal policy (reset on fork), and
the kernel's real-time throttling (95 % of each second) keeps a runaway one from taking a
core for good. It needs the right to (``CAP_SYS_NICE``, or an ``rtprio`` limit for the
account: ``ulimit -r``, ``/etc/security/limits.d``); without it the run goes on at the
normal policy and says why.
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


def to_realtime(priority: int, tid: int = 0) -> str | None:
    """Put thread ``tid`` (0: the calling thread) under ``SCHED_FIFO`` at ``priority``, the
    threads it starts back at the normal policy; None when done, else why not (one line)."""
    if priority <= 0:
        return "off (display.realtime_priority 0)"
    if not SUPPORTED or not hasattr(os, "SCHED_FIFO"):
        return "real-time priorities are Linux's: not used on this system"
    try:
        os.sched_setscheduler(tid, os.SCHED_FIFO | os.SCHED_RESET_ON_FORK, os.sched_param(priority))
        return None
    except PermissionError:
        return ("not permitted: the account needs an rtprio limit (ulimit -r, /etc/security/limits.d) or "
                "CAP_SYS_NICE; the display path runs at the normal policy")
    except OSError as exc:
        return f"not set ({exc.strerror or exc})"


def status(priority: int, refused: str | None) -> str:
    """What a display-path thread got, in words: ``off``, the refusal, or ``real-time (fifo)``."""
    return "off" if priority <= 0 else refused or "real-time (fifo)"


@contextmanager
def realtime_while(priority: int):
    """The calling thread real-time at ``priority`` for the block (0: left as it is), back at
    the normal policy after; yields :func:`status`."""
    refused = to_realtime(priority) if priority > 0 else None
    try:
        yield status(priority, refused)
    finally:
        if priority > 0 and refused is None:
            to_normal()


def to_normal(tid: int = 0) -> None:
    """Thread ``tid`` back to the normal policy (it may have ended: nothing to do then)."""
    if SUPPORTED and hasattr(os, "SCHED_OTHER"):
        try:
            os.sched_setscheduler(tid, os.SCHED_OTHER, os.sched_param(0))
        except OSError:
            pass


def policy_name(tid: int = 0) -> str | None:
    """``"fifo"``, ``"other"``, ... for thread ``tid`` (0: the calling one); None where unknown."""
    if not SUPPORTED or not hasattr(os, "sched_getscheduler"):
        return None
    try:
        policy = os.sched_getscheduler(tid) & ~getattr(os, "SCHED_RESET_ON_FORK", 0)
    except OSError:
        return None
    names = {getattr(os, f"SCHED_{n.upper()}", None): n for n in ("other", "fifo", "rr", "batch", "idle")}
    return names.get(policy, str(policy))
