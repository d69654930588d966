"""Subscribers: the live view (and tests) get every rendered frame on a pipeline thread."""

from __future__ import annotations

import logging
import threading
from typing import Callable

from ..frames import Rendered
from ..graph import Operator

log = logging.getLogger(__name__)


class SubscriberOp(Operator):
    """Calls each subscriber with every rendered frame (the live view subscribes here).
    A subscriber that raises is logged and counted, never allowed to stop the pipeline."""

    name = "subscribers"

    def __init__(self) -> None:
        self._subscribers: list[Callable[[Rendered], None]] = []
        self._lock = threading.Lock()
        self.failures = 0

    def subscribe(self, callback: Callable[[Rendered], None]) -> None:
        with self._lock:
            self._subscribers.append(callback)

    def process(self, r: Rendered) -> None:
        with self._lock:
            subscribers = list(self._subscribers)
        for callback in subscribers:
            try:
                callback(r)
            except Exception as exc:
                self.failures += 1
                log.warning("subscriber %r failed on frame %d: %s", callback, r.index, exc)
        return None
