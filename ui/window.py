"""The operating-room window: the picture, the controls, the status bar.

The window only talks to a :class:`ViewSession` (which runs the pipeline on its own
threads) and listens to a :class:`Bridge` (signals from those threads). Nothing here
waits on inference or file I/O; every problem becomes a message in the window.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from pathlib import Path
from typing import Callable

from PyQt6.QtCore import Qt, QTimer
from PyQt6.QtGui import QAction, QActionGroup, QKeySequence
from PyQt6.QtWidgets import (QApplication, QComboBox, QFileDialog, QInputDialog, QLabel, QMainWindow, QSlider,
                             QToolBar)

from nerveseg.realtime.config import PipelineConfig
from nerveseg.engines.errors import UserError
from nerveseg.realtime.events import Notice, SourceState
from nerveseg.realtime.pipeline import Engines
from nerveseg.engines.preprocess import EYES, Box
from nerveseg.realtime.roi import roi_text

from .bridge import Bridge
from .frame_view import FrameView
from .session import ViewSession

log = logging.getLogger(__name__)

VIDEO_FILTER = "Video (*.mp4 *.avi *.mov *.mkv *.m4v *.mpg);;All files (*)"
TOAST_STYLE = ("QLabel {{ background: rgba(20, 20, 20, 215); color: {colour}; padding: 8px 14px;"
               " border-radius: 6px; font-size: 15px; font-weight: bold; }}")


def provenance_text(provenance: dict) -> str:
    """``gate: model [classes] backend sha256:…``, one line per engine."""
    return "\n".join(f"{role}: {p['model']} [{'/'.join(p['classes'])}] {p['backend']} sha256:{p['sha256'][:12]}"
                     for role, p in provenance.items())


class ViewWindow(QMainWindow):
    """``camera_opener`` and ``signal_timeout`` go to the session (tests use a fake camera)."""

    def __init__(self, config: PipelineConfig, engines: Engines, out_dir: Path,
                 camera_opener: Callable | None = None, signal_timeout: float = 0.5):
        super().__init__()
        self.setWindowTitle("nerveseg view")
        self.bridge = Bridge(self)
        self.session = ViewSession(config, engines, out_dir, self.bridge.post_frame, self.bridge.post_status,
                                   self.bridge.post_notice, camera_opener, signal_timeout,
                                   on_layer=self.bridge.post_layer)
        self.view = FrameView(self)
        self.view.display = config.display
        self.view.set_state(SourceState("no source", "open a video (Ctrl+O) or a camera (Ctrl+K)"))
        self.setCentralWidget(self.view)
        self.frames_shown = 0
        self._max_height = config.source.max_height
        self._size_told = False  # the hint below, once per source
        self.messages: list[str] = []  # everything told to the operator, newest last
        self.recording_path: str | None = None
        self._closed = False
        self._build_toast()
        self._build_toolbar(config)
        self._build_status_bar(engines)
        self.bridge.frame_ready.connect(self._on_frame_ready)
        self.bridge.layer_ready.connect(self._on_layer_ready)
        self.bridge.status.connect(self._on_status)
        self.bridge.notice.connect(self._on_notice)
        self.view.roi_drawn.connect(self._on_roi)
        self._clock = QTimer(self, interval=500, timeout=self.view.update)  # the REC clock
        self.view.setFocus()  # keys go to the picture (region drawing) and the shortcuts

    # -- building ----------------------------------------------------------------------

    def _action(self, text: str, keys: str | list[str], slot, checkable: bool = False, tip: str = "") -> QAction:
        action = QAction(text, self, checkable=checkable)
        keys = [keys] if isinstance(keys, str) else keys
        action.setShortcuts([QKeySequence(k) for k in keys])
        action.setToolTip(f"{tip or text} ({', '.join(keys)})")
        action.triggered.connect(slot)
        self.addAction(action)  # shortcuts work wherever the focus is
        return action

    def _slider(self, low: int, high: int, value: int, slot) -> QSlider:
        slider = QSlider(Qt.Orientation.Horizontal, minimum=low, maximum=high, value=value)
        slider.setFixedWidth(90)
        slider.setFocusPolicy(Qt.FocusPolicy.NoFocus)  # keys belong to the shortcuts
        slider.valueChanged.connect(slot)
        return slider

    def _build_toolbar(self, config: PipelineConfig) -> None:
        bar = QToolBar("controls", self, movable=False)
        self.addToolBar(bar)
        self.open_action = self._action("Video…", "Ctrl+O", self.choose_file, tip="Open a video file")
        self.folder_action = self._action("Folder…", "Ctrl+Shift+O", self.choose_folder, tip="Open an image folder")
        self.camera_action = self._action("Camera…", "Ctrl+K", self.choose_camera, tip="Pick a camera by index")
        self.pause_action = self._action("Pause", "Space", self.set_paused, checkable=True,
                                         tip="Pause / resume (a finished video plays again)")
        self.record_action = self._action("Record", "R", self.set_recording, checkable=True,
                                          tip="Record the annotated view to AVI, per-frame CSV beside it")
        self.snapshot_action = self._action("Snapshot", "S", self.snapshot, tip="Save the frame on screen as PNG")
        for action in (self.open_action, self.folder_action, self.camera_action):
            bar.addAction(action)
        bar.addSeparator()
        for action in (self.pause_action, self.record_action, self.snapshot_action):
            bar.addAction(action)
        bar.addSeparator()
        self._build_view_controls(bar, config)

    def _build_view_controls(self, bar: QToolBar, config: PipelineConfig) -> None:
        """Eye, opacity, threshold and region: what changes the picture."""
        self.eye_box = QComboBox()
        self.eye_box.addItems(EYES)
        self.eye_box.setCurrentText(config.preprocess.eye)
        self.eye_box.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.eye_box.setToolTip("eye: left (1), right (2), full stereo frame (3)")
        self.eye_box.currentTextChanged.connect(self.set_eye)
        for i, eye in enumerate(EYES):
            self._action(f"{eye} eye", str(i + 1), lambda _=False, e=eye: self.eye_box.setCurrentText(e))
        bar.addWidget(QLabel(" Eye "))
        bar.addWidget(self.eye_box)
        self.steady_action = self._action("Steady", "T", self.set_steady, checkable=True,
                                          tip="Steady overlay: a nerve-probability band and a running average "
                                              "of the mask, against flicker (YAML section 'steady')")
        self.steady_action.setChecked(not config.steady.off)
        bar.addAction(self.steady_action)
        self.recrop_action = self._action("Re-crop", "F", self.recrop,
                                          tip="Find the glare-border crop again (it is otherwise fixed for the run)")
        bar.addAction(self.recrop_action)
        self.opacity_label, self.threshold_label = QLabel(), QLabel()
        self.opacity_slider = self._slider(0, 100, round(config.overlay.opacity * 100), self.set_opacity)
        self.threshold_slider = self._slider(5, 95, round(config.segment.threshold * 100), self.set_threshold)
        for label, slider in ((self.opacity_label, self.opacity_slider), (self.threshold_label, self.threshold_slider)):
            bar.addWidget(label)
            bar.addWidget(slider)
        self._step_keys(self.opacity_slider, "[", "]", 10)
        self._step_keys(self.threshold_slider, "-", "=", 5)
        self._show_levels()
        bar.addSeparator()
        group = QActionGroup(self)
        self.rect_action = self._action("Rectangle", "B", lambda: self._roi_mode("rect"), checkable=True,
                                        tip="Drag a rectangle on the picture")
        self.poly_action = self._action("Polygon", "P", lambda: self._roi_mode("polygon"), checkable=True,
                                        tip="Click corners; double-click or Enter closes, Esc abandons")
        self.clear_action = self._action("Clear", ["Delete", "C"], self.clear_roi,
                                         tip="Clear the region: segment the whole field")
        for action in (self.rect_action, self.poly_action):
            group.addAction(action)
        self.rect_action.setChecked(True)
        bar.addWidget(QLabel(" Region "))
        for action in (self.rect_action, self.poly_action, self.clear_action):
            bar.addAction(action)

    def _step_keys(self, slider: QSlider, down: str, up: str, step: int) -> None:
        self._action(f"{down}", down, lambda: slider.setValue(slider.value() - step))
        self._action(f"{up}", up, lambda: slider.setValue(slider.value() + step))

    def _build_status_bar(self, engines: Engines) -> None:
        status = self.statusBar()
        self.source_label = QLabel("no source")
        self.provenance_label = QLabel(provenance_text(engines.provenance()))
        self.provenance_label.setToolTip("\n".join(f"{role}: {p['path']} ({p['device']}) sha256:{p['sha256']}"
                                                   for role, p in engines.provenance().items()))
        status.addWidget(self.source_label, 1)
        status.addPermanentWidget(self.provenance_label)

    def _build_toast(self) -> None:
        self.toast = QLabel(self.view)
        self.toast.hide()
        self._toast_timer = QTimer(self, singleShot=True, interval=6000, timeout=self.toast.hide)

    # -- telling the operator ----------------------------------------------------------

    def tell(self, text: str, error: bool = False) -> None:
        """A message in the window: over the picture for a few seconds, and in the log."""
        (log.warning if error else log.info)("%s", text)
        self.messages.append(text)
        self.toast.setStyleSheet(TOAST_STYLE.format(colour="#ff7070" if error else "#f0f0f0"))
        self.toast.setText(text)
        self.toast.setMaximumWidth(max(200, self.view.width() - 20))
        self.toast.setWordWrap(True)
        self.toast.adjustSize()
        self.toast.move((self.view.width() - self.toast.width()) // 2, 12)
        self.toast.show()
        self.toast.raise_()
        self._toast_timer.start()

    # -- sources -----------------------------------------------------------------------

    def open_source(self, spec: str, roi=None, record: bool = False) -> None:
        """Switch to a camera index, video file or image folder (optionally with a
        region, recording from the start). Opened off the GUI thread: a source that
        cannot be opened comes back as a message, the current source running on."""
        self.session.open(spec, roi, record)

    def choose_file(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open video", str(Path.cwd()), VIDEO_FILTER)
        if path:
            self.open_source(path)

    def choose_folder(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Open image folder", str(Path.cwd()))
        if path:
            self.open_source(path)

    def choose_camera(self) -> None:
        index, ok = QInputDialog.getInt(self, "Camera", "Camera index:", 0, 0, 63)
        if ok:
            self.open_source(str(index))

    # -- controls ----------------------------------------------------------------------

    def set_paused(self, paused: bool) -> None:
        self.pause_action.setChecked(self.session.set_paused(bool(paused)))

    def set_recording(self, on: bool) -> None:
        if not on:
            self.session.stop_recording()
            return
        try:
            self.recording_path = str(self.session.start_recording())
        except UserError as exc:
            self.record_action.setChecked(False)
            self.tell(f"cannot record: {exc}", error=True)

    def snapshot(self) -> None:
        try:
            r = self.view.rendered
            # what the surgeon sees: a passthrough frame with its overlay layer as painted
            self.session.snapshot(None if r is None else dataclasses.replace(r, image=self.view.shown_image()))
        except UserError as exc:
            self.tell(f"cannot save a snapshot: {exc}", error=True)

    def set_eye(self, eye: str) -> None:
        try:
            cleared = self.session.set_eye(eye)
        except UserError as exc:
            self.tell(str(exc), error=True)
            return
        self.view.cancel_drawing()
        self.tell(f"{eye} eye" + (" (region cleared: it was drawn on the other picture)" if cleared else ""))

    def set_steady(self, on: bool) -> None:
        s = self.session.set_steady(on)
        self.tell(f"steady overlay on: band {s.leave:.2f}-{s.enter:.2f}, {s.frames_in} frames in, "
                  f"{s.frames_out} out, newest mask weight {s.alpha:.2f}" if on else "steady overlay off")

    def recrop(self) -> None:
        cleared = self.session.recrop()
        self.view.cancel_drawing()
        self.tell("finding the border crop again" + (" (region cleared: it was drawn on the old crop)" if cleared else ""))

    def set_opacity(self, value: int) -> None:
        self.session.set_opacity(value / 100)
        self._show_levels()

    def set_threshold(self, value: int) -> None:
        self.session.set_threshold(value / 100)
        self._show_levels()

    def _show_levels(self) -> None:
        self.opacity_label.setText(f" Opacity {self.opacity_slider.value():3d}% ")
        self.threshold_label.setText(f"  Threshold {self.threshold_slider.value() / 100:.2f} ")

    def _roi_mode(self, mode: str) -> None:
        self.view.cancel_drawing()
        self.view.roi_mode = mode

    def _on_roi(self, roi) -> None:
        self.session.set_roi(roi)
        kind = "rectangle" if isinstance(roi, Box) else "polygon"
        self.tell(f"segmentation restricted to the {kind} {roi_text(roi)}; Delete clears it")

    def clear_roi(self) -> None:
        self.view.cancel_drawing()
        if self.session.settings.roi is not None:
            self.session.set_roi(None)
            self.tell("region cleared: the whole field is segmented")

    # -- from the pipeline -------------------------------------------------------------

    def _on_frame_ready(self) -> None:
        rendered = self.bridge.take_frame()
        if rendered is not None:
            self.view.set_frame(rendered)
            self.frames_shown += 1
            if not self._size_told:
                self._size_told = True
                self._hint_size(rendered.frame.image.shape[0], rendered.frame.image.shape[1])

    def screen_rows(self) -> int:
        """The rows of the screen the window is on, in device pixels."""
        screen = self.screen() or QApplication.primaryScreen()
        return round(screen.geometry().height() * screen.devicePixelRatio())

    def _hint_size(self, height: int, width: int) -> None:
        """Frames taller than the screen, and ``source.max_height`` not set: say once that
        every stage could work at the size shown (a 4K source on a 1080p monitor)."""
        rows = self.screen_rows()
        if not self._max_height and height > rows:
            self.tell(f"{width}x{height} frames on a {rows}-row screen: --max-height {rows} (source.max_height) "
                      f"would do every stage at the size shown, with masks sooner (docs/SOURCES.md)")

    def _on_layer_ready(self) -> None:
        layer = self.bridge.take_layer()
        if layer is not None:
            self.view.set_layer(layer)

    def _on_status(self, state: SourceState) -> None:
        if state.state == "starting":  # a new source: the old one's drawing, overlay and pause are gone
            self._size_told = False
            self.view.cancel_drawing()
            self.view.layer = None
            self.pause_action.setChecked(False)
        self.view.set_state(state)
        self.source_label.setText(f"{state.source}: {state.text}")
        if state.state in ("ok", "ended", "no signal"):
            self.pause_action.setChecked(False)

    def _on_notice(self, notice: Notice) -> None:
        if notice.kind == "recording":  # only this window starts recordings
            self.recording_path = notice.path
        mine = notice.path is not None and notice.path == self.recording_path
        if notice.kind == "recording":
            self.view.recording_since = time.monotonic()
            self.record_action.setChecked(True)
            self._clock.start()
        elif notice.kind in ("saved", "empty", "error") and mine:
            self.view.recording_since = None
            self.record_action.setChecked(False)
            self._clock.stop()
        self.tell(notice.message, error=notice.kind == "error")

    def showEvent(self, event) -> None:
        super().showEvent(event)
        self.view.setFocus()

    # -- closing -----------------------------------------------------------------------

    def closeEvent(self, event) -> None:
        if not self._closed:
            self._closed = True
            self._clock.stop()
            self._toast_timer.stop()
            if not self.session.close():
                log.warning("a pipeline thread did not stop in time (left as a daemon)")
        event.accept()
