"""What the live view needs from the pipeline, without Qt: recordings started and
stopped while running (AVI + CSV with the region per frame), pause/resume, eye
switching, polygon regions, the "no signal" watchdog while a camera read hangs."""

from __future__ import annotations

import csv
import threading
import time

import numpy as np
import pytest
from video_fixtures import count_frames, stereo_frame, write_video

from nerveseg.engines.loader import load_engine
from nerveseg.realtime import config as cfg
from nerveseg.engines.errors import UserError
from nerveseg.realtime.pipeline import Engines, NervePipeline
from nerveseg.engines.preprocess import Box
from nerveseg.realtime.roi import Polygon, parse_roi, restrict, roi_mask, roi_text
from nerveseg.realtime.sources import CameraSource, Pacer
from nerveseg.realtime.stats import LatencyStats


@pytest.fixture(scope="module")
def engines(tmp_path_factory):
    from engine_fixtures import make_gate, make_segmenter

    folder = tmp_path_factory.mktemp("engines")
    return Engines(load_engine(make_gate(folder / "gate.onnx"), task="classify"),
                   load_engine(make_segmenter(folder / "seg.onnx"), task="segment"))


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    return write_video(tmp_path_factory.mktemp("video") / "in.mp4", frames=48, fps=48, nerve_every=1)


def live_pipeline(engines, spec, source=None, **config):
    raw = {"source": {"spec": str(spec), "pace": True, "live": True}, **config}
    return NervePipeline(cfg.from_dict(raw), source=source, engines=engines, signal_timeout=0.4)


def wait_for(condition, timeout=5.0, what="condition"):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


def test_roi_text_round_trips_and_restricts():
    box, poly = Box(10, 20, 50, 60), Polygon(((5, 5), (40, 5), (20, 30)))
    assert parse_roi(roi_text(box)) == box and parse_roi(roi_text(poly)) == poly
    assert roi_text(None) == "" and parse_roi("") is None
    mask = np.ones((64, 64), bool)
    inside = restrict(mask, poly)
    assert inside.sum() == roi_mask(poly, mask.shape).sum() > 0
    assert not inside[40:].any() and inside[10, 20]
    assert restrict(mask, Box(-5, -5, 8, 8)).sum() == 64, "a box over the edge is clipped"
    with pytest.raises(ValueError, match="3 distinct corners"):
        Polygon(((1, 1), (2, 2), (1, 1)))


def test_recordings_start_and_stop_while_running(tmp_path, engines, video):
    pipeline = live_pipeline(engines, video)
    notices, shown = [], []
    pipeline.subscribe_notices(notices.append)
    pipeline.subscribe(shown.append)
    pipeline.ops.segment.roi = Polygon(((0, 0), (120, 0), (120, 200), (0, 200)))
    pipeline.start()
    wait_for(lambda: len(shown) >= 3, what="frames")
    first, second = tmp_path / "rec" / "a.avi", tmp_path / "rec" / "b.avi"
    pipeline.start_recording(first)
    wait_for(lambda: any(n.kind == "recording" for n in notices), what="recording started")
    wait_for(lambda: pipeline.ops.record.frames >= 5, what="frames recorded")
    pipeline.start_recording(second)  # closes the first, opens the second
    wait_for(lambda: sum(n.kind == "recording" for n in notices) == 2, what="second recording")
    pipeline.ops.segment.roi = Box(0, 0, 100, 100)
    time.sleep(0.2)
    pipeline.stop_recording()
    wait_for(lambda: sum(n.kind == "saved" for n in notices) == 2, what="both saved")
    assert pipeline.close(5.0) and not pipeline.alive
    for path in (first, second):
        rows = list(csv.DictReader(path.with_suffix(".csv").open()))
        assert len(rows) == count_frames(path) >= 3
        assert float(rows[0]["capture_s"]) == 0.0 and rows[0]["gate_sha256"]
        assert all(parse_roi(r["roi"]) is not None for r in rows), "the region is logged on every frame"
    rows = list(csv.DictReader(second.with_suffix(".csv").open()))
    assert {r["roi"] for r in rows} >= {"0,0,100,100"}
    saved = [n for n in notices if n.kind == "saved"]
    assert [n.path for n in saved] == [str(first), str(second)] and saved[0].frames == count_frames(first)


def test_unwritable_recording_is_told_and_the_pipeline_runs_on(tmp_path, engines, video):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    pipeline = live_pipeline(engines, video)
    notices, shown = [], []
    pipeline.subscribe_notices(notices.append)
    pipeline.subscribe(shown.append)
    pipeline.start()
    with pytest.raises(UserError, match="must be an .avi"):
        pipeline.start_recording(tmp_path / "x.mp4")
    pipeline.start_recording(blocker / "x.avi")
    wait_for(lambda: notices, what="a notice")
    assert notices[0].kind == "error" and "cannot write output" in notices[0].message
    n = len(shown)
    wait_for(lambda: len(shown) > n + 3, what="frames after the failure")
    assert pipeline.close(5.0)


def test_a_recording_that_fails_midway_is_closed_and_told(tmp_path, engines, video, monkeypatch):
    from nerveseg.realtime.sinks import AviRecorder

    pipeline = live_pipeline(engines, video)
    notices, shown = [], []
    pipeline.subscribe_notices(notices.append)
    pipeline.subscribe(shown.append)
    original = AviRecorder.write

    def write(self, image):
        if self.frames == 3:
            raise OSError(28, "No space left on device", str(self.path))
        original(self, image)

    monkeypatch.setattr(AviRecorder, "write", write)
    pipeline.start()
    pipeline.start_recording(tmp_path / "full.avi")
    wait_for(lambda: any(n.kind == "error" for n in notices), what="the failure")
    error = next(n for n in notices if n.kind == "error")
    assert "after 3 frames (" in error.message and "No space left on device" in error.message
    assert error.path == str(tmp_path / "full.avi") and error.frames == 3
    assert not any(n.kind == "saved" for n in notices), "a failure is not reported as a success"
    n = len(shown)
    wait_for(lambda: len(shown) > n + 3, what="frames after the failure")
    assert pipeline.graph.fatal is None and count_frames(tmp_path / "full.avi") == 3
    assert pipeline.close(5.0)


def test_pause_holds_a_file_where_it_is_and_resume_goes_on(engines, video):
    pipeline = live_pipeline(engines, video)
    shown, states = [], []
    pipeline.subscribe(lambda r: shown.append(r.index))
    pipeline.subscribe_status(lambda s: states.append(s.state))
    pipeline.start()
    wait_for(lambda: len(shown) >= 4, what="frames")
    pipeline.pause()
    wait_for(lambda: "paused" in states, what="paused state")
    time.sleep(0.1)
    held = list(shown)
    time.sleep(0.4)
    assert shown == held, "no frames while paused"
    pipeline.resume()
    wait_for(lambda: len(shown) > len(held) + 3, what="frames after resume")
    after = shown[len(held)]
    assert held[-1] < after <= held[-1] + 3, "resume continues where it stopped"
    gaps = np.diff(shown[len(held):len(held) + 4])
    assert (gaps >= 1).all()
    assert pipeline.close(5.0)


def test_eye_switch_while_running_changes_the_view(engines, video):
    pipeline = live_pipeline(engines, video)
    shapes = []
    pipeline.subscribe(lambda r: shapes.append(r.image.shape[:2]))
    pipeline.start()
    wait_for(lambda: shapes, what="frames")
    assert shapes[0][0] == shapes[0][1], "left eye: a square crop"
    pipeline.set_eye("full")
    wait_for(lambda: shapes[-1][1] > shapes[-1][0], what="full stereo frame")
    with pytest.raises(UserError, match="eye must be"):
        pipeline.set_eye("middle")
    assert pipeline.close(5.0)


class HangingCamera:
    """The device: delivers frames until ``hang`` is set; then read() blocks like a stuck
    driver (until ``release`` is set). :class:`_Capture` is its cv2.VideoCapture face."""

    def __init__(self):
        self.hang, self.release = threading.Event(), threading.Event()

    def read(self):
        if self.hang.is_set():
            self.release.wait(5.0)
            return False, None
        time.sleep(1 / 60)
        return True, stereo_frame(0)[..., ::-1].copy()


def test_watchdog_says_no_signal_while_a_camera_read_hangs(engines):
    camera = HangingCamera()
    source = CameraSource(0, opener=lambda index, api: _Capture(camera))
    pipeline = live_pipeline(engines, "0", source=source)
    states = []
    pipeline.subscribe_status(lambda s: states.append((time.monotonic(), s)))
    pipeline.start()
    wait_for(lambda: any(s.state == "ok" for _, s in states) and source.status.state == "ok", what="ok")
    wait_for(lambda: pipeline.ops.source.received >= 3, what="frames")
    t0 = time.monotonic()
    camera.hang.set()
    wait_for(lambda: states[-1][1].state == "no signal", timeout=2.0, what="no signal")
    assert states[-1][0] - t0 < 1.0, "no signal within one second"
    assert source.status.state == "ok", "the source itself cannot tell: its read is stuck"
    camera.release.set()
    assert pipeline.close(5.0) and not pipeline.alive


class _Capture:
    def __init__(self, camera):
        self.camera = camera

    def isOpened(self):
        return True

    def read(self):
        return self.camera.read()

    def release(self):
        pass


def test_pacer_reanchors_after_a_stall():
    pacer, stop = Pacer(100.0), threading.Event()
    pacer.wait(stop)
    time.sleep(0.3)  # a pause
    t0 = time.monotonic()
    for _ in range(5):
        pacer.wait(stop)
    assert time.monotonic() - t0 >= 0.035, "no burst to catch up after a pause"


def test_latency_stats_keep_a_bounded_window():
    stats = LatencyStats(keep=10)
    for i in range(55):
        stats.add({"frame": i, "capture_s": i / 30, "segmented": i % 2 == 0, "status": "ok", "class": "nerve",
                   "dropped": 0, "annotation_delay_ms": 1.0, "latency_ms": 2.0,
                   **{f"{s}_ms": 1.0 for s in ("decode", "preprocess", "gate", "segment", "overlay", "encode")}})
    assert len(stats.rows) < 20 and stats.rows[-1]["frame"] == 54
    summary = stats.summary()
    assert summary["frames"] == 55 and summary["segmented_frames"] == 28
