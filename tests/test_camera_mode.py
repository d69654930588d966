"""A capture card asked for the microscope's mode: what it really gives is read back and,
when less, said in one line (log, status line on screen, summary). The device is
scripted at the driver boundary (``cv2.VideoCapture``'s calls), as a V4L2 driver answers."""

from __future__ import annotations

import logging
import threading

import cv2
import pytest
from fault_fixtures import ScriptedCamera, wait_for

from nerveseg.engines.errors import UserError
from nerveseg.realtime import config as cfg
from nerveseg.realtime.sources import CameraMode, CameraSource, open_source

CARD = ((640, 480, 30.0, "YUYV"), (1280, 720, 30.0, "MJPG"), (1920, 1080, 30.0, "MJPG"))


def first_frames(source, n=3, statuses=None):
    """The first ``n`` frames; ``statuses`` gets the source's (state, message) at each."""
    stop, got = threading.Event(), []

    def read():
        for frame in source.frames(stop):
            got.append(frame)
            if statuses is not None:
                statuses.append(source.status.snapshot()[:2])
            if len(got) >= n:
                stop.set()
    thread = threading.Thread(target=read)
    thread.start()
    thread.join(10)
    return got


def test_a_card_that_gives_less_than_asked_says_so_in_one_line(caplog):
    camera = ScriptedCamera(shape=(480, 640), fps=30, modes=CARD)
    mode = CameraMode(size="1920x1080", fps=60, format="MJPG", api="v4l2")
    source = CameraSource(2, opener=camera.open, mode=mode)
    with caplog.at_level(logging.WARNING):
        frames = first_frames(source)
    assert frames[0].image.shape[:2] == (1080, 1920), "the size it could give was taken"
    assert camera.apis[0] == cv2.CAP_V4L2
    assert source.shortfall == "the camera gives 30 fps (asked 60)"
    assert source.describe()["got"] == {"size": "1920x1080", "fps": 30.0, "format": "MJPG"}
    assert source.describe()["asked"] == {"size": "1920x1080", "fps": 60, "format": "MJPG", "api": "v4l2"}
    assert [r.getMessage() for r in caplog.records] == ["camera:2: the camera gives 30 fps (asked 60)"]
    assert source.status.history[0][0] in ("starting", "ok")


def test_a_card_left_at_its_default_is_told_when_a_mode_was_asked():
    camera = ScriptedCamera(shape=(480, 640), fps=30, modes=((640, 480, 30.0, "YUYV"),))
    source = CameraSource(0, opener=camera.open, mode=CameraMode(size="1920x1080", format="MJPG"))
    statuses = []
    first_frames(source, statuses=statuses)
    assert source.shortfall == "the camera gives size 640x480 (asked 1920x1080), format YUYV (asked MJPG)"
    assert statuses[0] == ("ok", source.shortfall), "shown in the status line on screen"


def test_what_was_asked_is_what_it_gives_says_nothing():
    camera = ScriptedCamera(shape=(480, 640), fps=30, modes=CARD)
    source = CameraSource(0, opener=camera.open, mode=CameraMode(size="1280x720", fps=30, format="MJPG"))
    first_frames(source)
    assert source.shortfall is None and source.got["size"] == "1280x720"


def test_camera_mode_in_the_yaml_and_device_paths(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("source:\n  camera: {size: 1920x1080, fps: 60, format: MJPG, api: v4l2}\n")
    config = cfg.load(path)
    assert config.source.camera == CameraMode("1920x1080", 60, "MJPG", "v4l2")
    camera = ScriptedCamera()
    source = open_source("/dev/video2", camera=config.source.camera, opener=camera.open)
    assert isinstance(source, CameraSource) and source.index == "/dev/video2" and source.live
    for bad, words in (("{size: big}", "WIDTHxHEIGHT"), ("{fps: 0}", "1..1000"), ("{format: RGB3}", "MJPG"),
                       ("{api: gstreamer}", "v4l2"), ("{zoom: 2}", "unknown key")):
        path.write_text(f"source:\n  camera: {bad}\n")
        with pytest.raises(UserError, match=words):
            cfg.load(path)


def test_run_flags_reach_the_camera_config():
    from nerveseg.commands.cli import build_parser
    from nerveseg.realtime.replay_cli import camera_overrides

    args = build_parser().parse_args(["run", "--source", "0", "--camera-size", "1920x1080", "--camera-fps", "60",
                                      "--camera-format", "MJPG", "--layout", "mono"])
    extra = camera_overrides(args)
    config = cfg.load(None, cfg.merge(extra, {"source": {"spec": "0"}}))
    assert config.source.camera.wh == (1920, 1080) and config.source.camera.fps == 60
    assert config.preprocess.layout == "mono"


def test_a_scripted_camera_reconnect_reads_the_mode_back_again():
    camera = ScriptedCamera(shape=(480, 640), fps=60, modes=CARD)
    source = CameraSource(0, opener=camera.open, mode=CameraMode(size="1920x1080", fps=30), backoff=(0.01, 0.05),
                          max_failed_reads=2)
    stop = threading.Event()
    thread = threading.Thread(target=lambda: [None for _ in source.frames(stop)])
    thread.start()
    wait_for(lambda: source.got is not None, what="first frame")
    camera.modes = ((1280, 720, 30.0, "MJPG"),)  # the card now offers less (another input signal)
    camera.mode = "stopped"
    wait_for(lambda: source.reconnects >= 1, what="reconnect")
    camera.mode = "frames"
    wait_for(lambda: source.got["size"] == "1280x720", what="mode read back after the reconnect")
    assert "size 1280x720 (asked 1920x1080)" in source.shortfall
    stop.set()
    thread.join(5)
