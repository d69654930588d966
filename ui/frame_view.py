"""The picture: the annotated frame, scaled to the widget with its aspect ratio kept,
the source's state over it, and the surgeon's region drawn with the mouse.

The widget keeps the record's ``(h, w, 3) uint8 RGB`` array (no copy). For the paint the
frame is scaled once to the size it is shown at, by OpenCV (bilinear up, area down) into a
32-bit image Qt blits without converting (the ``QImage`` wraps that image's pixels, which
the widget keeps with it): Qt's own smooth scaling of a 24-bit image into a
1920×1080 window took 9.5 ms of the GUI thread per frame, this takes about a quarter of that
(``tests/test_ui_view.py`` checks the picture is the same).

Live passthrough (docs/LIVE.md): the frame arrives raw and the overlay layer separately;
the layer is composited over whatever frame is shown, at the opacity its age gives
(:class:`~nerveseg.realtime.layer.DisplayConfig`), by the same function the "as shown"
recording uses, so a recording shows what the screen showed.

Regions: in ``rect`` mode a left-button drag draws a rectangle; in ``polygon`` mode each
click adds a corner and a double-click, Enter or a click on the first corner closes it
(Esc abandons it). The finished region is emitted in frame pixels.
"""

from __future__ import annotations

import time

import cv2
import numpy as np
from PyQt6.QtCore import QPointF, QRectF, Qt, QTimer, pyqtSignal
from PyQt6.QtGui import QColor, QFont, QImage, QPainter, QPen, QPolygonF
from PyQt6.QtWidgets import QSizePolicy, QWidget

from nerveseg.realtime.events import SourceState
from nerveseg.realtime.frames import Rendered, now_ns
from nerveseg.realtime.layer import DisplayConfig, Layer, blend_bgrx, composite
from nerveseg.engines.preprocess import Box
from nerveseg.realtime.roi import Polygon

ROI_PEN = QColor(40, 200, 255)
BANNERS = {"no signal": ("NO SIGNAL", QColor(255, 70, 70)), "ended": ("END OF VIDEO", QColor(255, 210, 90)),
           "paused": ("PAUSED", QColor(255, 210, 90)), "failed": ("STOPPED", QColor(255, 70, 70)),
           "starting": ("STARTING", QColor(200, 200, 200)), "no source": ("NO SOURCE", QColor(200, 200, 200))}
MIN_DRAG = 4  # frame pixels: a shorter drag is a click, not a region
FADE_TICK_MS = 40  # without new frames, a visible overlay layer is repainted this often
LAYER_WAIT_MS = 50  # a new layer waits this long at most for the next frame's paint
STALL_MS = 80  # no frame for this long: the source has stalled, the view repaints by itself


def fit_rect(image_w: int, image_h: int, area: QRectF) -> QRectF:
    """The largest rectangle of the image's aspect ratio centred in ``area``."""
    scale = min(area.width() / image_w, area.height() / image_h)
    w, h = image_w * scale, image_h * scale
    return QRectF(area.x() + (area.width() - w) / 2, area.y() + (area.height() - h) / 2, w, h)


class FrameView(QWidget):
    roi_drawn = pyqtSignal(object)  # Box | Polygon, frame pixels

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setMinimumSize(320, 240)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.setMouseTracking(True)
        self.rendered: Rendered | None = None
        self._array: np.ndarray | None = None
        # The frame as painted: ((frame array, layer, opacity, w, h) it was made from, QImage,
        # the QImage's pixels).
        self._scaled: tuple[tuple, QImage, np.ndarray] | None = None
        self.state = SourceState("starting", "no source open yet")
        self.recording_since: float | None = None
        self.display_ms = 0.0  # capture → GUI thread, for the newest frame
        # Live passthrough: the overlay layer drawn over whatever frame is shown, faded by
        # its age as ``display`` says; the opacity and age it had at the last paint.
        self.display = DisplayConfig()
        self.layer: Layer | None = None
        self.layer_alpha = 0.0
        self.layer_age_ms: float | None = None
        self._fade_clock = QTimer(self, interval=FADE_TICK_MS, timeout=self._fade_tick)
        self._layer_wait = QTimer(self, singleShot=True, timeout=self._layer_waited)
        self._received_ns: int | None = None  # when the newest frame arrived
        self._frame_ms = 0.0  # the frames' recent interval (ms, a running average)
        self._painted_layer: Layer | None = None  # the layer the last paint drew
        self._layer_arrived_ns = 0  # when the newest layer arrived
        self.roi_mode = "rect"
        self._drag: tuple[QPointF, QPointF] | None = None
        self._corners: list[QPointF] = []
        self._hover: QPointF | None = None

    # -- content -----------------------------------------------------------------------

    def set_frame(self, rendered: Rendered) -> None:
        self._array, self.rendered = rendered.image, rendered
        now = now_ns()
        if self._received_ns is not None:
            gap = min((now - self._received_ns) / 1e6, 1000.0)
            self._frame_ms = gap if not self._frame_ms else 0.9 * self._frame_ms + 0.1 * gap
        self._received_ns = now
        self.display_ms = (now_ns() - rendered.frame.captured_ns) / 1e6
        self._newer_layer(getattr(rendered, "layer", None))
        self.update()

    def set_layer(self, layer: Layer) -> None:
        """A new overlay layer (live passthrough). Frames arriving: the next frame's paint
        shows it (within one and a half frame periods, at most :data:`LAYER_WAIT_MS`, else a
        paint of its own); no frame lately: at once. A paint per layer on top of a paint per
        frame would double the GUI's work, and slow the picture."""
        if not self._newer_layer(layer):
            return
        self._layer_arrived_ns = now_ns()
        wait = self._layer_wait_ms()
        if self._received_ns is not None and (now_ns() - self._received_ns) / 1e6 < wait:
            if not self._layer_wait.isActive():
                self._layer_wait.start(round(wait))
        else:
            self.update()

    def _layer_wait_ms(self) -> float:
        return min(LAYER_WAIT_MS, 1.5 * self._frame_ms) if self._frame_ms else 0.0

    def _layer_waited(self) -> None:
        """The wait is up: paint the layer if no frame's paint showed it. A layer newer than
        the one the wait began for gets its own full wait (layers come about as often as
        frames: painting each at the end of its predecessor's wait doubled the paints)."""
        if self.layer is None or self._painted_layer is self.layer:
            return
        left = self._layer_wait_ms() - (now_ns() - self._layer_arrived_ns) / 1e6
        if left > 0:
            self._layer_wait.start(max(1, round(left)))
        else:
            self.update()

    def _fade_tick(self) -> None:
        """Repaint while a layer is on screen, so it fades and hides by its age even when no
        frame comes (a source that stalled): an old mask must not stay painted."""
        if self.layer is None or (self.layer_age_ms is not None and self.layer_alpha == 0.0):
            self._fade_clock.stop()
        elif self._received_ns is not None and (now_ns() - self._received_ns) / 1e6 > STALL_MS:
            self.update()

    def _newer_layer(self, layer: Layer | None) -> bool:
        if layer is None or (self.layer is not None and layer.captured_ns <= self.layer.captured_ns):
            return False
        self.layer = layer
        self._fade_clock.start()
        return True

    def shown_image(self):
        """The picture as last painted: the frame with the layer at the opacity it had
        (``(h, w, 3) uint8 RGB``), for snapshots; None before the first frame."""
        if self._array is None:
            return None
        layer = self.layer if self.layer is not None and self._layer_fits() else None
        return composite(self._array, layer, self.layer_alpha)

    def _layer_fits(self) -> bool:
        """Whether the layer was made on a view of the shown frame's geometry."""
        layer, r = self.layer, self.rendered
        return (layer is not None and r is not None and layer.shape == self._array.shape[:2]
                and r.seg.gate.box == layer.box)

    def set_state(self, state: SourceState) -> None:
        self.state = state
        self.update()

    def frame_size(self) -> tuple[int, int]:
        """The frame's ``(width, height)`` in pixels."""
        return self._array.shape[1], self._array.shape[0]

    def image_rect(self) -> QRectF | None:
        if self._array is None:
            return None
        w, h = self.frame_size()
        if self.display.native((w, h), (self.width(), self.height())):
            return QRectF((self.width() - w) // 2, (self.height() - h) // 2, w, h)  # whole pixels: no resize
        return fit_rect(w, h, QRectF(self.rect()))

    def to_frame(self, pos: QPointF) -> tuple[int, int] | None:
        """Widget point → frame pixel (clamped to the frame)."""
        target = self.image_rect()
        if target is None:
            return None
        w, h = self.frame_size()
        x = (pos.x() - target.x()) * w / target.width()
        y = (pos.y() - target.y()) * h / target.height()
        return int(min(max(x, 0), w)), int(min(max(y, 0), h))

    def from_frame(self, x: float, y: float) -> QPointF:
        target = self.image_rect()
        w, h = self.frame_size()
        return QPointF(target.x() + x * target.width() / w, target.y() + y * target.height() / h)

    # -- drawing a region --------------------------------------------------------------

    def cancel_drawing(self) -> None:
        self._drag, self._corners = None, []
        self.update()

    def mousePressEvent(self, event) -> None:
        if event.button() != Qt.MouseButton.LeftButton or self._array is None:
            return
        pos = event.position()
        if self.roi_mode == "rect":
            self._drag = (pos, pos)
        elif len(self._corners) >= 3 and (pos - self._corners[0]).manhattanLength() < 10:
            self._finish_polygon()
        else:
            self._corners.append(pos)
        self.update()

    def mouseMoveEvent(self, event) -> None:
        # Track the drag from press to release ourselves: synthetic moves may carry no buttons.
        self._hover = event.position()
        if self._drag is not None:
            self._drag = (self._drag[0], event.position())
        self.update()

    def mouseReleaseEvent(self, event) -> None:
        if event.button() != Qt.MouseButton.LeftButton or self._drag is None:
            return
        start, _ = self._drag
        self._drag = None
        a, b = self.to_frame(start), self.to_frame(event.position())
        box = Box(min(a[0], b[0]), min(a[1], b[1]), max(a[0], b[0]), max(a[1], b[1]))
        if box.width >= MIN_DRAG and box.height >= MIN_DRAG:
            self.roi_drawn.emit(box)
        self.update()

    def mouseDoubleClickEvent(self, event) -> None:
        if self.roi_mode == "polygon":
            self._finish_polygon()

    def keyPressEvent(self, event) -> None:
        if self._corners and event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter):
            self._finish_polygon()
        elif (self._corners or self._drag) and event.key() == Qt.Key.Key_Escape:
            self.cancel_drawing()
        else:
            super().keyPressEvent(event)

    def _finish_polygon(self) -> None:
        corners = [self.to_frame(p) for p in self._corners]
        self._corners = []
        unique = list(dict.fromkeys(corners))
        if len(unique) >= 3:
            self.roi_drawn.emit(Polygon(tuple(unique)))
        self.update()

    # -- painting ----------------------------------------------------------------------

    def _font(self, px: float, bold: bool = True) -> QFont:
        font = QFont(self.font())
        font.setPixelSize(max(10, int(px)))
        font.setBold(bold)
        return font

    def paintEvent(self, event) -> None:
        p = QPainter(self)
        target = self.image_rect()
        if target is None:
            p.fillRect(self.rect(), Qt.GlobalColor.black)
        else:
            self._layer_now()
            scaled, left, top = self._scaled_image(target)
            width, height = self.width(), self.height()
            for bar in ((0, 0, left, height), (left + scaled.width(), 0, width - left - scaled.width(), height),
                        (left, 0, scaled.width(), top), (left, top + scaled.height(), scaled.width(),
                                                         height - top - scaled.height())):
                if bar[2] > 0 and bar[3] > 0:  # black only around the picture
                    p.fillRect(*bar, Qt.GlobalColor.black)
            p.drawImage(left, top, scaled)
        self._paint_state(p, target)
        self._paint_drawing(p)
        self._paint_corner_text(p, target)
        p.end()

    def _layer_now(self) -> None:
        """The layer's age and opacity for this paint (0: none, or hidden past the limit)."""
        self.layer_alpha, self.layer_age_ms = 0.0, None
        if self._layer_fits():
            self.layer_age_ms = self.layer.age_ms()
            # steps of 1/64: a fade is smooth, and a still picture is not re-blended each paint
            self.layer_alpha = round(self.display.alpha(self.layer_age_ms) * 64) / 64
            self._painted_layer = self.layer

    def _scaled_image(self, target: QRectF) -> tuple[QImage, int, int]:
        """The frame (with the overlay layer at its opacity, live passthrough) at the size
        it is shown at, made once per frame, layer, opacity and size. All of it in OpenCV,
        which lets the pipeline's threads run meanwhile; Qt only blits the result."""
        left, top = round(target.x()), round(target.y())
        w, h = max(1, round(target.width())), max(1, round(target.height()))
        layer = self.layer if self.layer_alpha > 0 else None
        key = (self._array, layer, self.layer_alpha, w, h)
        cached = self._scaled
        if cached is None or any(a is not b for a, b in zip(cached[0][:2], key[:2])) or cached[0][2:] != key[2:]:
            bgrx = cv2.cvtColor(self._array, cv2.COLOR_RGB2BGRA)  # Format_RGB32's byte order, ready to blit
            blend_bgrx(bgrx, layer, self.layer_alpha)  # as composite() does for a recording
            if (w, h) != self.frame_size():  # converted first: 4-channel resizing is faster
                larger = w > bgrx.shape[1]
                bgrx = cv2.resize(bgrx, (w, h), interpolation=cv2.INTER_LINEAR if larger else cv2.INTER_AREA)
            image = QImage(bgrx.data, w, h, bgrx.strides[0], QImage.Format.Format_RGB32)
            self._scaled = cached = (key, image, bgrx)
        return cached[1], left, top

    def _paint_state(self, p: QPainter, target: QRectF | None) -> None:
        banner = BANNERS.get(self.state.state)
        if banner is None:
            return
        title, colour = banner
        if self.state.state == "ended" and self.state.message.lower().startswith("end of"):
            title = self.state.message.upper()  # END OF VIDEO, END OF IMAGES: what actually ended
        if target is not None and self.state.state in ("no signal", "failed"):
            p.fillRect(target, QColor(0, 0, 0, 150))  # a frozen picture must not pass for live
        if self.state.state == "starting" and target is not None:
            return
        area = target if target is not None else QRectF(self.rect())
        h = max(self.height(), 240)
        # Lost or failed: across the middle of the dimmed picture. Paused or ended: low
        # down, so the frame the surgeon is looking at stays in view.
        middle = target is None or self.state.state in ("no signal", "failed")
        size = 0.075 if middle else 0.05
        message = self.state.message if self.state.message.lower() != title.lower() else ""
        height = h * (size * 1.6 + (0.05 if message else 0.0))
        top = area.y() + area.height() * 0.38 if middle else area.bottom() - height - h * 0.07
        box = QRectF(area.x(), top, area.width(), height)
        p.fillRect(box, QColor(0, 0, 0, 170))
        p.setPen(colour)
        p.setFont(self._font(h * size))
        title_box = box.adjusted(0, 0, 0, -box.height() * 0.35) if message else box
        p.drawText(title_box, Qt.AlignmentFlag.AlignCenter, title)
        if message:
            p.setPen(QColor(235, 235, 235))
            p.setFont(self._font(h * 0.028, bold=False))
            p.drawText(box.adjusted(8, box.height() * 0.6, -8, 0), Qt.AlignmentFlag.AlignHCenter, message)

    def _paint_drawing(self, p: QPainter) -> None:
        pen = QPen(ROI_PEN, 2, Qt.PenStyle.DashLine)
        p.setPen(pen)
        p.setBrush(Qt.BrushStyle.NoBrush)
        if self._drag is not None:
            p.drawRect(QRectF(self._drag[0], self._drag[1]).normalized())
        if self._corners:
            points = self._corners + ([self._hover] if self._hover is not None else [])
            p.drawPolyline(QPolygonF(points))
            for corner in self._corners:
                p.drawEllipse(corner, 4, 4)

    def _paint_corner_text(self, p: QPainter, target: QRectF | None) -> None:
        area = target if target is not None else QRectF(self.rect())
        size = max(13, self.height() * 0.024)
        p.setFont(self._font(size))
        if self.recording_since is not None:
            secs = int(time.monotonic() - self.recording_since)
            p.setPen(QColor(255, 60, 60))
            p.setBrush(QColor(255, 60, 60))
            right = QRectF(area.right() - size * 7, area.top() + size * 0.5, size * 6.5, size * 1.4)
            p.drawEllipse(QPointF(right.left() + size * 0.5, right.center().y()), size * 0.35, size * 0.35)
            p.drawText(right.adjusted(size, 0, 0, 0), Qt.AlignmentFlag.AlignVCenter,
                       f"REC {secs // 60:02d}:{secs % 60:02d}")
        if self.rendered is not None:
            text = f"frame {self.rendered.index}   capture→screen {self.display_ms:.0f} ms"
            if self.layer_age_ms is not None:  # passthrough: the overlay's own age, and whether it is shown
                text += (f"   overlay {self.layer_age_ms:.0f} ms old" if self.layer_alpha > 0 else
                         f"   OVERLAY HIDDEN: {self.layer_age_ms:.0f} ms old")
            p.setPen(QColor(230, 230, 230))
            box = QRectF(area.left() + 6, area.bottom() - size * 1.8, area.width() - 12, size * 1.6)
            p.fillRect(QRectF(box.left() - 4, box.top(), p.fontMetrics().horizontalAdvance(text) + 8,
                              box.height()), QColor(0, 0, 0, 140))
            p.drawText(box, Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignLeft, text)
