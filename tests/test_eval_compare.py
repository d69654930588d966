"""nerveseg eval against hand-computed values: several models side by side, segmentation
statistics, the split every model is scored on, and the instance hook."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from engine_fixtures import _image_input, make_gate, make_segmenter, save_onnx
from onnx import TensorProto, helper, numpy_helper

from nerveseg.engines.metadata import EngineMeta
from nerveseg.commands.cli import main
from nerveseg.training import compare, evaluation

CLASSES = ("nerve", "opening_wound", "tendon")


def _constant_gate(path: Path, size: int = 32) -> Path:
    """A gate that always says tendon: logits = 0·mean + [0, 0, 1]."""
    w = numpy_helper.from_array(np.zeros((3, 3), np.float32), "w")
    b = numpy_helper.from_array(np.array([0.0, 0.0, 1.0], np.float32), "b")
    nodes = [helper.make_node("Cast", ["image"], ["f"], to=TensorProto.FLOAT),
             helper.make_node("ReduceMean", ["f"], ["m"], axes=[1, 2], keepdims=0),
             helper.make_node("MatMul", ["m", "w"], ["mw"]), helper.make_node("Add", ["mw", "b"], ["logits"])]
    out = helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 3])
    graph = helper.make_graph(nodes, "always_tendon", [_image_input(size)], [out], [w, b])
    meta = EngineMeta(model="always_tendon", task="classify", classes=CLASSES, input_size=(size, size))
    return save_onnx(graph, meta, path)


@pytest.fixture
def gate_set(tmp_path) -> tuple[Path, Path]:
    """Two bright nerve, two dark wound and two bright tendon images; test.txt lists all."""
    data = tmp_path / "cls"
    items = []
    for name, value in (("nerve", 200), ("opening_wound", 50), ("tendon", 200)):
        (data / name).mkdir(parents=True)
        for k in range(2):
            cv2.imwrite(str(data / name / f"{k}.png"), np.full((32, 32, 3), value, np.uint8))
            items.append(f"{name}/{k}.png")
    splits = tmp_path / "splits"
    splits.mkdir()
    (splits / "test.txt").write_text("\n".join(items) + "\n")
    return data, splits


def test_two_gates_side_by_side(gate_set, tmp_path, capsys):
    data, splits = gate_set
    brightness = make_gate(tmp_path / "bright.onnx")  # bright → nerve, dark → wound
    tendon = _constant_gate(tmp_path / "tendon.onnx")
    out = tmp_path / "eval"
    assert main(["eval", "gate", str(brightness), str(tendon), "--data", str(data), "--splits", str(splits),
                 "--out", str(out)]) == 0
    record = json.loads((out / "comparison.json").read_text())
    a, b = record["models"]
    assert record["n"] == 6 and [a["name"], b["name"]] == ["bright", "tendon"]
    # brightness gate: confusion [[2,0,0],[0,2,0],[2,0,0]]; F1 2/3, 1, 0; Gorodkin 12/sqrt(16*24)
    assert a["accuracy"] == pytest.approx(4 / 6) and a["macro_f1"] == pytest.approx((2 / 3 + 1 + 0) / 3)
    assert a["mcc"] == pytest.approx(12 / np.sqrt(384))
    assert a["sensitivity"] == {"nerve": 1.0, "opening_wound": 1.0, "tendon": 0.0}
    # always tendon: accuracy 2/6, F1 0, 0, 4/8, MCC 0
    assert b["accuracy"] == pytest.approx(2 / 6) and b["macro_f1"] == pytest.approx(0.5 / 3) and b["mcc"] == 0
    table = (out / "comparison.txt").read_text()
    assert "bright" in table and "0.667" in table and "0.333" in table and table in capsys.readouterr().out
    per_model = json.loads((out / "tendon" / "metrics.json").read_text())
    assert per_model["confusion_matrix"] == [[0, 0, 2], [0, 0, 2], [0, 0, 2]]
    assert (out / "bright" / "confusion.png").is_file() and (out / "bright" / "report.txt").is_file()


def test_segmentation_mean_sem_ci_by_hand(tmp_path):
    """Image 1: predicted rows 0-7 = truth (IoU 1); image 2: truth rows 0-15 (IoU 0.5, Dice 2/3)."""
    data = tmp_path / "pairs"
    for k, rows in enumerate((8, 16)):
        image = np.full((32, 32, 3), 90, np.uint8)
        image[:8] = 255  # the tiny segmenter: nerve where the channel mean > 200
        mask = np.zeros((32, 32), np.uint8)
        mask[:rows] = 1
        (data / "images").mkdir(parents=True, exist_ok=True)
        (data / "masks").mkdir(exist_ok=True)
        cv2.imwrite(str(data / "images" / f"{k}.png"), image)
        cv2.imwrite(str(data / "masks" / f"{k}.png"), mask)
    from nerveseg.engines.loader import load_engine

    engine = load_engine(make_segmenter(tmp_path / "seg.onnx"), backend="onnxruntime")
    report = evaluation.run_eval(engine, data, ["images/0.png", "images/1.png"], tmp_path / "out")
    # Bootstrap of two values {1, 0.5}: resampled means 0.5, 0.75, 1 with chances 1/4, 1/2,
    # 1/4, so the 2.5 % and 97.5 % percentiles are the extremes (a t-interval gave
    # 0.75 ± 12.7 · 0.25, far outside [0, 1]).
    assert report["iou"]["mean"] == pytest.approx(0.75) and report["iou"]["sem"] == pytest.approx(0.25)
    assert (report["iou"]["ci_low"], report["iou"]["ci_high"]) == (0.5, 1.0)
    assert report["dice"]["mean"] == pytest.approx((1 + 2 / 3) / 2)
    assert report["pixel_iou"] == pytest.approx(512 / 768)
    assert report["summary"]["iou_ci95"] == [0.5, 1.0]
    text = (tmp_path / "out" / "report.txt").read_text()
    assert "[0.500, 1.000]" in text and "bootstrap percentile interval (2000 resamples" in text


def test_models_with_different_splits_are_refused(gate_set, tmp_path, capsys):
    data, _ = gate_set
    runs = []
    for name, items in (("a", ["nerve/0.png"]), ("b", ["nerve/1.png"])):
        (tmp_path / name / "splits").mkdir(parents=True)
        (tmp_path / name / "splits" / "test.txt").write_text("\n".join(items) + "\n")
        runs.append(tmp_path / name / "best.pt")
        runs[-1].write_bytes(b"")
    assert main(["eval", "gate", *map(str, runs), "--data", str(data), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "different test splits" in err[0] and "--splits DIR" in err[0]


def test_instance_rows_and_a_missing_instance_family(monkeypatch):
    report = {"n": 3, "segm": {"map": 0.5, "map_50": 0.75}, "bbox": {"map": 0.25, "map_50": 1.0}}
    assert evaluation.summary(report, "instance") == {"n": 3, "mask_map": 0.5, "mask_map_50": 0.75,
                                                      "box_map": 0.25, "box_map_50": 1.0}
    engine = {"path": "m.pt", "model": "maskrcnn", "backend": "torch", "sha256": "0" * 64}
    record = compare.comparison([{"task": "instance", "split": "test", "data": "d", "n": 3, "engine": engine,
                                  "summary": evaluation.summary(report, "instance"), "ms_per_image": 9.5}], ["m"])
    assert "mask mAP" in compare.format_table(record) and "0.750" in compare.format_table(record)
    monkeypatch.setattr(evaluation, "INSTANCE_HOOK", ("nerveseg.training.no_such_family", "f", "g"))
    with pytest.raises(Exception, match="instance evaluation needs nerveseg.training.no_such_family"):
        evaluation.evaluate_instance(None, ".", [])


def test_unique_names():
    paths = [Path("runs/gate/best.pt"), Path("runs/seg/best.pt"), Path("m/unet.onnx")]
    assert compare.unique_names(paths) == ["gate_best", "seg_best", "unet"]


def test_split_all_scores_every_image_of_a_held_out_set(gate_set, tmp_path, capsys):
    """``--split all``: a held-out set of its own (made apart from any training) is scored
    whole, without split lists; given lists as well, it refuses in one line."""
    data, splits = gate_set
    gate = make_gate(tmp_path / "bright.onnx")
    out = tmp_path / "all"
    assert main(["eval", "gate", str(gate), "--data", str(data), "--split", "all", "--out", str(out)]) == 0
    report = json.loads((out / "metrics.json").read_text())
    assert report["n"] == 6 and report["split"] == "all" and report["accuracy"] == pytest.approx(4 / 6)
    assert report["confusion_matrix"] == [[2, 0, 0], [0, 2, 0], [2, 0, 0]]
    capsys.readouterr()
    assert main(["eval", "gate", str(gate), "--data", str(data), "--split", "all", "--splits", str(splits),
                 "--out", str(tmp_path / "refused")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "takes no --splits" in err[0]
