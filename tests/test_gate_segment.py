"""The single-engine design: one network gates and segments in one forward pass
(task ``gate_segment``), trained from a U-Net, exported, and run by the pipeline."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from video_fixtures import count_frames, write_video

from nerveseg.engines.loader import load_engine
from nerveseg.realtime import config as cfg
from nerveseg.commands.cli import main
from nerveseg.realtime.pipeline import Engines, NervePipeline

torch = pytest.importorskip("torch")


@pytest.fixture(scope="module")
def gate_seg_run(training_gate_run, training_seg_run, training_gate_data, training_seg_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("gate_seg")
    assert main(["train", "gate-seg", "--gate-data", str(training_gate_data), "--seg-data", str(training_seg_data),
                 "--gate-splits", str(training_gate_run / "splits"), "--seg-splits", str(training_seg_run / "splits"),
                 "--init-seg", str(training_seg_run / "best.pt"), "--out", str(out), "--head-epochs", "1",
                 "--epochs", "1", "--threads", "1"]) == 0
    return out


def test_training_writes_a_run_folder_and_tests_both_heads(gate_seg_run):
    for name in ("best.pt", "last.pt", "curves.png", "history.json", "config.yaml"):
        assert (gate_seg_run / name).is_file(), name
    history = json.loads((gate_seg_run / "history.json").read_text())
    assert [row["phase"] for row in history] == [1, 2]
    report = json.loads((gate_seg_run / "eval_test" / "metrics.json").read_text())
    assert report["task"] == "gate_segment"
    assert 0 <= report["summary"]["accuracy"] <= 1 and 0 <= report["summary"]["seg_iou_mean"] <= 1


def test_head_phase_trains_the_class_head_alone(training_gate_run, training_seg_run, training_gate_data,
                                               training_seg_data, tmp_path):
    out = tmp_path / "head_only"
    assert main(["train", "gate-seg", "--gate-data", str(training_gate_data), "--seg-data", str(training_seg_data),
                 "--gate-splits", str(training_gate_run / "splits"), "--seg-splits", str(training_seg_run / "splits"),
                 "--init-seg", str(training_seg_run / "best.pt"), "--out", str(out), "--head-epochs", "1",
                 "--epochs", "0", "--threads", "1"]) == 0
    before = torch.load(training_seg_run / "best.pt", weights_only=True)["model"]
    after = torch.load(out / "best.pt", weights_only=True)["model"]
    assert set(after) - set(before) == {"classifier.1.weight", "classifier.1.bias"}
    assert all(torch.equal(before[k], after[k]) for k in before), "the U-Net (BatchNorm statistics too) is untouched"


def test_export_gives_one_engine_with_both_outputs(gate_seg_run, tmp_path):
    onnx_path = tmp_path / "gate_seg.onnx"
    assert main(["export", str(gate_seg_run / "best.pt"), "--out", str(onnx_path),
                 "--metrics", str(gate_seg_run / "eval_test" / "metrics.json")]) == 0
    engine = load_engine(onnx_path, task="gate_segment")
    frames = np.random.default_rng(0).integers(0, 256, (2, *engine.input_size, 3), dtype=np.uint8)
    out = engine.run(frames)
    assert out["logits"].shape == (2, 3) and out["mask_logits"].shape == (2, 1, *engine.input_size)
    reference = load_engine(gate_seg_run / "best.pt", task="gate_segment").run(frames)
    assert np.abs(out["logits"] - reference["logits"]).max() < 1e-3
    assert engine.meta.extra["test_metrics"]["split"] == "test" and engine.meta.extra["mask_class"] == "nerve"


def test_pipeline_runs_one_forward_per_frame(gate_seg_run, tmp_path):
    """Every frame called nerve (so a two-engine pair would run twice per frame): one
    forward each, and every frame is segmented."""
    video = write_video(tmp_path / "in.mp4", frames=12)
    engine = load_engine(gate_seg_run / "best.pt", task="gate_segment")
    nerve = np.eye(3, dtype=np.float32)[engine.classes.index("nerve")] * 10
    calls, run = [], engine.run

    def always_nerve(batch, **kw):
        calls.append(len(batch))
        return {**run(batch, **kw), "logits": np.tile(nerve, (len(batch), 1))}

    engine.run, engine.warmup = always_nerve, lambda runs=2: None
    config = cfg.from_dict({"source": {"spec": str(video)}, "record": {"path": str(tmp_path / "out.avi")}})
    pipeline = NervePipeline(config, engines=Engines(engine, engine))
    checks = len(calls)  # the start-up test run of the engine
    summary = pipeline.run()
    assert summary["frames"] == 12 == count_frames(tmp_path / "out.avi")
    assert summary["segmented_frames"] == 12
    assert len(calls) - checks == 12, "one forward per frame"
    rows = list(csv.DictReader((tmp_path / "out.csv").open()))
    assert all(r["segmented"] == "True" for r in rows)


def test_replay_with_a_gate_segment_engine_ignores_the_segment_setting(gate_seg_run, tmp_path):
    onnx_path = tmp_path / "gate_seg.onnx"
    assert main(["export", str(gate_seg_run / "best.pt"), "--out", str(onnx_path)]) == 0
    video = write_video(tmp_path / "in.mp4", frames=8)
    out = tmp_path / "replay.avi"
    assert main(["replay", str(video), "--out", str(out), "--gate", str(onnx_path), "--seg", "missing.onnx",
                 "--no-progress"]) == 0
    summary = json.loads(out.with_suffix(".json").read_text())
    engines = summary["nerveseg"]["engines"]
    assert engines["gate"]["sha256"] == engines["segment"]["sha256"] and engines["gate"]["task"] == "gate_segment"
    assert count_frames(out) == 8


def test_bench_runs_the_single_engine_beside_the_two(gate_seg_run, training_gate_run, training_seg_run, tmp_path):
    """``--modes single``: the one-engine design, bare and as a replay, in the same rounds
    as the two engines, with the ratio between them; a two-engine file given as the
    single engine is refused with what was expected."""
    for run, name in ((training_gate_run, "gate"), (training_seg_run, "unet"), (gate_seg_run, "gate_seg")):
        assert main(["export", str(run / "best.pt"), "--out", str(tmp_path / f"{name}.onnx")]) == 0
    video = write_video(tmp_path / "in.mp4", frames=30)
    common = ["bench", str(video), "--gate", str(tmp_path / "gate.onnx"), "--seg", str(tmp_path / "unet.onnx"),
              "--frames", "30", "--modes", "bare,replay,single"]
    assert main([*common, "--single", str(tmp_path / "gate_seg.onnx"), "--out", str(tmp_path / "b")]) == 0
    results = json.loads((tmp_path / "b" / "bench.json").read_text())
    for key in ("bare", "replay", "single_bare", "single_replay"):
        assert results[key]["fps"] > 0 and results[key]["frames"] == 30, key
    assert results["single_replay"]["recorded_frames"] == 30 and (tmp_path / "b" / "single.avi").is_file()
    assert results["single_engine"]["task"] == "gate_segment"
    assert results["ratios"]["single/two replay"] > 0 and results["ratios"]["single/two bare"] > 0

    assert main([*common, "--single", str(tmp_path / "gate.onnx"), "--out", str(tmp_path / "c")]) == 0
    results = json.loads((tmp_path / "c" / "bench.json").read_text())
    assert "expected 'gate_segment'" in results["single_replay"]["skipped"]
    assert "single/two replay" not in results["ratios"]


def test_recipe_sets_the_single_engine_beside_the_two(gate_seg_run):
    from nerveseg.training.recipe import gate_seg_lines

    report = json.loads((gate_seg_run / "eval_test" / "metrics.json").read_text())
    two_gate = {"accuracy": 0.989, "mcc": 0.984, "per_class": {"nerve": {"sensitivity": 1.0}}}
    two_seg = {"iou": {"mean": 0.816}, "iou_nerve": {"mean": 0.884}, "dice": {"mean": 0.862}}
    lines = gate_seg_lines(report, two_gate, two_seg)
    assert f"| gate accuracy | {report['summary']['accuracy']:.3f} | 0.989 |" in lines
    assert f"| mean IoU | {report['summary']['seg_iou_mean']:.3f} | 0.816 |" in lines
    assert any(line.startswith("| nerve sensitivity |") and line.endswith("| 1.000 |") for line in lines)


def test_export_calibrates_the_single_engine_on_the_gate_s_own_validation_split(
        training_gate_data, training_seg_run, training_seg_data, tmp_path):
    """``export --calibrate`` of a single engine: its run folder holds the U-Net's split lists
    (mask items, no class), so the temperature and thresholds are fitted on the gate's data and
    validation split named in the checkpoint, never on the masks."""
    items = sorted(p.relative_to(training_gate_data).as_posix() for p in training_gate_data.glob("*/*.png"))
    splits = tmp_path / "gate_splits"
    splits.mkdir()
    parts = {"val": items[0::3], "test": items[1::6], "train": [i for k, i in enumerate(items) if k % 3 and k % 6 != 1]}
    for name, listed in parts.items():
        (splits / f"{name}.txt").write_text("\n".join(listed) + "\n")
    run = tmp_path / "gs"
    assert main(["train", "gate-seg", "--gate-data", str(training_gate_data), "--seg-data", str(training_seg_data),
                 "--gate-splits", str(splits), "--seg-splits", str(training_seg_run / "splits"),
                 "--init-seg", str(training_seg_run / "best.pt"), "--out", str(run), "--head-epochs", "1",
                 "--epochs", "0", "--threads", "1"]) == 0
    onnx_path = tmp_path / "gs.onnx"
    assert main(["export", str(run / "best.pt"), "--out", str(onnx_path), "--calibrate"]) == 0
    calibration = load_engine(onnx_path, task="gate_segment").meta.extra["calibration"]
    assert calibration["temperature"] > 0 and f"({len(parts['val'])} images" in calibration["fitted_on"]
