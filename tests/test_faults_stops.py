"""Runs that end without frames, frames too small for the engines, and a stop asked
for while a stage is stuck in native code: never a claim of a file that was not
written, never a wait past two seconds."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import av
import cv2
import numpy as np

from fault_fixtures import make_stuck_gate, nerveseg_child, wait_for
from nerveseg.commands.cli import main
from video_fixtures import write_video


def test_a_live_run_that_never_gets_a_frame_fails_and_claims_no_recording(tmp_path, tiny_engines, capsys):
    out = tmp_path / "live.avi"
    code = main(["run", "--source", "97", "--record", str(out), "--gate", str(tiny_engines[0]),
                 "--seg", str(tiny_engines[1]), "--duration", "1.5"])  # no camera 97 on any test machine
    captured = capsys.readouterr()
    assert code == 1, captured.err
    assert "no frame received" in captured.err
    assert "saved" not in captured.err + captured.out and f"{out}: not written (no frame arrived)" in captured.err
    assert not out.exists() and not out.with_suffix(".csv").exists()
    summary = json.loads(out.with_suffix(".json").read_text())
    assert summary["frames"] == 0 and summary["recorded_frames"] == 0


def test_frames_too_small_for_the_engines_are_skipped_and_told(tmp_path, tiny_engines, capsys):
    folder = tmp_path / "tiny"
    folder.mkdir()
    for i in range(3):
        cv2.imwrite(str(folder / f"{i:03d}.png"), np.full((2, 2, 3), 120, np.uint8))
    out = tmp_path / "out" / "r.avi"
    code = main(["replay", str(folder), "--out", str(out), "--gate", str(tiny_engines[0]),
                 "--seg", str(tiny_engines[1]), "--no-progress"])
    captured = capsys.readouterr()
    assert code == 1
    assert "3 frame(s) smaller than 16×16 px skipped" in captured.err and "Traceback" not in captured.err
    assert not out.exists() and not out.with_suffix(".csv").exists()
    wrote = [line for line in captured.out.splitlines() if line.startswith("wrote")]
    assert wrote == [f"wrote {out.with_suffix('.json')}"]  # only what is on disk


def test_a_video_of_frames_too_small_is_refused_at_start(tmp_path, tiny_engines, capsys):
    video = tmp_path / "small.avi"
    with av.open(str(video), "w") as container:
        stream = container.add_stream("mjpeg", rate=24)
        stream.width = stream.height = 8
        stream.pix_fmt = "yuvj420p"
        for _ in range(3):
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.full((8, 8, 3), 90, np.uint8), "rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    out = tmp_path / "out" / "r.avi"
    code = main(["replay", str(video), "--out", str(out), "--gate", str(tiny_engines[0]),
                 "--seg", str(tiny_engines[1]), "--no-progress"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.endswith("frames of 8×8 px are too small (at least 16×16 needed)"), err
    assert not (tmp_path / "out").exists() or list((tmp_path / "out").iterdir()) == []


def test_sigterm_ends_a_replay_within_two_seconds_while_its_gate_is_stuck(tmp_path, tiny_engines):
    """The gate is inside one ONNX Runtime call that would take many minutes: no Python
    code runs in its thread, yet the stop closes the outputs and exits."""
    gate = make_stuck_gate(tmp_path / "stuck.onnx")
    video = write_video(tmp_path / "in.mp4", frames=60, fps=30, height=120, width=320)
    out = tmp_path / "out.avi"
    child = nerveseg_child("replay", str(video), "--out", str(out), "--gate", str(gate),
                           "--seg", str(tiny_engines[1]), "--no-progress")
    # Running: the resolved config is written once the engines are loaded and checked.
    wait_for(lambda: out.with_suffix(".config.yaml").exists() or child.poll() is not None, 60, "start-up")
    time.sleep(1.0)  # the first frame is in the gate by now
    assert child.poll() is None, child.stderr.read()
    t0 = time.monotonic()
    child.send_signal(signal.SIGTERM)
    child.wait(15)
    took = time.monotonic() - t0
    err = child.stderr.read()
    assert took < 2.0, f"took {took:.2f} s: {err}"
    assert child.returncode == 130 and "interrupted" in err, err
    summary = json.loads(out.with_suffix(".json").read_text())
    assert summary["interrupted"] and summary["frames"] == 0
