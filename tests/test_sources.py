"""Sources: camera loss and reconnection (fake device at the capture boundary),
image folders with bad files, config loading."""

from __future__ import annotations

import threading
import time

import cv2
import numpy as np
import pytest

from nerveseg.realtime import config as cfg
from nerveseg.engines.errors import UserError
from nerveseg.realtime.sources import CameraSource, ImageFolderSource, open_source


class FakeCapture:
    """A cv2.VideoCapture stand-in driven by a shared script of what the device does."""

    def __init__(self, device):
        self.device = device
        self.opened = device.plugged

    def isOpened(self):
        return self.opened

    def read(self):
        if not self.device.plugged or self.device.frames_left <= 0:
            return False, None
        self.device.frames_left -= 1
        return True, np.full((48, 64, 3), 100, np.uint8)

    def release(self):
        self.opened = False


class FakeDevice:
    def __init__(self):
        self.plugged = False
        self.frames_left = 0
        self.opens = 0

    def open(self, index, api=0):
        self.opens += 1
        return FakeCapture(self)


def test_camera_missing_then_plugged_in_then_lost_then_back():
    device = FakeDevice()
    source = CameraSource(3, opener=device.open, backoff=(0.01, 0.05), max_failed_reads=3)
    stop = threading.Event()
    got = []

    def consume():
        for frame in source.frames(stop):
            got.append(frame.index)

    thread = threading.Thread(target=consume)
    thread.start()
    deadline = time.monotonic() + 5

    def wait_for(condition):
        while not condition() and time.monotonic() < deadline:
            time.sleep(0.005)
        assert condition()

    wait_for(lambda: source.status.state == "no signal")
    assert device.opens >= 1 and not got
    device.plugged, device.frames_left = True, 5
    wait_for(lambda: len(got) == 5)
    wait_for(lambda: source.status.state == "no signal")  # frames stopped: the device is lost
    assert source.reconnects >= 1
    device.frames_left = 4
    wait_for(lambda: len(got) == 9)
    stop.set()
    thread.join(2)
    assert not thread.is_alive()
    assert got == list(range(9)), "indices continue across the reconnect"
    seen = [state for state, _ in source.status.history]
    assert seen[:4] == ["no signal", "ok", "no signal", "ok"] and seen[-1] == "ended"


def test_image_folder_skips_unreadable_images(tmp_path):
    for i in range(3):
        cv2.imwrite(str(tmp_path / f"{i}.png"), np.full((20, 40, 3), 50 * i, np.uint8))
    (tmp_path / "1b.png").write_bytes(b"not a png")
    source = ImageFolderSource(tmp_path)
    frames = list(source.frames(threading.Event()))
    assert [f.index for f in frames] == [0, 1, 2] and source.skipped == 1
    assert frames[2].image[0, 0, 0] == 100


def test_image_folder_plays_numbered_names_by_number_and_keeps_each_images_place(tmp_path):
    """FFmpeg's ``out%d.png`` (unpadded): out10 after out9, not after out1; an unreadable
    image keeps its place, so the frames after it keep their own numbers (``--gt``)."""
    names = [f"out{i}.png" for i in range(1, 13)]
    for i, name in enumerate(names):
        cv2.imwrite(str(tmp_path / name), np.full((20, 40, 3), 10 * i, np.uint8))
    (tmp_path / "out5.png").write_bytes(b"not a png")
    source = ImageFolderSource(tmp_path)
    assert [p.name for p in source.files] == names
    frames = list(source.frames(threading.Event()))
    assert source.skipped == 1 and [f.index for f in frames] == list(range(11))
    kept = [i for i in range(12) if i != 4]
    assert [f.number for f in frames] == kept and [int(f.image[0, 0, 0]) for f in frames] == [10 * i for i in kept]
    assert frames[4].pts == pytest.approx(5 / source.fps)  # out6.png: its own time, a gap where out5 was


@pytest.mark.parametrize("names", [
    ["a_000.png", "a_001.png", "a_010.png", "a_100.png"],  # zero-padded: the same order either way
    ["Scan2.png", "scan10.png", "SCAN11.png"],  # case ignored
    ["1-2.png", "1-10.png", "2-1.png", "10-1.png"],  # every number in the name by value
])
def test_image_folder_name_order(tmp_path, names):
    for name in reversed(names):
        cv2.imwrite(str(tmp_path / name), np.zeros((4, 4, 3), np.uint8))
    assert [p.name for p in ImageFolderSource(tmp_path).files] == names


def test_open_source_picks_by_spec(tmp_path):
    assert isinstance(open_source("0"), CameraSource)
    (tmp_path / "a.png").write_bytes(cv2.imencode(".png", np.zeros((4, 4, 3), np.uint8))[1].tobytes())
    assert isinstance(open_source(str(tmp_path)), ImageFolderSource)
    with pytest.raises(UserError, match="video file not found"):
        open_source(str(tmp_path / "missing.mp4"))


def test_config_unknown_key_suggests_the_right_one(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("segment:\n  treshold: 0.4\n")
    with pytest.raises(UserError, match=r"run.yaml: unknown key segment.'treshold'; did you mean 'threshold'"):
        cfg.load(path)
    path.write_text("overlay:\n  opacity: 3\n")
    with pytest.raises(UserError, match="opacity"):
        cfg.load(path)
    path.write_text("preprocess:\n  eye: right\n  border: [0.1, 0, 0, 0]\nsegment:\n  threshold: 0.3\n")
    config = cfg.load(path, {"segment": {"threshold": 0.6}, "gate": {"engine": None}})
    assert config.preprocess.eye == "right" and config.preprocess.border == (0.1, 0.0, 0.0, 0.0)
    assert config.segment.threshold == 0.6 and config.gate.engine == cfg.DEFAULT_GATE
    cfg.save(config, tmp_path / "resolved.yaml")
    assert cfg.load(tmp_path / "resolved.yaml") == config
