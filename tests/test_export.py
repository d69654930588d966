"""Export chain, torch backend, engine metadata and evaluation through load_engine."""

from __future__ import annotations

import json

import numpy as np
import pytest

from nerveseg.engines.loader import load_engine
from nerveseg.engines.metadata import EngineError
from nerveseg.training import export as export_module
from nerveseg.training.exporters import export
from nerveseg.training.data import read_rgb
from nerveseg.training.metrics import iou_dice
from nerveseg.training.splits import read_split


@pytest.fixture(scope="module")
def gate_onnx(training_gate_run, tmp_path_factory):
    out = tmp_path_factory.mktemp("export") / "gate.onnx"
    export(training_gate_run / "best.pt", out)
    return out


@pytest.fixture(scope="module")
def seg_onnx(training_seg_run, tmp_path_factory):
    out = tmp_path_factory.mktemp("export") / "unet.onnx"
    export(training_seg_run / "best.pt", out)
    return out


def _test_frames(run, data, size) -> np.ndarray:
    items = read_split(run / "splits", "test", data)
    return np.stack([read_rgb(data / item, size) for item in items])


def test_exported_metadata_is_read_by_load_engine(gate_onnx, training_gate_run):
    engine = load_engine(gate_onnx, backend="onnxruntime", task="classify")
    meta = engine.meta
    assert meta.model == "mobilenet_v2" and meta.classes == ("nerve", "opening_wound", "tendon")
    assert meta.input_size == (32, 32) and meta.mean == (0.485, 0.456, 0.406)
    assert len(meta.recipe_hash) == 64 and meta.revision and meta.created
    assert meta.extra["exporter"] == "torch.onnx legacy" and meta.extra["parity"]["frames"] >= 4
    out = engine.run(np.zeros((3, 32, 32, 3), np.uint8))  # dynamic batch
    assert out["logits"].shape == (3, 3) and out["logits"].dtype == np.float32


def test_torch_backend_through_load_engine(training_gate_run):
    engine = load_engine(training_gate_run / "best.pt", task="classify")
    assert engine.provenance.backend == "torch" and engine.provenance.device == "cpu"
    assert len(engine.provenance.sha256) == 64
    assert set(engine.run(np.zeros((2, 32, 32, 3), np.uint8))) == {"logits"}


def test_gate_parity_onnx_vs_torch_on_real_frames(gate_onnx, training_gate_run, training_gate_data):
    frames = _test_frames(training_gate_run, training_gate_data, (32, 32))
    torch_out = load_engine(training_gate_run / "best.pt")
    onnx_out = load_engine(gate_onnx, backend="onnxruntime")
    a, b = torch_out.run(frames)["logits"], onnx_out.run(frames)["logits"]
    assert np.abs(a - b).max() <= 1e-3 + 1e-3 * np.abs(a).max()


def test_seg_parity_and_mask_iou(seg_onnx, training_seg_run, training_seg_data):
    frames = _test_frames(training_seg_run, training_seg_data, (32, 32))
    a = load_engine(training_seg_run / "best.pt", task="segment").run(frames)["mask_logits"]
    b = load_engine(seg_onnx, backend="onnxruntime", task="segment").run(frames)["mask_logits"]
    assert a.shape == b.shape == (len(frames), 1, 32, 32)
    assert np.abs(a - b).max() <= 1e-3 + 1e-3 * np.abs(a).max()
    assert iou_dice(a[:, 0] > 0, b[:, 0] > 0)[0].min() >= 0.99
    meta = load_engine(seg_onnx, backend="onnxruntime").meta
    assert meta.classes == ("background", "nerve") and meta.extra["threshold"] == 0.5


def test_wrong_task_and_missing_metadata_are_refused(gate_onnx, tmp_path):
    import onnx

    with pytest.raises(EngineError) as wrong:
        load_engine(gate_onnx, backend="onnxruntime", task="segment")
    assert str(gate_onnx) in str(wrong.value) and "\n" not in str(wrong.value)
    bare = onnx.load(str(gate_onnx))
    del bare.metadata_props[:]
    onnx.save(bare, str(tmp_path / "bare.onnx"))
    with pytest.raises(EngineError, match="bare.onnx.*no nerveseg metadata") as missing:
        load_engine(tmp_path / "bare.onnx", backend="onnxruntime")
    assert "\n" not in str(missing.value)
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(EngineError, match="junk.pt: not a readable torch checkpoint"):
        load_engine(tmp_path / "junk.pt")


def test_failed_export_step_is_named(training_gate_run, tmp_path, monkeypatch):
    monkeypatch.setattr(export_module, "ATOL", -1.0)
    with pytest.raises(export_module.ExportError, match="parity"):
        export(training_gate_run / "best.pt", tmp_path / "x.onnx")
    monkeypatch.undo()

    def broken(proto):
        raise ValueError("bad graph")

    monkeypatch.setattr(export_module, "check_onnx", broken)
    with pytest.raises(export_module.ExportError, match="step 'onnx.checker' failed: bad graph"):
        export(training_gate_run / "best.pt", tmp_path / "y.onnx")
    assert not (tmp_path / "x.onnx").exists() and not (tmp_path / "y.onnx").exists()


def test_eval_gate_onnx_writes_reports(gate_onnx, training_gate_run, training_gate_data, tmp_path):
    from nerveseg.commands.cli import main

    out = tmp_path / "eval"
    assert main(["eval", "gate", str(gate_onnx), "--data", str(training_gate_data),
                 "--splits", str(training_gate_run / "splits"), "--out", str(out)]) == 0
    report = json.loads((out / "metrics.json").read_text())
    assert report["n"] == 6 and report["engine"]["backend"] == "onnxruntime"
    assert set(report["per_class"]) == {"nerve", "opening_wound", "tendon"}
    assert "accuracy" in (out / "report.txt").read_text()
    assert (out / "confusion.png").stat().st_size > 1000 and (out / "roc.png").stat().st_size > 1000


def test_eval_seg_checkpoint_and_embed_metrics(training_seg_run, training_seg_data, tmp_path):
    from nerveseg.commands.cli import main

    out = tmp_path / "eval"
    assert main(["eval", "seg", str(training_seg_run / "best.pt"), "--data", str(training_seg_data),
                 "--out", str(out)]) == 0  # splits/ beside the checkpoint
    report = json.loads((out / "metrics.json").read_text())
    assert report["engine"]["backend"] == "torch" and report["n"] == 4  # 2 of 10 per dataset
    assert report["iou"]["ci_low"] <= report["iou"]["mean"] <= report["iou"]["ci_high"]
    assert (out / "iou_hist.png").is_file() and "IoU" in (out / "report.txt").read_text()
    meta = export(training_seg_run / "best.pt", tmp_path / "m.onnx",
                                metrics=out / "metrics.json")
    assert meta.extra["test_metrics"]["iou_mean"] == pytest.approx(report["iou"]["mean"])


def test_export_at_another_size_with_a_weights_only_reference(training_seg_run, tmp_path):
    """A fully convolutional model exports at a new input size; the reference .pt holds
    no optimizer state, carries the ONNX file's metadata and agrees with it."""
    import torch

    onnx_path, pt_path = tmp_path / "unet48.onnx", tmp_path / "unet48.pt"
    export(training_seg_run / "best.pt", onnx_path, input_size=(48, 48), reference_pt=pt_path)
    ort_engine = load_engine(onnx_path, backend="onnxruntime", task="segment")
    torch_engine = load_engine(pt_path, backend="torch", task="segment")
    assert ort_engine.input_size == torch_engine.input_size == (48, 48)
    assert torch_engine.meta.recipe_hash == ort_engine.meta.recipe_hash
    assert "optimizer" not in torch.load(pt_path, weights_only=True)
    frames = np.random.default_rng(3).integers(0, 256, (2, 48, 48, 3), dtype=np.uint8)
    a, b = ort_engine.run(frames)["mask_logits"], torch_engine.run(frames)["mask_logits"]
    assert a.shape == (2, 1, 48, 48) and np.abs(a - b).max() < 1e-3
