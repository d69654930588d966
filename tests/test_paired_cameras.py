"""Two devices, one stereo picture: a left and a right camera paired by capture time."""

from __future__ import annotations

import threading
import time

import numpy as np
from fault_fixtures import ScriptedCamera, wait_for

from nerveseg.engines.preprocess import PreprocessConfig, Preprocessor
from nerveseg.realtime.sources import CameraSource, PairedSource, open_source


def run(source, until, timeout=10.0):
    stop, frames = threading.Event(), []
    thread = threading.Thread(target=lambda: frames.extend(source.frames(stop)))
    thread.start()
    try:
        wait_for(lambda: until(frames), timeout, "paired frames")
    finally:
        stop.set()
        thread.join(5)
    return frames


def test_two_cameras_make_one_side_by_side_frame_paired_by_time():
    left_cam, right_cam = ScriptedCamera((90, 120), fps=60, value=150), ScriptedCamera((90, 120), fps=30, value=60)
    source = PairedSource(CameraSource(0, opener=left_cam.open), CameraSource(1, opener=right_cam.open, fps=30))
    frames = run(source, lambda f: len(f) >= 12)
    assert all(f.image.shape == (90, 240, 3) for f in frames)
    assert (frames[0].image[:, :120] == 150).all() and (frames[0].image[:, 120:] == 60).all(), "left | right"
    assert source.max_skew_ms <= source.tolerance_ns / 1e6 <= 17, "every pair within half a frame of the slower"
    assert source.unpaired > 0, "the 60 fps side's extra frames are dropped, never shown half"
    assert [f.index for f in frames] == list(range(len(frames)))
    view, _, _ = Preprocessor(PreprocessConfig(border="none"), (32, 32))(frames[0].image)
    assert (view == 150).all(), "the pipeline sees side-by-side: the left eye is the left camera"


def test_a_lost_right_camera_is_no_signal_naming_the_side_and_pairs_resume():
    left_cam, right_cam = ScriptedCamera(fps=60, value=150), ScriptedCamera(fps=60, value=60)
    source = PairedSource(CameraSource(0, opener=left_cam.open),
                          CameraSource(1, opener=right_cam.open, backoff=(0.02, 0.1), max_failed_reads=2))
    stop, frames = threading.Event(), []
    thread = threading.Thread(target=lambda: frames.extend(source.frames(stop)))
    thread.start()
    try:
        wait_for(lambda: len(frames) >= 5, 10, "pairs")
        right_cam.mode = "unplugged"
        wait_for(lambda: source.status.snapshot()[0] == "no signal", 3, "no signal")
        assert source.status.snapshot()[1].startswith("right camera:")
        n = len(frames)
        time.sleep(0.3)
        assert len(frames) <= n + 2, "no half pictures while one eye is missing"
        right_cam.mode = "frames"
        wait_for(lambda: len(frames) >= n + 5, 10, "pairs again")
        assert source.status.snapshot()[0] == "ok"
    finally:
        stop.set()
        thread.join(5)


def test_right_source_in_the_spec_options():
    cams = {0: ScriptedCamera(), 1: ScriptedCamera()}
    source = open_source("0", opener=lambda index, api=0: cams[index].open(index, api), right="1")
    assert isinstance(source, PairedSource) and source.live and source.name == "camera:0 + camera:1"
    assert np.isclose(source.tolerance_ns, 0.5 / 30 * 1e9)
