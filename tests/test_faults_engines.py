"""Engine faults: a bad engine file is refused at load with one line; an engine that
throws on a frame marks that frame failed (CSV ``status``, raw picture with a warning)
and the replay goes on; failures in a row stop it with a clear error."""

from __future__ import annotations

import csv
import json

import numpy as np
import onnx
import pytest
from engine_fixtures import make_gate, make_segmenter
from fault_fixtures import POISON_LEVEL, make_poison_gate, poison_frame, write_frames
from video_fixtures import count_frames, stereo_frame, write_video

from nerveseg.engines.metadata import META_KEY
from nerveseg.commands.cli import main


def _edit_meta(path, **changes):
    """Rewrite the nerveseg metadata of the ONNX file ``path`` (``raw=`` replaces the JSON)."""
    model = onnx.load(str(path))
    prop = next(p for p in model.metadata_props if p.key == META_KEY)
    if "raw" in changes:
        prop.value = changes["raw"]
    else:
        meta = json.loads(prop.value)
        for key, value in changes.items():
            if value is None:
                meta.pop(key)
            else:
                meta[key] = value
        prop.value = json.dumps(meta)
    onnx.save(model, str(path))
    return path


def _float_input(path):
    model = onnx.load(str(path))
    model.graph.input[0].type.tensor_type.elem_type = onnx.TensorProto.FLOAT
    onnx.save(model, str(path))
    return path


def _bytes(path, cut=None, scribble=None):
    data = bytearray(path.read_bytes())
    if scribble is not None:
        at = int(len(data) * scribble)
        data[at:at + 64] = b"\xff" * 64
    path.write_bytes(bytes(data[:int(len(data) * cut)] if cut is not None else data))
    return path


# name: (which engine is bad, how to spoil it, what the one line must say)
BAD_ENGINES = {
    "corrupt bytes": ("gate", lambda p: _bytes(p, scribble=0.35), "not a loadable ONNX model"),
    "truncated": ("gate", lambda p: _bytes(p, cut=0.6), "not a loadable ONNX model"),
    "zero bytes": ("seg", lambda p: _bytes(p, cut=0.0), "not a loadable ONNX model"),
    "input size differs from its metadata": ("gate", lambda p: _edit_meta(p, input_size=[64, 64]),
                                             "metadata says uint8 [N, 64, 64, 3]"),
    "float input": ("gate", _float_input, "input 'image' is tensor(float)"),
    "gate classes lack nerve": ("gate", lambda p: _edit_meta(p, classes=["tendon", "wound", "skin"]),
                                "lack 'nerve'"),
    "more classes than logits": ("gate", lambda p: _edit_meta(p, classes=["nerve", "opening_wound", "tendon", "x"]),
                                 "output 'logits' has shape (1, 3), expected (1, 4)"),
    "segmenter of another class": ("seg", lambda p: _edit_meta(p, classes=["background", "tendon"]),
                                   "are not ['background', 'nerve']"),
    "metadata not JSON": ("gate", lambda p: _edit_meta(p, raw="{classes: nerve"), "engine metadata is not valid JSON"),
    "metadata lacks a field": ("seg", lambda p: _edit_meta(p, input_size=None), "engine metadata lacks input_size"),
    "metadata from a newer nerveseg": ("gate", lambda p: _edit_meta(p, format_version=99), "upgrade nerveseg"),
    "segmenter loaded as gate": ("gate", lambda p: make_segmenter(p), "expected a 'classify' model"),
}


@pytest.mark.parametrize("case", sorted(BAD_ENGINES))
def test_bad_engine_file_is_refused_at_load_with_one_line(tmp_path, case, capsys):
    which, spoil, expected = BAD_ENGINES[case]
    gate, seg = make_gate(tmp_path / "gate.onnx"), make_segmenter(tmp_path / "seg.onnx")
    spoil(gate if which == "gate" else seg)
    video = write_video(tmp_path / "in.mp4", frames=3)
    code = main(["replay", str(video), "--out", str(tmp_path / "o.avi"), "--gate", str(gate), "--seg", str(seg),
                 "--no-progress"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and expected in err[0] and f"{which}.onnx" in err[0], err
    assert not (tmp_path / "o.avi").exists() or count_frames(tmp_path / "o.avi") == 0


@pytest.mark.parametrize("name, expected", [("gate.bin", "cannot tell the engine type"),
                                            ("gate.engine", "gate.engine: ")])
def test_engine_of_unknown_or_unusable_kind_is_refused(tmp_path, name, expected, capsys):
    """A TensorRT plan is refused where TensorRT cannot run, and a junk one where it can."""
    engine = tmp_path / name
    engine.write_bytes(b"\x00not an engine" * 10)
    video = write_video(tmp_path / "in.mp4", frames=3)
    code = main(["replay", str(video), "--out", str(tmp_path / "o.avi"), "--gate", str(engine),
                 "--seg", str(make_segmenter(tmp_path / "seg.onnx")), "--no-progress"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and expected in err[0], err


def _poisoned_video(path, frames, poisoned):
    images = [poison_frame() if i in poisoned else stereo_frame(i, nerve=i % 2 == 0) for i in range(frames)]
    return write_frames(path, images)


def test_engine_error_on_one_frame_marks_it_and_the_replay_goes_on(tmp_path, capsys):
    gate, seg = make_poison_gate(tmp_path / "gate.onnx"), make_segmenter(tmp_path / "seg.onnx")
    video = _poisoned_video(tmp_path / "in.avi", 30, {5, 12})
    out = tmp_path / "out.avi"
    code = main(["replay", str(video), "--out", str(out), "--gate", str(gate), "--seg", str(seg),
                 "--no-progress", "--codec", "ffv1"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1
    assert "2 frame(s) failed (gate 2)" in err[-1] and "in.avi" in err[-1], err
    rows = list(csv.DictReader(out.with_suffix(".csv").open()))
    assert [int(r["frame"]) for r in rows] == list(range(30))
    failed = {int(r["frame"]): r["status"] for r in rows if r["status"] != "ok"}
    assert sorted(failed) == [5, 12]
    assert all(s.startswith("failed: gate: ") and "Reshape" in s and "\n" not in s for s in failed.values())
    assert {r["class"] for i, r in enumerate(rows) if i not in failed} == {"nerve", "opening_wound"}
    summary = json.loads(out.with_suffix(".json").read_text())
    assert summary["failed_frames"] == 2 and summary["stage_errors"] == {"gate": 2} and summary["errors"] == []
    import av

    with av.open(str(out)) as container:
        recorded = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    assert len(recorded) == 30, "the failed frames are recorded too"
    shape = recorded[0].shape
    assert recorded[5].shape == shape, "cut like its neighbours, not squeezed"
    below_panel = recorded[5][shape[0] // 2:].astype(int)  # the raw picture (input: MJPEG), no tint
    assert np.abs(below_panel - POISON_LEVEL).max() <= 3


def test_engine_failing_frame_after_frame_stops_with_a_clear_error(tmp_path, capsys):
    gate, seg = make_poison_gate(tmp_path / "gate.onnx"), make_segmenter(tmp_path / "seg.onnx")
    video = _poisoned_video(tmp_path / "in.avi", 40, set(range(3, 40)))
    out = tmp_path / "out.avi"
    code = main(["replay", str(video), "--out", str(out), "--gate", str(gate), "--seg", str(seg), "--no-progress"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1
    stopped = [line for line in err if "stopped early" in line]
    assert len(stopped) == 1 and stopped[0].startswith("nerveseg replay: error: ") and "in.avi" in stopped[0]
    assert "gate: 25 consecutive failures, last: " in stopped[0]
    summary = json.loads(out.with_suffix(".json").read_text())
    assert summary["errors"] and summary["stage_errors"]["gate"] == 25
    # What was written stays playable: the good frames and the failed ones shown raw.
    assert count_frames(out) == summary["recorded_frames"] >= 3 + 20
