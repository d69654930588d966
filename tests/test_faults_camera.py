"""Camera lost and back, with a scripted device at the capture boundary
(``CameraSource(opener=...)``): frames stop, the driver raises, frames come back empty,
the device is unplugged. The view says "no signal" within a second, the source
retries with back-off and resumes, and the recording goes on in the same file."""

from __future__ import annotations

import csv
import threading
import time

import numpy as np
import pytest
from fault_fixtures import ScriptedCamera, wait_for
from video_fixtures import count_frames

from nerveseg.engines.loader import load_engine
from nerveseg.realtime import config as cfg
from nerveseg.realtime.pipeline import Engines, NervePipeline
from nerveseg.realtime.sources import CameraSource


@pytest.fixture(scope="module")
def engines(tmp_path_factory):
    from engine_fixtures import make_gate, make_segmenter

    folder = tmp_path_factory.mktemp("engines")
    return Engines(load_engine(make_gate(folder / "gate.onnx"), task="classify"),
                   load_engine(make_segmenter(folder / "seg.onnx"), task="segment"))


def _camera_pipeline(engines, camera):
    source = CameraSource(0, opener=camera.open, backoff=(0.05, 0.4), max_failed_reads=3)
    config = cfg.from_dict({"source": {"spec": "0", "live": True}})
    return NervePipeline(config, source=source, engines=engines, signal_timeout=0.5)


def _outage(pipeline, camera, states, mode):
    """Put the device in ``mode``; returns seconds until the view said "no signal"."""
    n = len(states)
    t0 = time.monotonic()
    camera.mode = mode
    t1 = wait_for(lambda: any(s.state == "no signal" for _, s in states[n:]), 3.0, f"no signal ({mode})")
    return t1 - t0


def _back(pipeline, camera, states, more=8):
    n, recorded = len(states), pipeline.ops.record.frames
    camera.mode = "frames"
    wait_for(lambda: any(s.state == "ok" for _, s in states[n:]), 5.0, "ok again")
    wait_for(lambda: pipeline.ops.record.frames >= recorded + more, 5.0, "frames recorded after the outage")


def test_camera_lost_and_back_keeps_one_recording_and_says_no_signal(tmp_path, engines):
    camera = ScriptedCamera()
    pipeline = _camera_pipeline(engines, camera)
    states, notices, shown = [], [], []
    pipeline.subscribe_status(lambda s: states.append((time.monotonic(), s)))
    pipeline.subscribe_notices(notices.append)
    pipeline.subscribe(lambda r: shown.append(r.index))
    avi = tmp_path / "session.avi"
    pipeline.start()
    pipeline.start_recording(avi)
    wait_for(lambda: pipeline.ops.record.frames >= 10, what="first frames recorded")
    for mode in ("stopped", "raises", "empty"):
        assert _outage(pipeline, camera, states, mode) < 1.0, f"{mode}: no signal within 1 s"
        time.sleep(0.3)
        _back(pipeline, camera, states)
    assert "read failed: select() timeout" in pipeline.source.status.message or any(
        "read failed" in s.message for _, s in states), "the driver's error is shown"
    n = len(camera.opens)
    assert _outage(pipeline, camera, states, "unplugged") < 1.0
    time.sleep(1.6)
    gaps = np.diff(camera.opens[n:])
    assert len(gaps) <= 7, f"retries back off, not a hot loop: {len(gaps)} opens in 1.6 s"
    assert gaps[-1] >= 0.3 and all(b >= a * 0.8 for a, b in zip(gaps, gaps[1:])), gaps
    _back(pipeline, camera, states)
    pipeline.stop_recording()
    wait_for(lambda: any(n.kind == "saved" for n in notices), what="saved")
    assert pipeline.close(2.0) and not pipeline.alive
    assert pipeline.graph.fatal is None and not [n for n in notices if n.kind == "error"]
    recorded = pipeline.ops.record.frames
    rows = list(csv.DictReader(avi.with_suffix(".csv").open()))
    assert count_frames(avi) == len(rows) == recorded >= 10 + 4 * 8, "one recording, nothing corrupted"
    capture_s = [float(r["capture_s"]) for r in rows]
    assert max(np.diff(capture_s)) > 0.5, "the outages show as gaps in the CSV's capture times"
    assert shown[-1] > shown[0] and pipeline.source.reconnects >= 4


def test_camera_source_alone_survives_a_raising_driver():
    """No pipeline: a driver whose open and read raise never ends the source."""
    camera = ScriptedCamera()
    camera.mode = "raises"
    source = CameraSource(1, opener=camera.open, backoff=(0.01, 0.05), max_failed_reads=2)
    stop, got = threading.Event(), []
    thread = threading.Thread(target=lambda: got.extend(f.index for f in source.frames(stop)))
    thread.start()
    wait_for(lambda: source.reconnects >= 2, what="reconnects")
    assert "read failed" in source.status.message and source.status.state == "no signal"
    camera.mode = "unplugged"
    wait_for(lambda: "open failed: VIDIOC_STREAMON" in source.status.message, what="open error shown")
    camera.mode = "frames"
    wait_for(lambda: source.status.state == "ok", what="ok")
    stop.set()
    thread.join(2.0)
    assert not thread.is_alive() and source.status.state == "ended"


def test_camera_frames_in_other_layouts_are_used_or_counted():
    from nerveseg.realtime.sources import to_rgb

    grey = np.full((4, 6), 9, np.uint8)
    bgra = np.zeros((4, 6, 4), np.uint8)
    bgra[..., 2] = 200
    assert to_rgb(grey).shape == (4, 6, 3) and to_rgb(bgra)[0, 0, 0] == 200
    for bad in (None, np.empty((0, 0, 3), np.uint8), np.zeros((4, 6, 3), np.float32), np.zeros((4, 6, 2), np.uint8)):
        assert to_rgb(bad) is None
