"""A stop signal that lands inside a library's native code can come out as that library's
own error: matplotlib's Agg, cut short while it converts a bounding box, raises
"ValueError: Invalid bounding box" instead of the KeyboardInterrupt. That failure is the
stop: every report says "interrupted", never "failed: ValueError", and the command ends
as every stopped command does (130, "interrupted", no traceback).

Each test sends this process a real SIGTERM from inside the drawing or measuring the run
is doing; the command's own handler raises, and the "library" turns that into its error."""

from __future__ import annotations

import json
import os
import signal
import time

import pytest
from engine_fixtures import make_gate, make_segmenter
from test_eval_compare import gate_set  # noqa: F401 (the fixture)
from video_fixtures import write_video

from nerveseg.commands.cli import main
from nerveseg.engines import interrupts


def _library_cut_short(*args, **kwargs):
    """What matplotlib did in CI: the signal's KeyboardInterrupt, lost inside native
    code, comes out as the library's own ValueError."""
    try:
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)  # the handler raises long before this ends
    except KeyboardInterrupt:
        raise ValueError("Invalid bounding box") from None
    raise AssertionError("the SIGTERM never reached its handler")


@pytest.fixture(autouse=True)
def _no_stop_left_behind():
    yield
    interrupts.clear_stop()


def _says_interrupted(code: int, err: str) -> None:
    assert code == 130, err
    assert "interrupted" in err and "Traceback" not in err and "ValueError" not in err, err


def test_a_validation_stopped_while_its_figures_are_drawn_says_interrupted(tmp_path, monkeypatch, capsys):
    from nerveseg.commands.validation import figures

    gate, seg = make_gate(tmp_path / "gate.onnx"), make_segmenter(tmp_path / "seg.onnx")
    video = write_video(tmp_path / "plain.mp4", frames=24, fps=24, nerve_every=1)
    monkeypatch.setattr(figures, "delay_distribution", _library_cut_short)
    out = tmp_path / "report"
    code = main(["validate", "--gate", str(gate), "--seg", str(seg), "--video", str(video), "--out", str(out),
                 "--no-pdf", "--display", "subscriber", "--no-progress",
                 "--annotation-threshold-ms", "5000", "--video-threshold-ms", "5000"])
    _says_interrupted(code, capsys.readouterr().err)
    verdict = json.loads((out / "validation.json").read_text())["verdict"]
    assert verdict["status"] == "INCOMPLETE" and verdict["reason"] == interrupts.INTERRUPTED, verdict
    assert verdict["not_measured"] == ["verdict and report"]
    page = (out / "validation.html").read_text()
    assert "Verdict: INCOMPLETE" in page and interrupts.INTERRUPTED in page and "ValueError" not in page


def test_an_evaluation_stopped_while_its_plots_are_drawn_says_interrupted(gate_set, tmp_path, monkeypatch,  # noqa: F811
                                                                        capsys):
    from nerveseg.training import plots

    data, splits = gate_set
    monkeypatch.setattr(plots, "confusion_png", _library_cut_short)
    out = tmp_path / "eval"
    code = main(["eval", "gate", str(make_gate(tmp_path / "bright.onnx")), "--data", str(data),
                 "--splits", str(splits), "--out", str(out)])
    _says_interrupted(code, capsys.readouterr().err)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["status"] == "INCOMPLETE" and metrics["reason"] == interrupts.INTERRUPTED, metrics


def test_a_bench_stopped_while_it_measures_says_interrupted(tmp_path, tiny_engines, monkeypatch, capsys):
    from nerveseg.commands.bench import modes

    video = write_video(tmp_path / "in.mp4", frames=8)
    monkeypatch.setattr(modes, "bare", _library_cut_short)
    out = tmp_path / "bench"
    code = main(["bench", str(video), "--gate", str(tiny_engines[0]), "--seg", str(tiny_engines[1]),
                 "--modes", "bare", "--out", str(out)])
    err = capsys.readouterr().err
    _says_interrupted(code, err)
    results = json.loads((out / "bench.json").read_text())
    assert results["status"] == "INCOMPLETE" and results["reason"] == interrupts.INTERRUPTED, results
    assert f"INCOMPLETE ({interrupts.INTERRUPTED})" in err


def test_the_same_error_without_a_stop_is_a_failure(tmp_path, tiny_engines, monkeypatch, capsys):
    """The rule reads the stop, not the error: a real ValueError stays a failure."""
    from nerveseg.commands.bench import modes

    def broken(*args, **kwargs):
        raise ValueError("Invalid bounding box")

    video = write_video(tmp_path / "in.mp4", frames=8)
    monkeypatch.setattr(modes, "bare", broken)
    out = tmp_path / "bench"
    with pytest.raises(ValueError, match="Invalid bounding box"):
        main(["bench", str(video), "--gate", str(tiny_engines[0]), "--seg", str(tiny_engines[1]),
              "--modes", "bare", "--out", str(out)])
    results = json.loads((out / "bench.json").read_text())
    assert results["status"] == "INCOMPLETE" and results["reason"] == "failed: ValueError: Invalid bounding box"
