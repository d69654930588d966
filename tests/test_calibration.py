"""Calibrated confidence and the unfamiliar view: the fit, the metadata, every backend's
logits, the pipeline (CSV, summary, overlay) and the training-side commands, on real
ONNX Runtime sessions, real PyAV video and real threads."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import av
import numpy as np
import onnx
import pytest
from engine_fixtures import make_gate, make_segmenter

from nerveseg.commands.cli import main
from nerveseg.engines.calibration import (Calibration, energy, fit, fit_temperature, nll, reliability, softmax,
                                          with_calibration)
from nerveseg.engines.familiarity import FEATURES, ViewDistance, fit_statistics, view_features
from nerveseg.engines.loader import load_engine
from nerveseg.engines.metadata import META_KEY, EngineError, EngineMeta, file_sha256
from nerveseg.realtime import config as cfg
from nerveseg.realtime.overlay import UNFAMILIAR, text_lines
from nerveseg.realtime.pipeline import NervePipeline
from nerveseg.training.calibrate_cli import write_engine


def sampled(n: int, temperature: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Logits and labels drawn from softmax(logits / temperature): calibrated at that T."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(0, 4, (n, 3))
    p = softmax(logits / temperature)
    labels = np.array([rng.choice(3, p=row) for row in p])
    return logits, labels


def test_fit_recovers_the_temperature_the_labels_were_drawn_at():
    for true_t in (0.5, 2.5):
        logits, labels = sampled(4000, true_t)
        t = fit_temperature(logits, labels)
        assert abs(t - true_t) / true_t < 0.12
        assert nll(logits, labels, t) <= nll(logits, labels, 1.0)
        before = reliability(softmax(logits), labels)["ece"]
        after = reliability(softmax(logits / t), labels)["ece"]
        assert after < before and after < 0.03


def test_energy_is_minus_t_logsumexp():
    logits = np.array([[2.0, -1.0, 0.5]])
    t = 0.7
    expected = -t * math.log(sum(math.exp(v / t) for v in logits[0]))
    assert energy(logits, t)[0] == pytest.approx(expected)
    fitted = fit(*sampled(500, 1.5))
    assert fitted["at_bound"] is False and fitted["energy_threshold"] > np.median(energy(sampled(500, 1.5)[0],
                                                                                        fitted["temperature"]))


def test_view_distance_separates_pictures_unlike_the_training_ones():
    rng = np.random.default_rng(1)

    def tissue():
        base = rng.normal(110, 25, (8, 8))
        import cv2
        grey = cv2.resize(base, (64, 64), interpolation=cv2.INTER_CUBIC) + rng.normal(0, 4, (64, 64))
        return np.repeat(np.clip(grey, 0, 255).astype(np.uint8)[..., None], 3, axis=2)

    train = np.stack([view_features(tissue()) for _ in range(200)])
    held = np.stack([view_features(tissue()) for _ in range(50)])
    stats = fit_statistics(train)
    d = ViewDistance({**stats, "threshold": None})
    threshold = float(np.quantile(d.of_features(held), 0.99))
    assert len(stats["mean"]) == len(FEATURES)
    noise = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    flat = np.full((64, 64, 3), 128, np.uint8)
    board = np.kron((np.indices((8, 8)).sum(0) % 2) * 255, np.ones((8, 8)))[..., None].repeat(3, 2).astype(np.uint8)
    assert min(d(noise), d(flat), d(board)) > 2 * threshold
    assert np.mean(d.of_features(held) <= threshold) >= 0.95


def calibrated_gate(tmp_path: Path, temperature: float, energy_threshold: float | None) -> tuple[Path, Path]:
    """(plain, calibrated) tiny gates: the same graph, the calibration only in the metadata."""
    plain = make_gate(tmp_path / "gate.onnx")
    meta = load_engine(plain, "onnxruntime").meta
    out = tmp_path / "gate_cal.onnx"
    write_engine(plain, with_calibration(meta, {"temperature": temperature, "energy_threshold": energy_threshold}),
                 out)
    return plain, out


def test_onnxruntime_divides_the_gate_logits_by_the_temperature(tmp_path):
    plain, calibrated = calibrated_gate(tmp_path, 2.0, None)
    frames = np.random.default_rng(0).integers(0, 256, (4, 32, 32, 3), dtype=np.uint8)
    raw = load_engine(plain, "onnxruntime").run(frames)["logits"]
    cal = load_engine(calibrated, "onnxruntime")
    assert cal.calibration.temperature == 2.0
    np.testing.assert_allclose(cal.run(frames)["logits"], raw / 2.0, rtol=1e-6)
    assert load_engine(plain, "onnxruntime").calibration == Calibration()  # none: T = 1, as before


def test_torch_backend_applies_the_checkpoint_temperature(tmp_path, training_gate_run):
    import torch

    ckpt = torch.load(training_gate_run / "best.pt", weights_only=False)
    meta = EngineMeta.from_dict(ckpt["meta"]) if isinstance(ckpt["meta"], dict) else ckpt["meta"]
    ckpt["meta"] = json.loads(with_calibration(meta, {"temperature": 4.0, "energy_threshold": None}).to_json())
    (tmp_path / "cal").mkdir()
    torch.save(ckpt, tmp_path / "cal" / "best.pt")
    size = meta.input_size
    frames = np.random.default_rng(0).integers(0, 256, (2, *size, 3), dtype=np.uint8)
    raw = load_engine(training_gate_run / "best.pt", "torch").run(frames)["logits"]
    got = load_engine(tmp_path / "cal" / "best.pt", "torch").run(frames)["logits"]
    np.testing.assert_allclose(got, raw / 4.0, rtol=1e-5, atol=1e-6)


def test_malformed_calibration_is_refused_at_load(tmp_path):
    plain = make_gate(tmp_path / "gate.onnx")
    model = onnx.load(str(plain))
    meta = json.loads(next(p.value for p in model.metadata_props if p.key == META_KEY))
    meta["extra"] = {"calibration": {"temperature": -1}}
    onnx.helper.set_model_props(model, {META_KEY: json.dumps(meta)})
    onnx.save(model, str(tmp_path / "bad.onnx"))
    with pytest.raises(EngineError, match=r"bad.onnx: metadata 'calibration' has temperature -1.0"):
        load_engine(tmp_path / "bad.onnx", "onnxruntime")


def write_grey_video(path: Path, levels: list[int]) -> Path:
    """Side-by-side 240x640 frames, each flat at its level with a thin glare edge."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("ffv1", rate=24)
        stream.width, stream.height, stream.pix_fmt = 640, 240, "yuv444p"
        for level in levels:
            image = np.full((240, 640, 3), level, np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def test_an_unfamiliar_view_shows_no_label_and_no_mask(tmp_path):
    """The tiny gate's logits are 0.1·(mean − 128) apart: a mid-grey frame (128) is the one
    it cannot tell apart (energy −0.69); bright (230) and dark (40) ones are clear
    (energy ≈ −10, −9). With the threshold at −1.5 only the mid-grey frames are unfamiliar."""
    _, gate = calibrated_gate(tmp_path, 1.0, -1.5)
    seg = make_segmenter(tmp_path / "seg.onnx")
    levels = [230, 128, 40, 230, 128, 40, 230, 128]
    video = write_grey_video(tmp_path / "grey.avi", levels)
    config = cfg.from_dict({"source": {"spec": str(video)}, "gate": {"engine": str(gate)},
                            "segment": {"engine": str(seg)}, "log": {"csv": str(tmp_path / "log.csv"),
                                                                     "summary": str(tmp_path / "log.json")}})
    pipeline = NervePipeline(config)
    shown = {}
    pipeline.subscribe(lambda r: shown.setdefault(r.index, r))
    summary = pipeline.run()
    rows = list(csv.DictReader((tmp_path / "log.csv").open()))
    unfamiliar = [r["unfamiliar"] == "True" for r in rows]
    assert unfamiliar == [level == 128 for level in levels]
    assert all(r["segmented"] == "False" for r, u in zip(rows, unfamiliar) if u)
    assert any(r["segmented"] == "True" for r in rows)  # the bright frames are nerve and segmented
    assert float(rows[1]["energy"]) == pytest.approx(-math.log(2 + math.exp(-5)), abs=0.02)
    assert summary["unfamiliar_frames"] == 3 and summary["unfamiliar_fraction"] == pytest.approx(3 / 8, abs=1e-4)
    assert json.loads((tmp_path / "log.json").read_text())["unfamiliar_frames"] == 3
    for index, r in shown.items():
        assert r.seg.gate.shown_label == ("unfamiliar" if levels[index] == 128 else r.seg.gate.label)
        if levels[index] == 128:
            assert r.seg.mask is None


def test_the_panel_says_unfamiliar_view_without_a_class_or_confidence():
    lines = text_lines("unfamiliar", 0.97, {"gate": 1.0}, 30.0, 0)
    assert lines[0][0] == UNFAMILIAR and "0.97" not in lines[0][0]
    assert text_lines("nerve", 0.97, {}, 30.0, 0)[0][0] == "NERVE 0.97"


@pytest.fixture
def gate_splits(training_gate_data, tmp_path):
    splits = tmp_path / "splits"
    assert main(["data", "split", str(training_gate_data), "--out", str(splits)]) == 0
    return training_gate_data, splits


def test_calibrate_writes_a_new_engine_and_info_says_so(gate_splits, tmp_path, capsys):
    data, splits = gate_splits
    plain = make_gate(tmp_path / "gate.onnx")
    before = file_sha256(plain)
    out = tmp_path / "cal" / "gate.onnx"
    code = main(["calibrate", str(plain), "--data", str(data), "--splits", str(splits), "--split", "train",
                 "--out", str(out)])
    assert code == 0 and file_sha256(plain) == before  # the input is never changed
    report = json.loads(out.with_suffix(".calibration.json").read_text())
    assert out.with_suffix(".reliability.png").stat().st_size > 1000
    cal = load_engine(out, "onnxruntime").calibration
    assert cal.temperature == pytest.approx(report["temperature"]) and cal.view.threshold > 0
    assert report["ece_after"] <= report["ece_before"] + 1e-9 or report["temperature_at_bound"]
    capsys.readouterr()
    assert main(["info", str(out)]) == 0
    assert f"temperature {report['temperature']:.3f}" in json.loads(capsys.readouterr().out)["calibration"]
    assert main(["info", str(plain)]) == 0
    assert "not calibrated (T=1)" in json.loads(capsys.readouterr().out)["calibration"]
    # the recipe's report (samples/models/RECIPE.md) says what the shipped gate carries
    from nerveseg.training.recipe import calibration_line
    line, = calibration_line(out)
    assert f"temperature {report['temperature']:.3f}" in line and "view-statistics distance" in line
    assert calibration_line(plain) == ["- calibration: none (no temperature, no unfamiliar-view threshold)"]
    # never over its input
    assert main(["calibrate", str(plain), "--data", str(data), "--splits", str(splits), "--split", "train",
                 "--out", str(plain), "--exist-ok"]) == 2


def test_eval_ood_reports_silent_and_wrong_per_set(gate_splits, tmp_path):
    data, splits = gate_splits
    plain = make_gate(tmp_path / "gate.onnx")
    out = tmp_path / "cal.onnx"
    assert main(["calibrate", str(plain), "--data", str(data), "--splits", str(splits), "--split", "train",
                 "--out", str(out)]) == 0
    assert main(["eval", "gate", str(out), "--data", str(data), "--splits", str(splits), "--split", "test",
                 "--out", str(tmp_path / "ev"), "--ood", "--ood-count", "2"]) == 0
    report = json.loads((tmp_path / "ev" / "ood.json").read_text())
    assert len(report["sets"]) == 1 + 2 + 5
    for name, r in report["sets"].items():
        assert r["silent"] + r["wrong"] + r["right"] == pytest.approx(1.0)
        if name.startswith("not surgery"):
            assert r["right"] == 0.0
    # pictures that are not surgery: the view statistics call (nearly) all of them unfamiliar
    odd = [r["silent"] for name, r in report["sets"].items() if name.startswith("not surgery")]
    assert np.mean(odd) > 0.8
    text = (tmp_path / "ev" / "report.txt").read_text()
    assert "expected calibration error" in text and "not surgery: checkerboard" in text
    assert (tmp_path / "ev" / "reliability.png").is_file()


def test_validation_calibration_block_runs_on_a_fresh_clone(tmp_path):
    """docs/VALIDATION.md's calibration commands, as written but on fewer synthetic images:
    a new engine beside the untouched shipped one, an --ood report on a held-out set scored
    whole, a scored replay."""
    import re

    from test_docs_commands import _fresh_clone, _run, doc_commands

    REPO = Path(__file__).resolve().parents[1]
    commands = [c for c in doc_commands(REPO / "docs/VALIDATION.md")[0] if "runs/calibration" in c or "runs/ood" in c]
    assert [c.split()[1] for c in commands] == ["synth", "data", "calibrate", "synth", "eval", "replay"]
    work = _fresh_clone(tmp_path)
    shipped = file_sha256(REPO / "samples/models/gate.onnx")
    for command in commands:
        command = re.sub(r"--per-class \d+", "--per-class 25", command)
        _run(work, re.sub(r"--ood-count \d+", "--ood-count 2", command), ("--no-progress",)
             if command.split()[1] == "replay" else ())
    assert file_sha256(REPO / "samples/models/gate.onnx") == shipped
    cal = load_engine(work / "runs/calibration/gate.onnx", "onnxruntime").calibration
    assert cal.temperature != 1.0 and cal.energy_threshold is not None and cal.view.threshold > 0
    assert json.loads((work / "runs/ood/eval/ood.json").read_text())["sets"]
    assert json.loads((work / "runs/ood/eval/metrics.json").read_text())["n"] == 3 * 25  # the whole set
    summary = json.loads((work / "runs/ood/sample.json").read_text())
    assert summary["unfamiliar_frames"] == summary["ground_truth"]["unfamiliar_frames"]


def test_export_calibrate_stores_the_temperature_and_the_engine_applies_it(training_gate_run, training_gate_data,
                                                                           tmp_path):
    """export --calibrate fits on the val list into the metadata; the reload check passes
    with the engine's logits divided by T, and they are the plain export's divided by T."""
    from nerveseg.training.exporters import export

    items = sorted(str(p.relative_to(training_gate_data)) for p in training_gate_data.rglob("*.png"))
    splits = tmp_path / "splits"
    splits.mkdir()
    (splits / "train.txt").write_text("\n".join(items[0::3] + items[1::3]) + "\n")
    (splits / "val.txt").write_text("\n".join(items[2::3]) + "\n")  # 12 images, 4 per class
    plain, calibrated = tmp_path / "plain.onnx", tmp_path / "cal.onnx"
    export(training_gate_run / "best.pt", plain, data=training_gate_data, splits=splits)
    meta = export(training_gate_run / "best.pt", calibrated, data=training_gate_data, splits=splits, calibrate=True)
    values = meta.extra["calibration"]
    assert values["fitted_on"].startswith("val split") and "12 images" in values["fitted_on"]
    assert values["view_statistics"]["threshold"] > 0 and values["temperature"] > 0
    frames = np.random.default_rng(2).integers(0, 256, (3, *meta.input_size, 3), dtype=np.uint8)
    raw = load_engine(plain, "onnxruntime").run(frames)["logits"]
    got = load_engine(calibrated, "onnxruntime").run(frames)["logits"]
    np.testing.assert_allclose(got, raw / values["temperature"], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("case, says", [
    ("segmenter", "engine has no gate to calibrate"),
    ("not onnx", "calibrate rewrites ONNX metadata"),
    ("quantile", "--quantile 1.0: must be a number within [0.5, 1)"),
])
def test_calibrate_refuses_what_it_cannot_do_in_one_line(gate_splits, tmp_path, capsys, case, says):
    data, splits = gate_splits
    engine = make_segmenter(tmp_path / "seg.onnx") if case == "segmenter" else make_gate(tmp_path / "gate.onnx")
    out = tmp_path / ("new.pt" if case == "not onnx" else "new.onnx")
    extra = ["--quantile", "1"] if case == "quantile" else []
    code = main(["calibrate", str(engine), "--data", str(data), "--splits", str(splits), "--split", "train",
                 "--out", str(out), *extra])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and says in err[0] and not out.exists()
