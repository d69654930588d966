"""Recordings that survive their writer: a process killed with SIGKILL mid-recording
(live and replay) loses at most the last second of annotated frames, and a disk that
fills up (or a file that hits its size limit) stops the recording with a clear message
while the pipeline and the view run on. What was written plays, and ``nerveseg
repair`` rebuilds the index a killed writer never wrote."""

from __future__ import annotations

import csv
import json
import os
import resource
import signal
import time
from pathlib import Path

import av
import numpy as np
import pytest
from fault_fixtures import csv_rows, lines_in_background, nerveseg_child, python_child, wait_for
from video_fixtures import band_row, count_frames, pipeline_box, stereo_frame, write_video

from nerveseg.engines.loader import load_engine
from nerveseg.realtime import config as cfg
from nerveseg.commands.cli import main
from nerveseg.realtime.pipeline import Engines, NervePipeline
from nerveseg.realtime.repair_cli import repair

# A live session in a child process: a paced file stands in for the camera; each frame
# shown is printed with its time, so the test knows what had been annotated when.
LIVE_SESSION = """
import sys, time
from nerveseg.realtime import config as cfg
from nerveseg.realtime.pipeline import NervePipeline
video, gate, seg, avi = sys.argv[1:5]
config = cfg.from_dict({"source": {"spec": video, "pace": True, "live": True},
                        "gate": {"engine": gate}, "segment": {"engine": seg}})
pipeline = NervePipeline(config)
# Live passthrough: each overlay layer is one annotated frame handed to the recorder.
pipeline.subscribe_layers(lambda layer: print("shown", layer.index, time.monotonic(), flush=True))
pipeline.start()
pipeline.start_recording(avi)
pipeline.wait()
"""


def _decodes_cleanly(path: Path) -> int:
    """Frames in ``path``, decoding every packet; fails on an undecodable one."""
    with av.open(str(path)) as container:
        return sum(len(packet.decode()) for packet in container.demux(video=0))


def _indexed(path: Path) -> bool:
    with av.open(str(path)) as container:
        return container.streams.video[0].frames > 0


def _kill(child) -> float:
    child.send_signal(signal.SIGKILL)
    t = time.monotonic()
    child.wait(5)
    return t


def test_sigkill_mid_live_recording_loses_at_most_the_last_second(tmp_path, tiny_engines):
    video = write_video(tmp_path / "camera.mp4", frames=300, fps=30, height=120, width=320)
    avi = tmp_path / "rec" / "session.avi"
    child = python_child(LIVE_SESSION, str(video), *map(str, tiny_engines), str(avi))
    shown = lines_in_background(child.stdout)
    try:
        wait_for(lambda: shown, timeout=30, what="the first frame on screen")
        time.sleep(2.5)
    finally:
        killed = _kill(child)
    assert child.returncode == -signal.SIGKILL
    # (a line the kill cut short is not counted)
    times = [float(line.split()[2]) for line in list(shown) if line.startswith("shown") and len(line.split()) == 3]
    older = sum(t <= killed - 1.0 for t in times)  # annotated more than 1 s before the kill
    frames, rows = count_frames(avi), csv_rows(avi.with_suffix(".csv"))
    assert older >= 40 and frames >= older, f"{frames} frames kept, {older} were annotated > 1 s before"
    assert rows >= older and abs(rows - frames) <= 1, "the CSV keeps pace with the AVI"
    assert _decodes_cleanly(avi) == frames and not _indexed(avi), "plays as it is, by scanning"
    assert main(["repair", str(avi)]) == 0
    repaired = avi.with_suffix(".repaired.avi")
    assert _decodes_cleanly(repaired) == frames and _indexed(repaired)
    with av.open(str(repaired)) as container:
        assert "nerveseg" in container.metadata.get("comment", ""), "the engines' provenance survives"


def _band_at(image: np.ndarray) -> int:
    """Row of the tinted nerve band, read at the image's right edge (clear of the panel)."""
    green = image[:, -5, 1].astype(int) - image[:, -5, 0].astype(int)
    return int(np.argmax(green))


def test_sigkill_mid_replay_keeps_a_playable_avi_and_its_csv(tmp_path, tiny_engines):
    video = write_video(tmp_path / "long.avi", frames=600, fps=24, nerve_every=1, codec="mjpeg")
    out = tmp_path / "out" / "replay.avi"
    child = nerveseg_child("replay", str(video), "--out", str(out), "--gate", str(tiny_engines[0]),
                           "--seg", str(tiny_engines[1]), "--no-progress", "--threads", "1")
    try:
        wait_for(lambda: csv_rows(out.with_suffix(".csv")) >= 60, timeout=60, what="60 frames logged")
    finally:
        _kill(child)
    frames, rows = count_frames(out), csv_rows(out.with_suffix(".csv"))
    assert frames < 600, "killed mid-replay"
    # The CSV is written after the AVI, through one queue: it lags by at most that queue.
    assert rows <= frames <= rows + 6 <= rows + 24, (frames, rows)
    kept, dropped = repair(out, out)
    assert kept == frames == _decodes_cleanly(out) and _indexed(out)
    box = pipeline_box(stereo_frame(0))
    with av.open(str(out)) as container:
        images = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    for i in (0, frames // 2, frames - 1):  # the right frames, in order, up to the last
        assert abs(_band_at(images[i]) - (band_row(i) - box.y0 + 8)) <= 8, f"frame {i}"


def _fd_of(path: Path) -> int:
    for fd in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{fd}") == str(path):
                return int(fd)
        except OSError:
            continue
    raise AssertionError(f"{path} is not open")


@pytest.fixture(scope="module")
def engines(tmp_path_factory):
    from engine_fixtures import make_gate, make_segmenter

    folder = tmp_path_factory.mktemp("engines")
    return Engines(load_engine(make_gate(folder / "gate.onnx"), task="classify"),
                   load_engine(make_segmenter(folder / "seg.onnx"), task="segment"))


def test_disk_full_mid_recording_stops_it_clearly_and_the_view_runs_on(tmp_path, engines):
    """The disk fills up under the recorder: ``/dev/full`` is put in place of the AVI's
    file descriptor, so the kernel answers every further write with ENOSPC."""
    video = write_video(tmp_path / "in.mp4", frames=200, fps=40, height=120, width=320)
    config = cfg.from_dict({"source": {"spec": str(video), "pace": True, "live": True}})
    pipeline = NervePipeline(config, engines=engines)
    notices, shown = [], []
    pipeline.subscribe_notices(notices.append)
    pipeline.subscribe(lambda r: shown.append(r.index))
    avi = tmp_path / "full.avi"
    pipeline.start()
    pipeline.start_recording(avi)
    wait_for(lambda: pipeline.ops.record.frames >= 8, what="frames recorded")
    full = os.open("/dev/full", os.O_WRONLY)
    os.dup2(full, _fd_of(avi))
    os.close(full)
    wait_for(lambda: any(n.kind == "error" for n in notices), what="the failure told")
    error = next(n for n in notices if n.kind == "error")
    assert "No space left on device" in error.message and f"after {error.frames} frames" in error.message
    assert error.path == str(avi) and "\n" not in error.message
    n = len(shown)
    wait_for(lambda: len(shown) > n + 10, what="the view after the failure")
    assert pipeline.graph.fatal is None and pipeline.close(2.0)
    assert not any(n.kind == "saved" for n in notices), "a failed recording is not told as saved"
    kept = count_frames(avi)
    assert error.frames <= kept <= error.frames + 1, "what was written plays (a half-written frame may too)"
    assert csv_rows(avi.with_suffix(".csv")) == error.frames
    assert repair(avi, tmp_path / "fixed.avi")[0] == kept
    assert pipeline.summary()["output_errors"] == [error.message]


def test_disk_full_under_the_per_frame_log_stops_the_log_not_the_replay(tmp_path, engines):
    video = write_video(tmp_path / "in.mp4", frames=90, fps=60, height=120, width=320)
    avi = tmp_path / "out.avi"
    config = cfg.from_dict({"source": {"spec": str(video), "pace": True}, "record": {"path": str(avi)}})
    pipeline = NervePipeline(config, engines=engines)
    pipeline.start()
    log_csv = avi.with_suffix(".csv")
    wait_for(lambda: csv_rows(log_csv) >= 10, what="rows logged")
    full = os.open("/dev/full", os.O_WRONLY)
    os.dup2(full, _fd_of(log_csv))
    os.close(full)
    while not pipeline.wait(0.2):
        pass
    summary = pipeline.finish()
    [error] = summary["output_errors"]
    assert error.startswith(f"{log_csv}: per-frame log stopped after ") and "No space left on device" in error
    assert pipeline.graph.fatal is None and summary["frames"] == summary["recorded_frames"] == 90
    assert count_frames(avi) == 90, "the recording is untouched"
    assert 10 <= csv_rows(log_csv) < 90


def _file_size_limit(limit: int):
    return lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))


def test_output_that_hits_its_size_limit_mid_replay(tmp_path, tiny_engines):
    """A real write failure in a child ``nerveseg replay``: RLIMIT_FSIZE makes the
    kernel refuse (EFBIG) every write past 400 kB. The recording stops with a clear
    message, the replay goes on to the end (every frame in the per-frame log), exit 1."""
    video = write_video(tmp_path / "in.avi", frames=120, fps=24, codec="mjpeg")
    out = tmp_path / "out.avi"
    child = nerveseg_child("replay", str(video), "--out", str(out), "--gate", str(tiny_engines[0]),
                           "--seg", str(tiny_engines[1]), "--no-progress", "--codec", "ffv1",
                           preexec_fn=_file_size_limit(400_000))
    _, err = child.communicate(timeout=120)
    assert child.returncode == 1, err
    stopped = [line for line in err.splitlines() if "recording stopped after" in line]
    assert len(stopped) == 1 and stopped[0].startswith("nerveseg replay: error: ")
    assert "File too large" in stopped[0] and "out.avi" in stopped[0]
    summary = json.loads(out.with_suffix(".json").read_text())
    assert summary["frames"] == 120 and 0 < summary["recorded_frames"] < 120
    assert len(list(csv.DictReader(out.with_suffix(".csv").open()))) == 120, "the log goes on"
    kept = count_frames(out)
    assert summary["recorded_frames"] <= kept <= summary["recorded_frames"] + 1
    assert repair(out, tmp_path / "fixed.avi")[0] == kept


def test_live_run_keeps_running_after_its_recording_hits_the_limit(tmp_path, tiny_engines):
    """``nerveseg run`` (headless live): the failure is printed once, as it happens; the
    run goes on to its end, every frame in its log, and exits 1."""
    video = write_video(tmp_path / "in.mp4", frames=300, fps=30)
    out = tmp_path / "live.avi"
    child = nerveseg_child("run", "--source", str(video), "--record", str(out), "--duration", "2.5",
                           "--codec", "ffv1", "--gate", str(tiny_engines[0]), "--seg", str(tiny_engines[1]),
                           preexec_fn=_file_size_limit(120_000))
    _, err = child.communicate(timeout=60)
    assert child.returncode == 1, err
    stopped = [line for line in err.splitlines() if "recording stopped after" in line]
    assert len(stopped) == 1 and stopped[0].startswith("nerveseg run: error: ") and "File too large" in stopped[0]
    summary = json.loads(out.with_suffix(".json").read_text())
    assert summary["frames"] >= 2 * summary["recorded_frames"] > 0, "the run outlived its recording"
    assert len(list(csv.DictReader(out.with_suffix(".csv").open()))) == summary["frames"]
    assert summary["recorded_frames"] <= count_frames(out) <= summary["recorded_frames"] + 1


def test_repair_refuses_what_it_cannot_read_with_one_line(tmp_path, capsys):
    junk = tmp_path / "junk.avi"
    junk.write_text("not a video")
    assert main(["repair", str(junk)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "junk.avi: cannot repair" in err[0]
    assert not list(tmp_path.glob("*.part")) and not (tmp_path / "junk.repaired.avi").exists()
