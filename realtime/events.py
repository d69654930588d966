"""What the pipeline tells its onlookers besides frames: the source's state and notices.

Both are small immutable records handed to callbacks on a pipeline thread; the Qt view
turns them into signals. A callback that raises is logged, never allowed to stop the
thread that reports.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Callable, Generic, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")

#: source states, in the words the view shows
STATES = ("starting", "ok", "paused", "no signal", "ended", "failed")


@dataclass(frozen=True)
class SourceState:
    """``state``: one of :data:`STATES`. ``frames``: frames the source delivered so far.
    ``message``: one line for a person (``"camera 0 not available; retrying in 1.00 s"``)."""

    state: str
    message: str = ""
    source: str = ""
    frames: int = 0

    @property
    def text(self) -> str:
        return f"{self.state}: {self.message}" if self.message else self.state


@dataclass(frozen=True)
class Notice:
    """Something that happened once, for the operator to read: ``kind`` is
    ``recording`` (started), ``saved`` (a recording was closed), ``empty`` (a
    recording closed before its first frame: no file) or ``error``."""

    kind: str
    message: str
    path: str | None = None
    frames: int = 0


class Listeners(Generic[T]):
    """A thread-safe list of callbacks, each called with every value."""

    def __init__(self) -> None:
        self._callbacks: list[Callable[[T], None]] = []
        self._lock = threading.Lock()

    def add(self, callback: Callable[[T], None]) -> None:
        with self._lock:
            self._callbacks.append(callback)

    def __call__(self, value: T) -> None:
        with self._lock:
            callbacks = list(self._callbacks)
        for callback in callbacks:
            try:
                callback(value)
            except Exception as exc:
                log.warning("listener %r failed on %r: %s", callback, value, exc)
