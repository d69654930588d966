"""``gate.every`` / ``--gate-every N``: the gate runs on every Nth frame and the frames between
hold its verdict (the heavy configuration's cheapest saving, docs/BENCHMARKS.md). Real PyAV,
real ONNX Runtime sessions, the real replay command."""

from __future__ import annotations

import csv
import json

import pytest
from video_fixtures import write_video

from nerveseg.commands.cli import main


def replay(tmp_path, name, video, gate, seg, *extra):
    out = tmp_path / name / "replay.avi"
    code = main(["replay", str(video), "--out", str(out), "--gate", str(gate), "--seg", str(seg),
                 "--no-progress", *extra])
    assert code == 0
    return list(csv.DictReader(out.with_suffix(".csv").open())), json.loads(out.with_suffix(".json").read_text())


def test_frames_between_hold_the_last_gated_verdict_and_say_so(tmp_path, tiny_engines):
    """Nerve on every other frame: every frame gated, the labels alternate; every third frame
    gated, each frame carries its gated frame's label (and is segmented by it), is marked held,
    and has no gate time; the summary counts the held frames."""
    video = write_video(tmp_path / "in.mp4", frames=24, nerve_every=2)
    each, each_summary = replay(tmp_path, "each", video, *tiny_engines)
    third, summary = replay(tmp_path, "third", video, *tiny_engines, "--gate-every", "3")
    assert [r["class"] for r in each] == ["nerve", "opening_wound"] * 12
    assert each_summary["gate_held_frames"] == 0 and {r["gate_held"] for r in each} == {"False"}
    assert [r["gate_held"] for r in third] == ["False", "True", "True"] * 8
    for k, row in enumerate(third):
        gated = third[k - k % 3]
        assert row["class"] == each[k - k % 3]["class"] == gated["class"]
        assert row["confidence"] == gated["confidence"]
        assert row["segmented"] == str(row["class"] == "nerve")
        assert (row["gate_ms"] == "") == (row["gate_held"] == "True")
    assert summary["gate_held_frames"] == 16 and summary["frames"] == 24
    assert summary["stages_ms"]["gate"]["n"] < each_summary["stages_ms"]["gate"]["n"]
    config = (tmp_path / "third" / "replay.config.yaml").read_text()
    assert "every: 3" in config


@pytest.mark.parametrize("value", ["0", "11", "1.5", "two"])
def test_a_bad_gate_every_is_refused_in_one_line(tmp_path, tiny_engines, capsys, value):
    video = write_video(tmp_path / "in.mp4", frames=4)
    out = tmp_path / "out.avi"
    try:
        code = main(["replay", str(video), "--out", str(out), "--gate", str(tiny_engines[0]), "--seg",
                     str(tiny_engines[1]), "--no-progress", "--gate-every", value])
    except SystemExit as exc:  # argparse's own type errors
        code = exc.code
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "--gate-every" in err and not out.exists()


def test_a_gate_segment_engine_cannot_hold_its_verdict(tmp_path, tiny_engines, capsys):
    """Its one forward is also the mask: holding it would hold the mask, so it is refused."""
    from pathlib import Path

    gate = Path(__file__).resolve().parents[1] / "samples" / "models" / "gate_seg.onnx"
    video = write_video(tmp_path / "in.mp4", frames=4)
    from nerveseg.realtime import config as cfg
    from nerveseg.realtime.pipeline import NervePipeline
    from nerveseg.engines.metadata import EngineError

    config = cfg.from_dict({"source": {"spec": str(video)}, "gate": {"engine": str(gate), "every": 2},
                            "segment": {"engine": str(tiny_engines[1])}})
    with pytest.raises(EngineError, match="gate.every 2 needs a separate segmenter"):
        NervePipeline(config)


def test_a_held_frame_s_delay_splits_into_parts_with_no_gate_time():
    """Validate's and the bench's delay breakdown take a frame that held the gate's verdict
    (no gate stamp): its gate part is 0 and the parts still add up to the whole delay."""
    from nerveseg.commands.validation.delays import PARTS, parts_ms
    from nerveseg.realtime.display_probe import Shown

    stamps = (("decode", 0, 1_000_000), ("preprocess", 2_000_000, 5_000_000), ("segment", 6_000_000, 9_000_000),
              ("overlay", 10_000_000, 12_000_000))
    shown = Shown(index=3, captured_ns=1_000_000, stamps=stamps, segmented=True, handoff_ns=13_000_000,
                  received_ns=14_000_000, painted_ns=16_000_000)
    parts = parts_ms(shown)
    assert list(parts) == list(PARTS) and parts["gate"] == 0.0 and parts["segment"] == 3.0
    assert sum(parts.values()) == pytest.approx((shown.painted_ns - shown.captured_ns) / 1e6)
