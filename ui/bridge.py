"""Where pipeline threads hand over to the GUI thread: Qt signals, and nothing else.

Frames cross through a one-slot mailbox: the pipeline thread puts the newest frame in
it and signals only when the slot was empty, the GUI thread takes whatever is newest
when it gets round to it. That is the newest-frame policy once more at the last
boundary: a GUI busy for a second never queues thirty frames of pixels behind it, and
the frame it shows next is the latest. States and notices are rare: they travel in the
signal itself.
"""

from __future__ import annotations

import threading

from PyQt6.QtCore import QObject, pyqtSignal

from nerveseg.realtime.events import Notice, SourceState
from nerveseg.realtime.frames import Rendered
from nerveseg.realtime.layer import Layer


class Bridge(QObject):
    frame_ready = pyqtSignal()
    layer_ready = pyqtSignal()  # live passthrough: a new overlay layer (same one-slot mailbox rule)
    status = pyqtSignal(object)  # SourceState
    notice = pyqtSignal(object)  # Notice

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self._lock = threading.Lock()
        self._latest: Rendered | None = None
        self._layer: Layer | None = None
        self.replaced = 0  # frames the GUI never took because a newer one came first

    # -- any thread ------------------------------------------------------------------------

    def post_frame(self, rendered: Rendered) -> None:
        with self._lock:
            was_empty = self._latest is None
            if not was_empty:
                self.replaced += 1
            self._latest = rendered
        if was_empty:
            self.frame_ready.emit()

    def post_layer(self, layer: Layer) -> None:
        with self._lock:
            was_empty, self._layer = self._layer is None, layer
        if was_empty:
            self.layer_ready.emit()

    def post_status(self, state: SourceState) -> None:
        self.status.emit(state)

    def post_notice(self, notice: Notice) -> None:
        self.notice.emit(notice)

    # -- GUI thread ------------------------------------------------------------------------

    def take_frame(self) -> Rendered | None:
        with self._lock:
            rendered, self._latest = self._latest, None
        return rendered

    def take_layer(self) -> Layer | None:
        with self._lock:
            layer, self._layer = self._layer, None
        return layer
