"""The on-screen end of the delay measurement: the view's own widget, painting.

It lives in ``ui/`` (Qt stays there) and measures the real thing: the view's :class:`Bridge` (the one-slot mailbox to the GUI thread) and its
:class:`FrameView` (the ``QImage`` over the rendered array, scaled into the window), wired
as ``ViewWindow._on_frame_ready`` wires them. Imported only when ``--display qt`` runs.
Without a working display Qt paints offscreen: the same paint code, minus the
compositor and the monitor.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from typing import Callable

from PyQt6.QtCore import QCoreApplication, QEvent, QEventLoop, QTimer
from PyQt6.QtWidgets import QApplication

from nerveseg.realtime.frames import Rendered, now_ns
from nerveseg.realtime.display_probe import SCREEN, Handoff, Shown, run_until_done
from nerveseg.realtime.priority import realtime_while

from .bridge import Bridge
from .frame_view import FrameView


def _choose_platform() -> None:
    """Paint on the real display when there is one that works, else offscreen. A display
    that is named but unreachable would make Qt abort the process, so it is tried in a
    child process first."""
    if os.environ.get("QT_QPA_PLATFORM") or QApplication.instance() is not None:
        return
    if os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"):
        probe = "from PyQt6.QtWidgets import QApplication; QApplication([])"
        try:
            if subprocess.run([sys.executable, "-c", probe], capture_output=True, timeout=30).returncode == 0:
                return
        except subprocess.TimeoutExpired:
            pass
    os.environ["QT_QPA_PLATFORM"] = "offscreen"


class StampedView(FrameView):
    """A :class:`FrameView` that notes when the GUI thread took each frame and when the
    first paint showing it finished."""

    def __init__(self):
        super().__init__()
        self.received: dict[int, int] = {}
        self.painted: dict[int, int] = {}
        self.layer_painted: dict[int, int] = {}  # passthrough: first paint that showed each layer

    def set_frame(self, rendered: Rendered) -> None:
        self.received.setdefault(rendered.index, now_ns())
        super().set_frame(rendered)

    def paintEvent(self, event) -> None:
        super().paintEvent(event)
        if self.rendered is not None:
            t = now_ns()
            self.painted.setdefault(self.rendered.index, t)
            if self.layer is not None and self.layer_alpha > 0:
                self.layer_painted.setdefault(self.layer.index, t)


class QtPaintProbe:
    method = "qt-paint"

    def __init__(self, size: tuple[int, int] = SCREEN):
        _choose_platform()
        self.app = QApplication.instance() or QApplication(["nerveseg-validate"])
        self.bridge = Bridge()
        self.view = StampedView()
        self.view.resize(*size)
        self.view.show()
        self.bridge.frame_ready.connect(self._on_frame_ready)
        self.bridge.layer_ready.connect(self._on_layer_ready)
        self._handoffs: dict[int, Handoff] = {}
        self._layers: dict[int, Handoff] = {}
        self._layer_received: dict[int, int] = {}
        self._lock = threading.Lock()
        self.reason = ""
        self.gui_realtime = "off"  # drive(): what this thread got (realtime/priority.py status)

    def attach(self, pipeline) -> None:
        pipeline.subscribe(self._post)
        pipeline.subscribe_layers(self._post_layer)
        self.view.display = pipeline.config.display

    def _post_layer(self, layer) -> None:  # the overlay's thread
        with self._lock:
            self._layers.setdefault(layer.index, Handoff.of_layer(layer))
        self.bridge.post_layer(layer)

    def _on_layer_ready(self) -> None:  # the GUI thread: as ViewWindow._on_layer_ready
        layer = self.bridge.take_layer()
        if layer is not None:
            self._layer_received.setdefault(layer.index, now_ns())
            self.view.set_layer(layer)

    def _post(self, r: Rendered) -> None:  # a pipeline thread
        with self._lock:
            self._handoffs.setdefault(r.index, Handoff.of(r))
        self.bridge.post_frame(r)

    def _on_frame_ready(self) -> None:  # the GUI thread: as ViewWindow._on_frame_ready
        rendered = self.bridge.take_frame()
        if rendered is not None:
            self.view.set_frame(rendered)

    def _events(self, seconds: float) -> None:
        loop = QEventLoop()
        QTimer.singleShot(max(1, int(seconds * 1000)), loop.quit)
        loop.exec()

    def drive(self, pipeline, tick: Callable[[], None], deadline_s: float) -> None:
        """Run ``pipeline`` to its end, painting; with ``display.realtime_priority`` (live
        passthrough) this GUI thread runs real-time meanwhile, as the view's does."""
        priority = pipeline.config.display.realtime()[0] if pipeline.passthrough and pipeline.live else 0
        with realtime_while(priority) as self.gui_realtime:
            run_until_done(pipeline, tick, deadline_s, self._events)
            self._events(0.1)  # the last frame's paint

    def shown(self) -> list[Shown]:
        with self._lock:
            handoffs = dict(self._handoffs)
        out = []
        for index, painted in sorted(self.view.painted.items()):
            h = handoffs.get(index)
            if h is not None:
                out.append(Shown(index, h.captured_ns, h.stamps, h.segmented, h.handoff_ns,
                                 self.view.received[index], painted))
        return out

    def layers_shown(self) -> list[Shown]:
        """Passthrough: each overlay layer from its frame's capture to the first paint that
        showed it (a layer that arrived with its frame counts as received then)."""
        with self._lock:
            handoffs = dict(self._layers)
        out = []
        for index, painted in sorted(self.view.layer_painted.items()):
            h = handoffs.get(index)
            if h is not None:
                received = min(self._layer_received.get(index, painted), painted)
                out.append(Shown(index, h.captured_ns, h.stamps, h.segmented, h.handoff_ns, received, painted))
        return out

    def picture(self) -> str:
        """How the last frame was shown in the window: its size, and 1:1 or scaled."""
        rect = self.view.image_rect()
        if rect is None:
            return "no frame"
        w, h = self.view.frame_size()
        how = "one frame pixel per screen pixel" if (rect.width(), rect.height()) == (w, h) else (
            f"scaled to {rect.width():.0f}x{rect.height():.0f}")
        return f"the {w}x{h} picture {how} (display.scale {self.view.display.scale})"

    def describe(self) -> dict:
        return {"method": self.method, "platform": self.app.platformName(),
                "on_screen_means": (f"the end of the view's paint of the frame (nerveseg.ui FrameView, "
                                    f"{self.view.width()}x{self.view.height()}, {self.picture()}, Qt platform "
                                    f"'{self.app.platformName()}'); the compositor, the display's refresh and "
                                    f"the monitor's input lag come on top"),
                "picture": self.picture(),
                "fallback_reason": None, "not_shown_at_view": self.bridge.replaced + self._unpainted(),
                "gui_thread_realtime": self.gui_realtime}

    def _unpainted(self) -> int:
        """Frames the GUI thread took but replaced before a paint showed them."""
        return len(set(self.view.received) - set(self.view.painted))

    def close(self) -> None:
        """The window and its bridge deleted now, while the run is known to be over.
        ``processEvents`` alone leaves a ``deleteLater`` pending until some later event
        loop, which may be the next probe's, in the middle of another run."""
        self.view.close()
        self.view.deleteLater()
        self.bridge.deleteLater()
        self.app.processEvents()
        QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete.value)
