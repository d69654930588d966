"""Long runs and shutdown: a 12,000-frame replay keeps its memory and thread count
flat, and Ctrl-C (SIGINT) ends a replay or a live run, outputs closed, within 2 s."""

from __future__ import annotations

import csv
import json
import signal
import threading
import time
from pathlib import Path

import av
import pytest
from fault_fixtures import ScriptedCamera, csv_rows, nerveseg_child, wait_for
from video_fixtures import count_frames, write_video

from nerveseg.engines.loader import load_engine
from nerveseg.realtime import config as cfg
from nerveseg.realtime.pipeline import Engines, NervePipeline
from nerveseg.realtime.sources import CameraSource

SOAK_FRAMES = 12_000


def _proc_status(pid: int) -> tuple[int, int] | None:
    """``(VmRSS in bytes, threads)`` of a running process (None once it has gone)."""
    try:
        fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines())
    except (OSError, ValueError):
        return None
    if "VmRSS" not in fields:
        return None
    return int(fields["VmRSS"].split()[0]) * 1024, int(fields["Threads"])


@pytest.mark.slow
def test_soak_replay_keeps_memory_and_threads_flat(tmp_path, tiny_engines):
    """Small frames and tiny engines, so 12,000 frames take well under a minute on two
    cores. Memory is measured from frame 1,000 (after warm-up: allocator pools, runtime
    arenas) to the end; threads (native ones included: FFmpeg's, ONNX Runtime's) over
    the same stretch. The per-frame statistics rows (~1.5 kB a frame, kept for exact
    percentiles) are most of the growth."""
    video = write_video(tmp_path / "soak.avi", frames=SOAK_FRAMES, fps=30, height=64, width=128, codec="mjpeg")
    out = tmp_path / "soak_out.avi"
    child = nerveseg_child("replay", str(video), "--out", str(out), "--gate", str(tiny_engines[0]),
                           "--seg", str(tiny_engines[1]), "--no-progress", "--threads", "1")
    samples = []  # (rows logged, rss, threads)
    try:
        while child.poll() is None:
            status, rows = _proc_status(child.pid), csv_rows(out.with_suffix(".csv"))
            if status is not None and 1000 <= rows < SOAK_FRAMES - 50:  # running: not warm-up, not tear-down
                samples.append((rows, *status))
            time.sleep(0.25)
        _, err = child.communicate(timeout=10)
    finally:
        child.kill()
    assert child.returncode == 0, err
    assert len(samples) >= 20 and samples[-1][0] >= SOAK_FRAMES - 1500, "sampled through the run"
    growth = max(rss for _, rss, _ in samples) - samples[0][1]
    threads = {n for _, _, n in samples}
    assert growth <= 50 * 2**20, f"RSS grew {growth / 2**20:.1f} MB over the run"
    assert len(threads) == 1, f"thread count changed: {sorted(threads)}"
    summary = json.loads(out.with_suffix(".json").read_text())
    assert summary["frames"] == summary["recorded_frames"] == SOAK_FRAMES
    with av.open(str(out)) as container:
        assert container.streams.video[0].frames == SOAK_FRAMES


def _interrupt(child, out: Path, rows: int = 30, sig: int = signal.SIGINT) -> float:
    """``sig`` once ``rows`` frames are logged; seconds until the child had exited."""
    wait_for(lambda: csv_rows(out.with_suffix(".csv")) >= rows or child.poll() is not None, 60,
             f"{rows} frames logged")
    assert child.poll() is None, f"exited ({child.returncode}) before it was interrupted: {child.stderr.read()}"
    t0 = time.monotonic()
    child.send_signal(sig)
    child.wait(10)
    return time.monotonic() - t0


def _closed_properly(avi: Path) -> int:
    """Frames of an AVI that was closed (index written); checks the CSV beside it agrees."""
    with av.open(str(avi)) as container:
        indexed = container.streams.video[0].frames
    assert indexed == count_frames(avi) > 0
    assert len(list(csv.DictReader(avi.with_suffix(".csv").open()))) == indexed
    return indexed


def test_ctrl_c_ends_a_replay_within_two_seconds(tmp_path, tiny_engines):
    video = write_video(tmp_path / "in.mp4", frames=2000, fps=30, height=120, width=320)
    out = tmp_path / "out.avi"
    child = nerveseg_child("replay", str(video), "--out", str(out), "--gate", str(tiny_engines[0]),
                           "--seg", str(tiny_engines[1]), "--no-progress")
    took = _interrupt(child, out)
    err = child.stderr.read()
    assert took < 2.0, f"took {took:.2f} s"
    assert child.returncode == 130 and "nerveseg replay: interrupted;" in err, err
    frames = _closed_properly(out)
    summary = json.loads(out.with_suffix(".json").read_text())
    assert summary["interrupted"] and summary["recorded_frames"] == frames < 2000


def test_ctrl_c_ends_a_live_run_within_two_seconds(tmp_path, tiny_engines):
    video = write_video(tmp_path / "in.mp4", frames=900, fps=30, height=120, width=320)
    out = tmp_path / "live.avi"
    child = nerveseg_child("run", "--source", str(video), "--record", str(out), "--gate", str(tiny_engines[0]),
                           "--seg", str(tiny_engines[1]))
    took = _interrupt(child, out)
    err = child.stderr.read()
    assert took < 2.0, f"took {took:.2f} s"
    assert child.returncode == 0, err
    assert _closed_properly(out) >= 30


def test_sigterm_stops_a_replay_and_a_live_run_as_cleanly_as_ctrl_c(tmp_path, tiny_engines):
    """``kill`` (a service manager, a closed session): the same clean stop, also for a run
    started with Ctrl-C ignored (``nohup``, ``&``)."""
    def ignore_ctrl_c():
        signal.signal(signal.SIGINT, signal.SIG_IGN)

    video = write_video(tmp_path / "in.mp4", frames=2000, fps=30, height=120, width=320)
    out = tmp_path / "replay.avi"
    child = nerveseg_child("replay", str(video), "--out", str(out), "--gate", str(tiny_engines[0]),
                           "--seg", str(tiny_engines[1]), "--no-progress", preexec_fn=ignore_ctrl_c)
    took = _interrupt(child, out, sig=signal.SIGTERM)
    err = child.stderr.read()
    assert took < 2.0 and child.returncode == 130 and "nerveseg replay: interrupted;" in err, (took, err)
    frames = _closed_properly(out)
    assert json.loads(out.with_suffix(".json").read_text())["recorded_frames"] == frames < 2000
    live = tmp_path / "live.avi"
    child = nerveseg_child("run", "--source", str(video), "--record", str(live), "--gate", str(tiny_engines[0]),
                           "--seg", str(tiny_engines[1]), preexec_fn=ignore_ctrl_c)
    took = _interrupt(child, live, sig=signal.SIGTERM)
    assert took < 2.0 and child.returncode == 0, (took, child.stderr.read())
    assert _closed_properly(live) >= 30


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_ctrl_c_closes_the_live_view_and_its_recording_within_two_seconds(tmp_path, tiny_engines, sig):
    pytest.importorskip("PyQt6")
    video = write_video(tmp_path / "in.mp4", frames=900, fps=30, height=120, width=320)
    child = nerveseg_child("view", "--source", str(video), "--record", "--out", str(tmp_path / "view"),
                           "--gate", str(tiny_engines[0]), "--seg", str(tiny_engines[1]))
    wait_for(lambda: _recording(tmp_path / "view") or child.poll() is not None, 60, "a recording")
    assert child.poll() is None, f"exited ({child.returncode}) before recording: {child.stderr.read()}"
    avi = _recording(tmp_path / "view")
    took = _interrupt(child, avi, sig=sig)
    assert took < 2.0 and child.returncode == 0, (took, child.stderr.read())
    assert _closed_properly(avi) >= 30


def test_sigterm_while_the_view_starts_its_recording_still_closes_it(tmp_path, tiny_engines):
    """The signal lands as the recording opens, before the first frame reaches the
    screen: the view still stops within 2 s and the AVI it began is a closed file."""
    pytest.importorskip("PyQt6")
    video = write_video(tmp_path / "in.mp4", frames=900, fps=30, height=120, width=320)
    child = nerveseg_child("view", "--source", str(video), "--record", "--out", str(tmp_path / "view"),
                           "--gate", str(tiny_engines[0]), "--seg", str(tiny_engines[1]))
    wait_for(lambda: list((tmp_path / "view").glob("*.csv")) or child.poll() is not None, 60, "a recording")
    assert child.poll() is None, f"exited ({child.returncode}) before recording: {child.stderr.read()}"
    t0 = time.monotonic()
    child.send_signal(signal.SIGTERM)
    child.wait(10)
    took = time.monotonic() - t0
    assert took < 2.0 and child.returncode == 0, (took, child.stderr.read())
    for avi in (tmp_path / "view").glob("*.avi"):  # none, if the signal beat the recorder's open
        with av.open(str(avi)) as container:  # closed: the index is written (it may hold no frame yet)
            assert container.streams.video[0].frames == count_frames(avi)
        assert len(list(csv.DictReader(avi.with_suffix(".csv").open()))) == count_frames(avi)


def _recording(folder: Path) -> Path | None:
    """The AVI the view is recording into, once its CSV has a logged frame. (A bare
    ``*.avi`` is not enough: the start-up write check creates and removes the file.)"""
    return next((avi for avi in folder.glob("*.avi") if csv_rows(avi.with_suffix(".csv")) > 0), None)


@pytest.fixture(scope="module")
def engines(tmp_path_factory):
    from engine_fixtures import make_gate, make_segmenter

    folder = tmp_path_factory.mktemp("engines")
    return Engines(load_engine(make_gate(folder / "gate.onnx"), task="classify"),
                   load_engine(make_segmenter(folder / "seg.onnx"), task="segment"))


@pytest.mark.parametrize("kind", ["replay", "camera"])
def test_close_ends_every_thread_within_two_seconds(tmp_path, engines, kind):
    before = set(threading.enumerate())
    if kind == "replay":
        video = write_video(tmp_path / "in.mp4", frames=400, height=120, width=320)
        config = cfg.from_dict({"source": {"spec": str(video)}, "record": {"path": str(tmp_path / "o.avi")}})
        pipeline = NervePipeline(config, engines=engines)
    else:
        camera = ScriptedCamera()
        source = CameraSource(0, opener=camera.open, backoff=(0.05, 0.4))
        pipeline = NervePipeline(cfg.from_dict({"source": {"spec": "0", "live": True}}), source=source,
                                 engines=engines)
        pipeline.start_recording(tmp_path / "o.avi")
    pipeline.start()
    wait_for(lambda: pipeline.ops.record.frames >= 20, what="frames recorded")
    t0 = time.monotonic()
    assert pipeline.close(timeout=1.0), "every thread ended without being left behind"
    assert time.monotonic() - t0 < 2.0
    assert set(threading.enumerate()) <= before, "no thread outlives the pipeline"
    assert count_frames(tmp_path / "o.avi") == pipeline.ops.record.frames


def test_a_native_import_cut_short_by_a_signal_is_an_interruption(monkeypatch, capsys):
    """Ctrl-C or SIGTERM while ONNX Runtime's native module initialises surfaces as
    ``ImportError: initialization failed`` chained to the KeyboardInterrupt: the command
    ends as interrupted (130, one line), not with a traceback. Other import errors stay."""
    from nerveseg.realtime import replay_cli
    from nerveseg.commands.cli import main

    def cut_short(args):
        try:
            raise KeyboardInterrupt
        except KeyboardInterrupt as exc:
            raise ImportError("initialization failed") from exc

    monkeypatch.setattr(replay_cli, "run", cut_short)
    assert main(["replay", "in.mp4", "--out", "out.avi"]) == 130
    assert capsys.readouterr().err.strip() == "nerveseg replay: interrupted"

    def missing(args):
        raise ImportError("No module named 'onnxruntime'")

    monkeypatch.setattr(replay_cli, "run", missing)
    with pytest.raises(ImportError, match="onnxruntime"):
        main(["replay", "in.mp4", "--out", "out.avi"])
