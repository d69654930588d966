"""Region-conditioned segmentation: the synthetic set, instances, evaluation, backends,
and a tiny train → export → evaluate run through the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import _training_cli

from nerveseg.engines.base import Engine
from nerveseg.engines.loader import load_engine
from nerveseg.engines.metadata import EngineError, EngineMeta, Provenance
from nerveseg.engines.errors import UserError
from nerveseg.training import metrics
from nerveseg.training.region import data as region_data
from nerveseg.training.region.evaluate import evaluate_regions
from nerveseg.training.region.instances import instance_summary, label_instances, match_instances
from nerveseg.training.synth import regions as synth


@pytest.fixture(scope="module")
def region_set(tmp_path_factory):
    """20 images at 64 px through the CLI (2-3 regions each)."""
    out = tmp_path_factory.mktemp("regions")
    _training_cli("synth", "regions", str(out), "--count", "20", "--size", "64", "--seed", "3", "--no-progress")
    return out


@pytest.fixture(scope="module")
def region_run(region_set, tmp_path_factory):
    out = tmp_path_factory.mktemp("region_run")
    _training_cli("train", "region", str(region_set), "--out", str(out), "--epochs", "2", "--size", "32",
                  "--width", "0.25", "--batch-size", "8", "--threads", "1", "--lr", "3e-3", "--class-name", "nerve")
    return out


def test_generator_is_seeded():
    a, b = synth.render_item(5, 2, 48), synth.render_item(5, 2, 48)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    assert not np.array_equal(a[0], synth.render_item(6, 2, 48)[0])


def test_nested_regions_and_their_answers():
    """inner ⊂ outer (2 px inside its edge), single apart; an answer is the structures
    inside the region, so outer's answer holds inner's and the answers differ."""
    differ = 0
    for index in range(12):
        _, labels, regions = synth.render_item(0, index, 64)
        by_role = dict(regions)
        outer, inner = by_role["outer"], by_role["inner"]
        assert inner.any() and not (inner & ~synth._shrink(outer, 2)).any()
        if "single" in by_role:
            assert not (by_role["single"] & synth._grow(outer, 2)).any()
        answers = {}
        for role, region in regions:
            mask, ids, n = synth.region_answer(labels, region)
            assert np.array_equal(mask > 0, (labels > 0) & region)
            assert sorted(np.unique(ids[ids > 0])) == list(range(1, n + 1))
            answers[role] = mask
        assert not (answers["inner"] & ~answers["outer"]).any()
        differ += not np.array_equal(answers["inner"], answers["outer"])
    assert differ >= 10  # a structure in outer-minus-inner almost always fits


def test_written_set_reads_back(region_set):
    index = region_data.read_index(region_set)
    assert index["classes"] == ["background", "structure"] and len(region_data.list_images(index)) == 20
    roles = [s["role"] for s in index["samples"]]
    assert roles.count("outer") == roles.count("inner") == 20 and "single" in roles
    outer = next(s for s in index["samples"] if s["role"] == "outer")
    image, region, mask, ids = region_data.load_sample(region_set, outer, (64, 64), instances=True)
    assert image.shape == (64, 64, 3) and region.dtype == np.uint8 and not (mask & ~region).any()
    assert ids.max() == outer["count"] and outer["contains"] == [outer["id"][:-1] + "1"]


def test_synth_regions_cli_errors_are_one_line(tmp_path, capsys):
    from nerveseg.commands.cli import main

    assert main(["synth", "regions", str(tmp_path / "x"), "--size", "16"]) == 2
    (tmp_path / "empty").mkdir()
    assert main(["train", "region", str(tmp_path / "empty"), "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and "--size" in err[0] and "regions.json: not found" in err[1]


def test_instances_hand_computed():
    mask = np.zeros((10, 10), bool)
    mask[1:4, 1:4] = True   # 9 px
    mask[6:9, 5:9] = True   # 12 px
    mask[0, 9] = True       # a 1 px speck: dropped
    pred = label_instances(mask)
    assert pred.max() == 2
    true = np.zeros((10, 10), np.int32)
    true[1:4, 1:3] = 1      # IoU with the first = 6/9 > 0.5: a match
    true[6:7, 5:6] = 2      # IoU with the second = 1/12: no match
    m = match_instances(pred, true)
    assert (m["tp"], m["fp"], m["fn"]) == (1, 1, 1) and m["ious"] == pytest.approx([6 / 9])
    s = instance_summary([m, {"tp": 1, "fp": 0, "fn": 0, "ious": [1.0]}])
    assert s["precision"] == pytest.approx(2 / 3) and s["recall"] == pytest.approx(2 / 3)
    assert s["pq"] == pytest.approx((6 / 9 + 1) / (2 + 0.5 + 0.5))


class _Rule(Engine):
    """A stand-in engine: ``rule(image, region) -> bool mask`` as ±10 logits."""

    def __init__(self, rule, size):
        meta = EngineMeta(model="rule", task="region_segment", classes=synth.CLASSES, input_size=size)
        self.provenance = Provenance("rule", "0" * 64, "test", meta)
        self.rule = rule

    def run(self, batch, *, region=None):
        return {"mask_logits": np.where(self.rule(batch, region), 10.0, -10.0)[:, None, :, :, 0]}


def test_evaluation_tells_a_region_blind_model_from_a_conditioned_one(region_set):
    samples = region_data.read_index(region_set)["samples"]
    bright = lambda batch: batch[..., :1].astype(int) > 150  # every structure, region or not
    blind = evaluate_regions(_Rule(lambda b, r: bright(b), (64, 64)), region_set, samples, batch_size=7)
    aware = evaluate_regions(_Rule(lambda b, r: bright(b) & (r > 0), (64, 64)), region_set, samples)
    assert set(aware["groups"]) == {"all", "nested", "non_nested", "outer", "inner", "single"}
    assert aware["groups"]["all"]["n"] == len(samples) == aware["n"]
    assert aware["leak"]["fraction"] == 0 and blind["leak"]["fraction"] > 0.5
    assert aware["groups"]["all"]["iou"]["mean"] > 0.9 > 0.5 > blind["groups"]["all"]["iou"]["mean"]
    assert aware["instances"]["f1"] > 0.9 > blind["instances"]["f1"]
    nested = [iou for iou, role in zip(aware["per_region"]["iou"], aware["per_region"]["roles"])
              if role in ("outer", "inner")]
    assert aware["groups"]["nested"]["iou"] == metrics.bounded_mean_ci(nested)


def test_train_run_folder_and_test_report(region_run):
    for name in ("best.pt", "last.pt", "config.yaml", "curves.png", "history.json", "splits/test.txt",
                 "test/metrics.json", "test/report.txt"):
        assert (region_run / name).is_file(), name
    assert (region_run / "splits" / "test.txt").read_text().startswith("images/")
    report = json.loads((region_run / "test" / "metrics.json").read_text())
    assert report["task"] == "region_segment" and report["engine"]["backend"] == "torch"
    assert {"all", "nested"} <= set(report["groups"]) and "f1" in report["instances"]
    engine = load_engine(region_run / "best.pt", task="region_segment")
    assert engine.meta.classes == ("background", "nerve") and engine.meta.input_size == (32, 32)


def test_export_parity_and_onnx_eval(region_run, region_set, tmp_path):
    from nerveseg.commands.cli import main

    onnx_path = tmp_path / "region.onnx"
    assert main(["export", str(region_run / "best.pt"), "--out", str(onnx_path)]) == 0
    ort_engine = load_engine(onnx_path, backend="onnxruntime", task="region_segment")
    torch_engine = load_engine(region_run / "best.pt", task="region_segment")
    assert ort_engine.meta.extra["parity"]["frames"] > 4  # random frames and real test samples
    frames = np.random.default_rng(0).integers(0, 256, (3, 32, 32, 3), dtype=np.uint8)
    region = np.zeros((3, 32, 32), np.uint8)
    region[:, 8:24, 4:20] = 1
    for given in (region, None):
        a, b = ort_engine.run(frames, region=given), torch_engine.run(frames, region=given)
        assert np.abs(a["mask_logits"] - b["mask_logits"]).max() < 1e-3
    whole = ort_engine.run(frames, region=np.ones((3, 32, 32, 1), np.uint8))["mask_logits"]
    assert np.array_equal(ort_engine.run(frames)["mask_logits"], whole)  # None = the whole field
    assert not np.allclose(ort_engine.run(frames, region=region)["mask_logits"], whole)
    out = tmp_path / "eval"
    assert main(["train", "region", str(region_set), "--out", str(out), "--eval", str(onnx_path),
                 "--splits", str(region_run / "splits")]) == 0
    assert json.loads((out / "metrics.json").read_text())["engine"]["backend"] == "onnxruntime"


def test_region_input_is_checked(region_run, tmp_path, tiny_engines):
    """A segment engine refuses a region; a region engine without the input is refused at load."""
    import onnx

    _, seg = tiny_engines
    with load_engine(seg, backend="onnxruntime") as engine:
        with pytest.raises(ValueError, match="takes no region"):
            engine.run(np.zeros((1, *engine.input_size, 3), np.uint8), region=np.ones((1, 1, 1, 1)))
        meta = dict(json.loads(engine.meta.to_json()), task="region_segment")
    proto = onnx.load(str(seg))
    onnx.helper.set_model_props(proto, {"nerveseg": json.dumps(meta)})
    onnx.save(proto, str(tmp_path / "fake.onnx"))
    with pytest.raises(EngineError, match="fake.onnx: a 'region_segment' engine needs input 'region'"):
        load_engine(tmp_path / "fake.onnx", backend="onnxruntime")
    with load_engine(region_run / "best.pt", task="region_segment") as engine:
        with pytest.raises(ValueError, match="does not fit the batch"):
            engine.run(np.zeros((2, 32, 32, 3), np.uint8), region=np.ones((2, 16, 16), np.uint8))


def test_nerveseg_eval_region_scores_and_compares_region_engines(region_run, region_set, tmp_path, capsys):
    """``nerveseg eval region``: the same evaluation as ``train region --eval``, from the one
    eval command, and two formats of the model side by side on the same regions."""
    from nerveseg.commands.cli import main

    onnx_path = tmp_path / "region.onnx"
    assert main(["export", str(region_run / "best.pt"), "--out", str(onnx_path)]) == 0
    single = tmp_path / "one"
    assert main(["eval", "region", str(onnx_path), "--data", str(region_set), "--splits",
                 str(region_run / "splits"), "--out", str(single)]) == 0
    report = json.loads((single / "metrics.json").read_text())
    assert report["task"] == "region_segment" and report["n"] > 0 and (single / "iou_hist.png").is_file()
    reference = tmp_path / "reference"
    assert main(["train", "region", str(region_set), "--out", str(reference), "--eval", str(onnx_path),
                 "--splits", str(region_run / "splits")]) == 0
    assert json.loads((reference / "metrics.json").read_text())["summary"] == report["summary"]
    both = tmp_path / "both"
    capsys.readouterr()
    assert main(["eval", "region", str(region_run / "best.pt"), str(onnx_path), "--data", str(region_set),
                 "--out", str(both), "--splits", str(region_run / "splits")]) == 0
    table = capsys.readouterr().out
    assert "region_segment models" in table and "IoU (nested)" in table and "leak" in table
    record = json.loads((both / "comparison.json").read_text())
    ious = [row["iou_mean"] for row in record["models"]]
    assert {row["backend"] for row in record["models"]} == {"torch", "onnxruntime"}
    assert abs(ious[0] - ious[1]) < 0.01, "the checkpoint and its export score alike"


def test_a_region_engine_named_nerve_runs_in_replay(region_run, tmp_path, tiny_engines):
    """docs/MODELS.md: `train region --class-name nerve`, export, then `replay --seg region.onnx`."""
    from video_fixtures import write_video

    from nerveseg.commands.cli import main

    onnx_path = tmp_path / "region.onnx"
    assert main(["export", str(region_run / "best.pt"), "--out", str(onnx_path)]) == 0
    with load_engine(onnx_path, backend="onnxruntime") as engine:
        assert engine.classes == ("background", "nerve") and engine.meta.task == "region_segment"
    video = write_video(tmp_path / "in.mp4", frames=6, fps=6)
    assert main(["replay", str(video), "--gate", str(tiny_engines[0]), "--seg", str(onnx_path),
                 "--out", str(tmp_path / "out.avi"), "--no-progress"]) == 0
    assert json.loads((tmp_path / "out.json").read_text())["recorded_frames"] == 6


def test_class_name_renames_only_a_single_foreground_class():
    from nerveseg.training.region.train import engine_classes

    assert engine_classes({"classes": ["background", "structure"]}, "nerve") == ["background", "nerve"]
    assert engine_classes({"classes": ["background", "structure"]}, None) == ["background", "structure"]
    with pytest.raises(UserError, match="renames the one foreground class"):
        engine_classes({"classes": ["background", "a", "b"]}, "nerve")
