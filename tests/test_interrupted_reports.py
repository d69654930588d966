"""Verdicts only for complete runs: `nerveseg validate` stopped by a real SIGINT or SIGTERM
at many moments (start-up, the measurements, the report being drawn and written) never
leaves PASS in its HTML, JSON or PDF, always says "interrupted", and exits 130; a
validation that fails part way writes INCOMPLETE and exits 3."""

from __future__ import annotations

import json
import re
import signal
import time
from pathlib import Path

import pytest
from engine_fixtures import make_gate, make_segmenter
from fault_fixtures import nerveseg_child
from video_fixtures import write_video


@pytest.fixture(scope="module")
def setup(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("interrupt")
    return {"gate": make_gate(root / "gate.onnx"), "seg": make_segmenter(root / "seg.onnx"),
            "video": write_video(root / "plain.mp4", frames=48, fps=24, nerve_every=1), "root": root}


def _argv(setup: dict, out: Path) -> list[str]:
    return ["validate", "--gate", str(setup["gate"]), "--seg", str(setup["seg"]), "--video", str(setup["video"]),
            "--out", str(out), "--display", "subscriber", "--no-progress",
            "--annotation-threshold-ms", "5000", "--video-threshold-ms", "5000",
            "--exist-ok"]  # an earlier report is there on purpose: a stopped run must not leave its PASS


def _report_says(out: Path) -> set[str]:
    """The verdict words found in whichever report files exist."""
    found = set()
    if (out / "validation.json").exists():
        found.add(json.loads((out / "validation.json").read_text())["verdict"]["status"])
    if (out / "validation.html").exists():
        page = (out / "validation.html").read_text()
        found |= {w for w in ("PASS", "FAIL", "INCOMPLETE") if f"Verdict: {w}" in page}
    if (out / "validation.pdf").exists():
        pdf = (out / "validation.pdf").read_bytes()
        found.add("INCOMPLETE" if b"INCOMPLETE" in pdf else "PDF without INCOMPLETE")
    return found


@pytest.fixture(scope="module")
def full_run(setup) -> float:
    """An uninterrupted run: it passes; returns how long it took (the moments are fractions of it)."""
    out = setup["root"] / "full"
    t0 = time.monotonic()
    child = nerveseg_child(*_argv(setup, out))
    stdout, stderr = child.communicate(timeout=300)
    assert child.returncode == 0, stdout + stderr
    assert _report_says(out) == {"PASS", "PDF without INCOMPLETE"}
    return time.monotonic() - t0


@pytest.mark.parametrize("fraction, sig", [(0.1, signal.SIGINT), (0.3, signal.SIGTERM), (0.5, signal.SIGINT),
                                           (0.7, signal.SIGTERM), (0.85, signal.SIGINT), (0.95, signal.SIGTERM),
                                           ("report", signal.SIGINT), ("report", signal.SIGTERM)])
def test_a_stopped_validation_never_says_pass(setup, full_run, fraction, sig, tmp_path):
    out = tmp_path / "report"
    out.mkdir()
    for name in ("validation.html", "validation.json"):  # an earlier run's PASS must not survive
        (out / name).write_text((setup["root"] / "full" / name).read_text())
    child = nerveseg_child(*_argv(setup, out))
    if fraction == "report":  # while the figures are drawn and the files written
        stderr_lines = []
        for line in child.stderr:
            stderr_lines.append(line)
            if "writing the report" in line:
                break
        time.sleep(0.3)
    else:
        time.sleep(fraction * full_run)
        stderr_lines = []
    child.send_signal(sig)
    stdout, rest = child.communicate(timeout=120)
    stderr = "".join(stderr_lines) + rest
    assert "Traceback" not in stderr, stderr
    says = _report_says(out)
    if child.returncode == 0:  # finished, or the whole report was in place before the signal: it stands
        assert says == {"PASS", "PDF without INCOMPLETE"}
        assert "interrupted" not in stderr or re.search("after the (report|run) was complete", stderr), stderr
        return
    assert child.returncode == 130, (child.returncode, stdout, stderr)
    assert "interrupted" in stderr, stderr
    if "measuring;" not in stderr:  # stopped before its inputs were checked: the earlier run's files untouched
        assert (out / "validation.json").read_text() == (setup["root"] / "full" / "validation.json").read_text()
        return
    assert "PASS" not in says and "FAIL" not in says, says
    if says:  # stopped once the measurements had begun: INCOMPLETE in every file, with what was measured
        assert says == {"INCOMPLETE"}, says
        verdict = json.loads((out / "validation.json").read_text())["verdict"]
        assert verdict["reason"].startswith("interrupted") and verdict["not_measured"]
        assert "Verdict: INCOMPLETE" in (out / "validation.html").read_text()


def test_a_validation_that_fails_part_way_is_incomplete_and_exits_3(setup, tmp_path, monkeypatch, capsys):
    """The real-time pass breaks (a bug, a device lost): the test sets and every-frame pass
    were measured, the delays not; no verdict."""
    from nerveseg.commands.cli import main
    from nerveseg.commands.validation import passes

    def broken(*args, **kwargs):
        raise RuntimeError("camera thread died")

    monkeypatch.setattr(passes, "real_time_pass", broken)
    out = tmp_path / "report"
    assert main(_argv(setup, out)[:-5]) == 3  # without the thresholds (and --exist-ok)
    assert "INCOMPLETE" in capsys.readouterr().err
    verdict = json.loads((out / "validation.json").read_text())["verdict"]
    assert verdict["status"] == "INCOMPLETE" and not verdict["passed"]
    assert any(step.startswith("every-frame") for step in verdict["measured"])
    assert any(step.startswith("real-time") for step in verdict["not_measured"])
    assert "RuntimeError: camera thread died" in verdict["reason"]
    assert _report_says(out) == {"INCOMPLETE"}


def _wait_line(child, needle: str, timeout: float = 60) -> str:
    seen = []
    deadline = time.monotonic() + timeout
    for line in child.stderr:
        seen.append(line)
        if needle in line or time.monotonic() > deadline:
            break
    return "".join(seen)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_stopped_eval_leaves_incomplete_not_an_earlier_report(setup, tmp_path, sig):
    """Three models on 600 images, stopped as the second loads: the first folder is
    complete, the rest and the comparison say INCOMPLETE (an earlier run's comparison too)."""
    import cv2
    import numpy as np

    data = tmp_path / "cls"
    for name, value in (("nerve", 200), ("opening_wound", 50), ("tendon", 120)):
        (data / name).mkdir(parents=True)
        for k in range(200):
            cv2.imwrite(str(data / name / f"{k}.png"), np.full((64, 64, 3), value + k % 7, np.uint8))
    (tmp_path / "splits").mkdir()
    (tmp_path / "splits" / "test.txt").write_text("".join(f"{p.relative_to(data)}\n" for p in data.glob("*/*.png")))
    models = [make_gate(tmp_path / f"g{k}.onnx") for k in range(3)]
    out = tmp_path / "eval"
    out.mkdir()
    (out / "comparison.json").write_text(json.dumps({"status": "complete", "models": "an earlier run"}))
    child = nerveseg_child("eval", "gate", *map(str, models), "--data", str(data), "--splits",
                           str(tmp_path / "splits"), "--out", str(out), "--backend", "onnxruntime",
                           "--exist-ok")  # over the earlier report on purpose
    seen = _wait_line(child, "g1.onnx: backend")
    child.send_signal(sig)
    _, rest = child.communicate(timeout=60)
    stderr = seen + rest
    assert "Traceback" not in stderr, stderr
    statuses = {p.parent.name: json.loads(p.read_text())["status"] for p in out.glob("**/*.json")}
    if child.returncode == 0:  # it had finished: every report complete
        assert set(statuses.values()) == {"complete"}, statuses
        return
    assert child.returncode == 130 and "interrupted" in stderr, stderr
    assert statuses["eval"] == "INCOMPLETE" and statuses["g2"] == "INCOMPLETE", statuses
    assert json.loads((out / "comparison.json").read_text())["reason"].startswith("interrupted")


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_stopped_bench_writes_incomplete_with_what_it_measured(setup, tmp_path, sig):
    out = tmp_path / "bench"
    video = write_video(tmp_path / "long.mp4", frames=600, fps=30, nerve_every=2)
    child = nerveseg_child("bench", str(video), "--gate", str(setup["gate"]), "--seg", str(setup["seg"]),
                           "--modes", "bare,replay", "--frames", "60", "--out", str(out))
    seen = _wait_line(child, "bench: replay")
    time.sleep(0.5)
    child.send_signal(sig)
    _, rest = child.communicate(timeout=60)
    stderr = seen + rest
    assert "Traceback" not in stderr, stderr
    summary = json.loads((out / "bench.json").read_text())
    if child.returncode == 0:
        assert summary["status"] == "complete" and "ratios" in summary
        return
    assert child.returncode == 130 and "interrupted" in stderr, stderr
    assert summary["status"] == "INCOMPLETE" and summary["reason"].startswith("interrupted")
    assert "replay" not in summary["measured"] and "ratios" not in summary
