"""The live view, offscreen with pytest-qt, on real (tiny) engines, real videos through
PyAV and a fake camera at the capture boundary.

Every window is closed at the end of its test and no pipeline thread may outlive it.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import threading
import time
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
from PyQt6.QtCore import QTimer, Qt
from PyQt6.QtWidgets import QFileDialog, QInputDialog
from video_fixtures import count_frames, stereo_frame, write_video

from nerveseg.engines.loader import load_engine
from nerveseg.commands.cli import main
from nerveseg.realtime.config import PipelineConfig, SourceConfig
from nerveseg.realtime.pipeline import Engines
from nerveseg.engines.preprocess import Box
from nerveseg.realtime.layer import DisplayConfig, composite
from nerveseg.realtime.roi import Polygon, roi_mask
from nerveseg.realtime.overlay_op import ROI_COLOUR
from nerveseg.ui.snapshot import TEXT_KEY, read_png_text
from nerveseg.ui.window import ViewWindow


@pytest.fixture(scope="module")
def engines(tmp_path_factory):
    from engine_fixtures import make_gate, make_segmenter

    folder = tmp_path_factory.mktemp("engines")
    return Engines(load_engine(make_gate(folder / "gate.onnx"), task="classify"),
                   load_engine(make_segmenter(folder / "seg.onnx"), task="segment"))


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    folder = tmp_path_factory.mktemp("videos")
    return {"long": write_video(folder / "long.mp4", frames=150, fps=30, nerve_every=1),
            "short": write_video(folder / "short.mp4", frames=12, fps=24, nerve_every=1)}


def pipeline_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("nerveseg") and t.is_alive()]


DRAWING = PipelineConfig(display=DisplayConfig(fade_after_ms=3000.0, hide_after_ms=6000.0))


@pytest.fixture
def make_window(qtbot, engines, tmp_path):
    windows = []

    def make(**kwargs) -> ViewWindow:
        # These tests are about what is drawn, not about how an old overlay fades and hides
        # (tests/test_passthrough.py): on a loaded machine the layer must not fade before the
        # screenshot.
        window = ViewWindow(DRAWING, engines, tmp_path / "out", **kwargs)
        qtbot.addWidget(window)
        window.resize(900, 640)
        window.show()
        qtbot.waitExposed(window)
        windows.append(window)
        return window

    yield make
    for window in windows:
        window.close()
    assert not pipeline_threads(), "closing the window stops every pipeline thread"


def wait_frames(qtbot, window: ViewWindow, n: int, timeout: int = 5000) -> None:
    start = window.frames_shown
    qtbot.waitUntil(lambda: window.frames_shown >= start + n, timeout=timeout)


def grab(widget, path: Path) -> np.ndarray:
    """The widget as it is on screen, through a PNG file: ``(h, w, 3) uint8 RGB``."""
    assert widget.grab().save(str(path))
    return cv2.imread(str(path))[..., ::-1]


def test_view_shows_tint_text_and_provenance_and_keeps_the_aspect_ratio(make_window, qtbot, videos, engines,
                                                                        tmp_path):
    window = make_window()
    window.open_source(str(videos["long"]))
    wait_frames(qtbot, window, 5)
    view = window.view
    fh, fw = view.rendered.image.shape[:2]
    # a file in the view plays live: passthrough, the panel is on the overlay layer
    qtbot.waitUntil(lambda: view.layer is not None and view.layer.panel is not None)
    assert window.session.pipeline.passthrough and view.rendered.panel is None
    panel = view.layer.panel
    for size, bars in (((1000, 560), "sides"), ((520, 900), "top and bottom")):
        window.resize(*size)
        wait_frames(qtbot, window, 2)
        pixels = grab(view, tmp_path / "view.png")
        assert pixels.shape[:2] == (view.height(), view.width())
        rect = view.image_rect()
        x0, y0, w, h = (round(v) for v in (rect.x(), rect.y(), rect.width(), rect.height()))
        assert abs(w / h - fw / fh) < 0.02, "aspect ratio kept"
        if bars == "sides":
            assert x0 > 20 and pixels[:, : x0 - 1].max() == 0 and pixels[:, x0 + w + 1:].max() == 0
        else:
            assert y0 > 20 and pixels[: y0 - 1].max() == 0
        picture = pixels[y0:y0 + h, x0:x0 + w].astype(int)
        green = picture[..., 1] - picture[..., 0]
        assert (green > 60).mean() > 0.02, f"{bars}: the nerve band is tinted on screen"
        scale = w / fw
        text = picture[: int(panel.y1 * scale) - 2, : int(panel.x1 * scale) - 2]
        assert (text.max(axis=2) < 70).mean() > 0.5, "the text panel's dark ground"
        assert (text.min(axis=2) > 170).mean() > 0.01, "the panel's light lettering"
    status = window.provenance_label.text()
    for part in ("tiny_gate", "[nerve/opening_wound/tendon]", "tiny_unet", "[background/nerve]", "onnxruntime",
                 engines.gate.provenance.sha256[:12], engines.segment.provenance.sha256[:12]):
        assert part in status
    assert window.provenance_label.isVisible() and "long.mp4: ok" in window.source_label.text()


def test_record_toggle_writes_avi_and_csv_with_the_region_per_frame(make_window, qtbot, videos, engines):
    window = make_window()
    window.open_source(str(videos["long"]))
    wait_frames(qtbot, window, 2)
    window.session.set_roi(Box(10, 10, 200, 200))
    # frames in flight pass before recording starts: inference has the region on screen
    qtbot.waitUntil(lambda: window.view.layer is not None and window.view.layer.seg.roi == Box(10, 10, 200, 200),
                    timeout=5000)
    qtbot.keyClick(window.view, Qt.Key.Key_R)  # the shortcut
    qtbot.waitUntil(lambda: window.view.recording_since is not None)
    assert window.record_action.isChecked()
    path = Path(window.recording_path)
    qtbot.waitUntil(lambda: window.session.pipeline.ops.record.frames >= 8, timeout=5000)
    window.record_action.trigger()
    qtbot.waitUntil(lambda: window.view.recording_since is None)
    assert not window.record_action.isChecked() and f"saved {path}" in window.messages[-1]
    rows = list(csv.DictReader(path.with_suffix(".csv").open()))
    assert len(rows) == count_frames(path) >= 8
    assert {r["roi"] for r in rows} == {"10,10,200,200"} and {r["class"] for r in rows} == {"nerve"}
    assert all(float(r["latency_ms"]) > 0 for r in rows)
    with av.open(str(path)) as container:
        comment = json.loads(container.metadata["comment"])
    assert comment["nerveseg"]["segment"]["sha256"] == engines.segment.provenance.sha256


def drag(qtbot, view, a, b) -> None:
    qtbot.mousePress(view, Qt.MouseButton.LeftButton, pos=a.toPoint())
    qtbot.mouseMove(view, pos=((a + b) / 2).toPoint())
    qtbot.mouseMove(view, pos=b.toPoint())
    qtbot.mouseRelease(view, Qt.MouseButton.LeftButton, pos=b.toPoint())


def test_dragged_region_restricts_the_mask_and_clearing_restores_it(make_window, qtbot, videos):
    window = make_window()
    window.open_source(str(videos["long"]))
    wait_frames(qtbot, window, 2)
    seen = []  # the overlay layers (live passthrough), each with the segmentation it shows
    window.session.pipeline.subscribe_layers(seen.append)
    view = window.view
    drag(qtbot, view, view.from_frame(40, 20), view.from_frame(140, 220))
    roi = window.session.settings.roi
    assert isinstance(roi, Box) and max(abs(a - b) for a, b in zip(roi, (40, 20, 140, 220))) <= 2
    qtbot.waitUntil(lambda: any(r.seg.roi == roi and r.seg.mask is not None for r in seen))
    r = next(r for r in seen if r.seg.roi == roi and r.seg.mask is not None)
    outside = ~roi_mask(roi, r.seg.mask.shape)
    assert r.seg.mask.any() and not (r.seg.mask & outside).any(), "no mask outside the region"
    drawn = composite(r.seg.gate.view, r)
    assert tuple(drawn[roi.y0 + 60, roi.x0]) == ROI_COLOUR, "the region's outline is drawn"
    qtbot.waitUntil(lambda: view.layer is not None and view.layer.seg.roi == roi and view.layer_alpha > 0)
    grabbed = grab(view, Path(window.session.out_dir).parent / "roi.png").astype(int)
    edge = view.from_frame(roi.x0 + 0.5, roi.y0 + 60)
    near = grabbed[int(edge.y()), int(edge.x()) - 3:int(edge.x()) + 4]
    assert (np.abs(near - ROI_COLOUR).max(axis=1) < 60).any(), "the outline is on screen"

    window.clear_action.trigger()
    n = len(seen)
    qtbot.waitUntil(lambda: any(r.seg.roi is None and r.seg.mask is not None and (r.seg.mask & outside).any()
                                for r in seen[n:]))
    assert "whole field" in window.messages[-1]


def test_polygon_region_by_clicks(make_window, qtbot, videos):
    window = make_window()
    window.open_source(str(videos["long"]))
    wait_frames(qtbot, window, 2)
    seen = []
    window.session.pipeline.subscribe_layers(seen.append)
    view = window.view
    qtbot.keyClick(view, Qt.Key.Key_P)
    assert view.roi_mode == "polygon"
    for x, y in ((30, 30), (200, 60), (180, 230), (50, 200)):
        qtbot.mouseClick(view, Qt.MouseButton.LeftButton, pos=view.from_frame(x, y).toPoint())
    qtbot.keyClick(view, Qt.Key.Key_Return)
    roi = window.session.settings.roi
    assert isinstance(roi, Polygon) and len(roi.points) == 4
    qtbot.waitUntil(lambda: any(r.seg.roi == roi and r.seg.mask is not None for r in seen))
    r = next(r for r in seen if r.seg.roi == roi and r.seg.mask is not None)
    assert r.seg.mask.any() and not (r.seg.mask & ~roi_mask(roi, r.seg.mask.shape)).any()


class FakeCamera:
    """The device behind a fake ``cv2.VideoCapture``: ``mode`` is ``frames`` (30 FPS),
    ``hang`` (read() blocks like a stuck driver, up to 0.3 s, then fails) or
    ``unplugged`` (cannot be opened, reads fail)."""

    def __init__(self):
        self.mode, self.opens, self.count = "frames", 0, 0
        self.wake = threading.Event()

    def open(self, index, api=0):
        self.opens += 1
        return FakeCapture(self)


class FakeCapture:
    def __init__(self, camera: FakeCamera):
        self.camera, self.opened = camera, camera.mode != "unplugged"

    def isOpened(self):
        return self.opened

    def read(self):
        camera = self.camera
        if camera.mode == "frames":
            time.sleep(1 / 30)
            camera.count += 1
            return True, stereo_frame(camera.count)[..., ::-1].copy()
        if camera.mode == "hang":
            camera.wake.wait(0.3)
        return False, None

    def release(self):
        self.opened = False


def test_no_signal_within_a_second_gui_keeps_running_and_camera_reconnects(make_window, qtbot, tmp_path):
    camera = FakeCamera()
    window = make_window(camera_opener=camera.open)
    states = []
    window.bridge.status.connect(states.append)
    window.open_source("0")
    wait_frames(qtbot, window, 5)
    ticks = []
    timer = QTimer(interval=20, timeout=lambda: ticks.append(time.monotonic()))
    timer.start()
    t0 = time.monotonic()
    camera.mode = "hang"
    qtbot.waitUntil(lambda: window.view.state.state == "no signal", timeout=2000)
    assert time.monotonic() - t0 < 1.0, "no signal shown within one second"
    qtbot.wait(400)  # the read still hangs; the GUI thread goes on
    timer.stop()
    assert len(ticks) > 25 and np.diff(ticks).max() < 0.25, "the GUI thread kept processing events"
    assert "no signal" in window.source_label.text()
    picture = grab(window.view, tmp_path / "nosignal.png")
    banner = window.view.image_rect()
    row = picture[int(banner.y() + banner.height() * 0.45)].astype(int)
    assert ((row[:, 0] > 200) & (row[:, 1] < 120)).sum() > 20, "the red NO SIGNAL banner is drawn"

    camera.mode = "unplugged"
    camera.wake.set()
    qtbot.waitUntil(lambda: any("not available; retrying" in s.message for s in states), timeout=4000)
    opens, shown = camera.opens, window.frames_shown
    camera.mode = "frames"
    qtbot.waitUntil(lambda: window.view.state.state == "ok" and window.frames_shown > shown + 3, timeout=6000)
    assert camera.opens > opens, "reconnected by itself"


def test_closing_while_a_camera_read_hangs_stops_every_thread(make_window, qtbot):
    camera = FakeCamera()
    window = make_window(camera_opener=camera.open)
    window.open_source("0")
    wait_frames(qtbot, window, 2)
    camera.mode = "hang"
    qtbot.waitUntil(lambda: window.view.state.state == "no signal", timeout=2000)
    t0 = time.monotonic()
    window.close()
    assert time.monotonic() - t0 < 3.0 and not pipeline_threads()


def test_bad_sources_are_messages_in_the_window_and_the_view_runs_on(make_window, qtbot, videos, tmp_path,
                                                                    monkeypatch):
    window = make_window()
    window.open_source(str(videos["long"]))
    wait_frames(qtbot, window, 3)
    junk = tmp_path / "junk.mp4"
    junk.write_text("this is not a video")
    window.open_source(str(tmp_path / "missing.mp4"))
    qtbot.waitUntil(lambda: "missing.mp4: video file not found" in "".join(window.messages[-1:]))
    # picked in the file dialog (Ctrl+O); the dialog itself is stood in for
    monkeypatch.setattr(QFileDialog, "getOpenFileName", lambda *a, **k: (str(junk), ""))
    qtbot.keyClick(window.view, Qt.Key.Key_O, Qt.KeyboardModifier.ControlModifier)
    qtbot.waitUntil(lambda: "junk.mp4: not a readable video" in "".join(window.messages[-1:]))
    assert window.toast.isVisible() and "junk.mp4" in window.toast.text()
    assert "long.mp4" in window.session.pipeline.source.name
    wait_frames(qtbot, window, 3)  # the good video plays on
    monkeypatch.setattr(QInputDialog, "getInt", lambda *a, **k: (63, True))
    window.camera_action.trigger()  # no such camera: the real OpenCV lookup
    qtbot.waitUntil(lambda: window.view.state.state == "no signal"
                    and "camera 63 not available" in window.source_label.text(), timeout=2000)
    ticks = []
    QTimer.singleShot(10, lambda: ticks.append(1))
    qtbot.waitUntil(lambda: bool(ticks), timeout=500)


def test_unwritable_recording_and_nothing_to_save_are_messages(make_window, qtbot, videos, tmp_path):
    window = make_window()
    window.snapshot()
    assert "no frame on screen" in window.messages[-1]
    window.record_action.trigger()
    assert "no source open" in window.messages[-1] and not window.record_action.isChecked()
    window.open_source(str(videos["long"]))
    wait_frames(qtbot, window, 2)
    blocker = tmp_path / "a_file"
    blocker.write_text("a file where the recordings folder should be")
    window.session.out_dir = blocker / "recordings"
    window.record_action.trigger()
    qtbot.waitUntil(lambda: any("cannot write output" in m for m in window.messages))
    assert not window.record_action.isChecked() and window.view.recording_since is None
    wait_frames(qtbot, window, 3)


def test_keyboard_controls_pause_eye_opacity_threshold_snapshot(make_window, qtbot, videos, engines):
    window = make_window()
    window.open_source(str(videos["long"]))
    wait_frames(qtbot, window, 3)
    view, ops = window.view, window.session.pipeline.ops
    qtbot.keyClick(view, Qt.Key.Key_Space)
    qtbot.waitUntil(lambda: view.state.state == "paused")
    assert window.pause_action.isChecked()
    qtbot.wait(150)
    held = view.rendered.index
    qtbot.wait(300)
    assert view.rendered.index == held, "paused: the picture holds"
    qtbot.keyClick(view, Qt.Key.Key_Space)
    wait_frames(qtbot, window, 1)
    assert held < view.rendered.index <= held + 4 and not window.pause_action.isChecked()

    qtbot.keyClick(view, Qt.Key.Key_3)
    qtbot.waitUntil(lambda: view.rendered.image.shape[1] > 2 * view.rendered.image.shape[0] * 0.9)
    assert window.eye_box.currentText() == "full"
    qtbot.keyClick(view, Qt.Key.Key_1)
    qtbot.waitUntil(lambda: view.rendered.image.shape[1] == view.rendered.image.shape[0])

    crop = window.session.pipeline.ops.gate.preprocess
    qtbot.keyClick(view, Qt.Key.Key_F)  # find the border crop again
    assert any("finding the border crop again" in m for m in window.messages)
    qtbot.waitUntil(lambda: not crop._redetect)  # taken at the next frame
    assert crop.box is not None

    qtbot.keyClick(view, Qt.Key.Key_T)  # steady overlay on, then off
    assert window.steady_action.isChecked() and window.session.pipeline.steady.frames_in == 2
    assert window.messages[-1].startswith("steady overlay on: band 0.40-0.60")
    qtbot.keyClick(view, Qt.Key.Key_T)
    assert window.session.pipeline.steady.off and window.messages[-1] == "steady overlay off"

    qtbot.keyClick(view, Qt.Key.Key_BracketRight)
    qtbot.keyClick(view, Qt.Key.Key_Minus)
    assert ops.overlay.opacity == pytest.approx(0.55) and ops.segment.threshold == pytest.approx(0.45)
    assert "Opacity  55%" in window.opacity_label.text() and "0.45" in window.threshold_label.text()

    qtbot.keyClick(view, Qt.Key.Key_S)
    qtbot.waitUntil(lambda: any(m.endswith(".png") for m in window.messages))
    png = Path(window.messages[-1].split("saved ", 1)[1])
    info = json.loads(read_png_text(png)[TEXT_KEY])
    assert info["engines"]["gate"]["sha256"] == engines.gate.provenance.sha256
    assert cv2.imread(str(png)).shape[:2] == view.rendered.image.shape[:2]


def test_end_of_video_keeps_the_last_frame_and_plays_again(make_window, qtbot, videos, tmp_path):
    window = make_window()
    window.open_source(str(videos["short"]))
    qtbot.waitUntil(lambda: window.view.state.state == "ended" and window.view.rendered is not None
                    and window.view.rendered.index == 11, timeout=5000)
    assert window.view.state.message == "end of video"
    picture = grab(window.view, tmp_path / "ended.png")
    assert picture.mean() > 40, "the last frame stays on screen"
    qtbot.keyClick(window.view, Qt.Key.Key_Space)  # play again
    qtbot.waitUntil(lambda: window.view.rendered.index < 11, timeout=3000)
    qtbot.waitUntil(lambda: window.view.state.state == "ended", timeout=5000)


def test_view_command_records_from_the_start_and_saves_a_screenshot(qapp, engines, videos, tmp_path, capsys):
    shot, out = tmp_path / "shot.png", tmp_path / "out"
    engine_args = ["--gate", engines.gate.provenance.path, "--seg", engines.segment.provenance.path]
    code = main(["view", "--source", str(videos["long"]), *engine_args, "--out", str(out), "--record",
                 "--roi", "0,0,120,240", "--size", "640x480", "--screenshot", str(shot), "--after", "1.0"])
    assert code == 0 and cv2.imread(str(shot)).shape[:2] == (480, 640)
    assert not pipeline_threads()
    (avi,) = out.glob("*.avi")
    rows = list(csv.DictReader(avi.with_suffix(".csv").open()))
    assert len(rows) == count_frames(avi) > 5 and {r["roi"] for r in rows} == {"0,0,120,240"}
    assert main(["view", *engine_args, "--roi", "1,2,3"]) == 2
    assert "--roi '1,2,3': a rectangle is x0,y0,x1,y1" in capsys.readouterr().err


def test_frame_view_scales_the_picture_itself_with_the_right_colours(qtbot, tmp_path):
    """The view scales each frame once (OpenCV) into a 32-bit image Qt blits: the picture
    on screen is the frame resized, colours in the right order, black around it, and a
    new frame (even one of the same size) replaces the cached picture."""
    from types import SimpleNamespace

    from nerveseg.ui.frame_view import FrameView

    yy, xx = np.mgrid[0:120, 0:160]
    frame = np.zeros((120, 160, 3), np.uint8)
    frame[..., 0] = (xx * 255 // 159).astype(np.uint8)  # red grows to the right
    frame[..., 1] = (yy * 255 // 119).astype(np.uint8)  # green grows downwards
    frame[:, :40, 2] = 200  # a blue band on the left
    view = FrameView()
    qtbot.addWidget(view)
    view.show()
    qtbot.waitExposed(view)
    for size in ((640, 360), (200, 300)):  # larger (bars at the sides), smaller (bars above and below)
        view.resize(*size)
        view.set_frame(SimpleNamespace(image=frame, index=1, frame=SimpleNamespace(captured_ns=time.perf_counter_ns())))
        pixels = grab(view, tmp_path / "fv.png").astype(int)
        rect = view.image_rect()
        x0, y0, w, h = (round(v) for v in (rect.x(), rect.y(), rect.width(), rect.height()))
        if x0 > 0:
            assert pixels[:, : x0 - 1].max() == 0 and pixels[:, x0 + w + 1:].max() == 0
        if y0 > 0:
            assert pixels[: y0 - 1].max() == 0 and pixels[y0 + h + 1:].max() == 0
        expected = cv2.resize(frame, (w, h), interpolation=cv2.INTER_LINEAR if w > 160 else cv2.INTER_AREA)
        shown = pixels[y0:y0 + h, x0:x0 + w]
        top = shown[: h * 2 // 3]  # the frame-number caption sits at the bottom
        assert np.abs(top - expected[: h * 2 // 3].astype(int)).max() <= 2, size
    blue = frame.copy()
    blue[...] = (0, 0, 255)
    view.set_frame(SimpleNamespace(image=blue, index=2, frame=SimpleNamespace(captured_ns=time.perf_counter_ns())))
    pixels = grab(view, tmp_path / "fv2.png")
    rect = view.image_rect()
    assert tuple(pixels[round(rect.y()) + 5, round(rect.center().x())]) == (0, 0, 255), "the new frame, not the cache"


def test_frames_taller_than_the_screen_get_a_one_time_hint(make_window, qtbot, tmp_path):
    """A source whose frames are taller than the screen (a 4K stereoscope on a 1080p monitor)
    and no ``source.max_height``: the window says once what --max-height would do."""
    window = make_window()
    rows = window.screen_rows()
    tall = write_video(tmp_path / "tall.mp4", frames=6, fps=24, height=rows + 16, width=2 * (rows + 16))
    window.open_source(str(tall))
    qtbot.waitUntil(lambda: any("--max-height" in m for m in window.messages), timeout=10000)
    hints = [m for m in window.messages if "--max-height" in m]
    assert len(hints) == 1 and f"{2 * (rows + 16)}x{rows + 16} frames on a {rows}-row screen" in hints[0]
    assert f"--max-height {rows}" in hints[0]
    # a source that fits says nothing
    small = write_video(tmp_path / "small.mp4", frames=6, fps=24)
    before = len(window.messages)
    window.open_source(str(small))
    wait_frames(qtbot, window, 3)
    assert not any("--max-height" in m for m in window.messages[before:])


def test_the_view_reduces_a_tall_source_when_source_max_height_is_set(qtbot, engines, tmp_path):
    """``source.max_height`` reaches the view's own pipelines (a source opened in the window
    keeps the configured source keys): a 480x960 file worked at 240x480, no hint given."""
    config = dataclasses.replace(DRAWING, source=SourceConfig(max_height=240, read_ahead_ms=200))
    window = ViewWindow(config, engines, tmp_path / "out")
    qtbot.addWidget(window)
    window.resize(900, 640)
    window.show()
    qtbot.waitExposed(window)
    try:
        tall = write_video(tmp_path / "tall.mp4", frames=12, fps=24, height=480, width=960)
        window.open_source(str(tall))
        wait_frames(qtbot, window, 3, timeout=10000)
        pipeline = window.session.pipeline
        assert pipeline.summary()["source"]["reduced"] == {"from": [480, 960], "to": [240, 480], "max_height": 240}
        assert window.view.frame_size()[1] <= 240  # the eye of the reduced frame is what is shown
        source = pipeline.source
        assert source.describe()["read_ahead"]["frames"] == 5  # 200 ms at 24 FPS
        assert not any("--max-height" in m for m in window.messages)
    finally:
        window.close()
    assert not pipeline_threads()
