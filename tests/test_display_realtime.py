"""``display.realtime_priority``: live passthrough runs the display path's threads (the
capture thread, which shows each frame inline, and the GUI thread that paints it) under the
kernel's real-time policy, the threads they start at the normal one; refused rights are said,
never fatal. Real threads, a real pipeline with ONNX Runtime engines, the real Qt paint probe."""

from __future__ import annotations

import dataclasses
import os
import threading

import pytest
from engine_fixtures import make_gate, make_segmenter
from video_fixtures import stereo_frame

from nerveseg.commands.bench import modes
from nerveseg.commands.bench.memory_source import MemorySource
from nerveseg.engines.errors import UserError
from nerveseg.realtime import config as config_mod, priority
from nerveseg.realtime.config import PipelineConfig
from nerveseg.realtime.layer import DisplayConfig
from nerveseg.realtime.pipeline import Engines, NervePipeline

pytestmark = pytest.mark.skipif(not hasattr(os, "SCHED_FIFO") or not priority.SUPPORTED,
                                reason="real-time thread policies are Linux's")
FRAMES = [stereo_frame(i) for i in range(12)]


def allowed() -> bool:
    """Whether this account may use the real-time policy (root, CAP_SYS_NICE or an rtprio limit)."""
    seen = {}

    def probe():
        seen["why"] = priority.to_realtime(1)

    thread = threading.Thread(target=probe)
    thread.start()
    thread.join()
    return seen["why"] is None


def config_with(tmp_path, **display) -> PipelineConfig:
    config = PipelineConfig(display=DisplayConfig(mode="passthrough", **display))
    return dataclasses.replace(
        config, gate=dataclasses.replace(config.gate, engine=str(make_gate(tmp_path / "gate.onnx"))),
        segment=dataclasses.replace(config.segment, engine=str(make_segmenter(tmp_path / "seg.onnx"))))


def test_a_thread_runs_real_time_and_the_threads_it_starts_do_not():
    if not allowed():
        pytest.skip("this account may not use the real-time policy")
    seen = {}

    def child():
        seen["child"] = priority.policy_name()

    def display_thread():
        seen["why"] = priority.to_realtime(7)
        seen["self"] = priority.policy_name()
        seen["param"] = os.sched_getparam(0).sched_priority
        started = threading.Thread(target=child)
        started.start()
        started.join()
        priority.to_normal()
        seen["after"] = priority.policy_name()

    thread = threading.Thread(target=display_thread)
    thread.start()
    thread.join()
    assert seen == {"why": None, "self": "fifo", "param": 7, "child": "other", "after": "other"}
    assert priority.policy_name() == "other"  # the test's own thread never changed


def test_a_refusal_is_said_in_one_line_and_the_run_goes_on(monkeypatch):
    def refuse(*_):
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(os, "sched_setscheduler", refuse)
    why = priority.to_realtime(10)
    assert why.startswith("not permitted") and "rtprio" in why and "\n" not in why
    assert priority.to_realtime(0).startswith("off")


def test_live_passthrough_runs_capture_and_paint_real_time(tmp_path):
    """The capture thread (it shows each frame) and the GUI thread painting it run real-time;
    inference does not; the GUI thread is back at the normal policy afterwards."""
    if not allowed():
        pytest.skip("this account may not use the real-time policy")
    config = config_with(tmp_path, realtime_priority=5)
    engines = Engines.load(config)
    shown, layers = set(), set()
    pipeline = NervePipeline(config, source=MemorySource(FRAMES, 30.0, 1), engines=engines)
    pipeline.subscribe(lambda r: shown.add(priority.policy_name()))
    pipeline.subscribe_layers(lambda layer: layers.add(priority.policy_name()))
    summary = pipeline.run()
    assert shown == {"fifo"} and layers == {"other"}  # the capture thread; the overlay's thread
    assert summary["display"]["inference_priority"]["display_path_realtime"] == {
        "priority": 5, "capture_thread": "real-time (fifo)"}
    row = modes.live(FRAMES, 30.0, engines, config)  # the Qt paint probe, as bench and validate use it
    assert row["display_realtime"] == {"priority": 5, "asked": 5, "gui_thread": "real-time (fifo)",
                                       "capture_thread": "real-time (fifo)"}
    assert "display path real-time (5)" in row["variant"] and row["shown"] > 0
    assert priority.policy_name() == "other"


def test_auto_by_default_off_when_asked_and_never_for_files(tmp_path, monkeypatch, caplog):
    """``auto`` (the default): real-time where the account may, else the normal policy with a
    note, not a warning; 0: off; a file replayed never (no live picture to serve)."""
    config = config_with(tmp_path)
    assert config.display.realtime_priority == "auto" and config.display.realtime() == (10, False)
    shown = set()
    if allowed():
        pipeline = NervePipeline(config, source=MemorySource(FRAMES[:4], 30.0, 1), engines=Engines.load(config))
        pipeline.subscribe(lambda r: shown.add(priority.policy_name()))
        summary = pipeline.run()
        assert shown == {"fifo"}
        assert summary["display"]["inference_priority"]["display_path_realtime"] == {
            "priority": 10, "capture_thread": "real-time (fifo)"}
    off = config_with(tmp_path, realtime_priority=0)
    pipeline = NervePipeline(off, source=MemorySource(FRAMES[:4], 30.0, 1), engines=Engines.load(off))
    shown = set()
    pipeline.subscribe(lambda r: shown.add(priority.policy_name()))
    summary = pipeline.run()
    assert shown == {"other"}
    assert summary["display"]["inference_priority"]["display_path_realtime"]["capture_thread"] == "off"
    replay = config_with(tmp_path, realtime_priority=5)
    source = MemorySource(FRAMES[:4], 30.0, 1, live=False)  # a file replayed: no live picture to serve
    pipeline = NervePipeline(replay, source=source, engines=Engines.load(replay))
    pipeline.subscribe(lambda r: shown.add(priority.policy_name()))
    pipeline.run()
    assert shown == {"other"}

    # refused under auto: the run goes on at the normal policy, noted at INFO, no warning
    def refuse(*_):
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(os, "sched_setscheduler", refuse)
    caplog.set_level("INFO")
    for asked, level in (("auto", "INFO"), (7, "WARNING")):
        caplog.clear()
        cfg = config_with(tmp_path, realtime_priority=asked)
        pipeline = NervePipeline(cfg, source=MemorySource(FRAMES[:4], 30.0, 1), engines=Engines.load(cfg))
        summary = pipeline.run()
        got = summary["display"]["inference_priority"]["display_path_realtime"]["capture_thread"]
        assert got.startswith("not permitted") and summary["frames"] > 0
        notes = [r for r in caplog.records if "real-time priority" in r.getMessage()]
        assert notes and {r.levelname for r in notes} == {level}, (asked, [(r.levelname, r.getMessage()) for r in notes])


def test_the_priority_is_checked_at_start_up(tmp_path, capsys):
    from nerveseg.commands.cli import main

    with pytest.raises(UserError, match=r"display.realtime_priority = 120: must be one of 'auto' or a whole number "
                                        r"within \[0, 99\]"):
        config_mod.from_dict({"display": {"realtime_priority": 120}})
    code = main(["run", "--source", str(tmp_path / "none.mp4"), "--gate", str(make_gate(tmp_path / "g.onnx")),
                 "--seg", str(make_segmenter(tmp_path / "s.onnx")), "--realtime-priority", "-1"])
    err = capsys.readouterr().err
    assert code == 2 and "realtime" in err and "-1" in err and "[0, 99]" in err and "Traceback" not in err
