"""Issue 15, item 3: `nerveseg train gate|seg ... --init ENGINE_OR_CHECKPOINT` fine-tunes a
trained model, and refuses one of another task, architecture, width or class list in one line."""

from __future__ import annotations

import os

import pytest
import torch

from nerveseg.commands.cli import main

SMALL = ["--size", "32", "--batch-size", "8", "--threads", "1"]  # no --width: --init brings its own


def params(path) -> dict:
    """The trainable tensors of a checkpoint (BatchNorm's running statistics left out: they
    follow the data in any training step, whatever the learning rate)."""
    state = torch.load(path, weights_only=True)["model"]
    return {k: v for k, v in state.items() if "running_" not in k and "num_batches" not in k}


def test_init_starts_from_the_checkpoint_and_says_so(training_gate_data, training_gate_run, tmp_path):
    start = training_gate_run / "best.pt"
    out = tmp_path / "tuned"
    # A learning rate too small to move anything: the result is the checkpoint's weights.
    assert main(["train", "gate", str(training_gate_data), "--out", str(out), "--init", str(start),
                 "--epochs", "1", "--lr", "1e-12", *SMALL]) == 0
    tuned, before = params(out / "last.pt"), params(start)
    assert set(tuned) == set(before)
    assert all(torch.allclose(tuned[k].float(), before[k].float(), atol=1e-6) for k in before)
    ckpt = torch.load(out / "last.pt", weights_only=True)
    assert ckpt["arch_kwargs"] == {"width_mult": 0.25}  # adopted from the checkpoint
    assert ckpt["meta"]["extra"]["init"]["checkpoint"] == str(start)
    assert "fine-tuning from" in (out / "train.log").read_text()
    # From scratch with the same seed the weights are another draw.
    scratch = tmp_path / "scratch"
    assert main(["train", "gate", str(training_gate_data), "--out", str(scratch), "--width", "0.25",
                 "--epochs", "1", "--lr", "1e-12", *SMALL]) == 0
    fresh = params(scratch / "last.pt")
    assert not all(torch.allclose(fresh[k].float(), before[k].float(), atol=1e-6) for k in before)


def test_init_from_an_engine_takes_the_checkpoint_beside_it(training_gate_data, training_gate_run, tmp_path,
                                                            monkeypatch, capsys):
    monkeypatch.setenv("NERVESEG_ALLOW_DIRTY", "1")  # the test checkout may hold uncommitted work
    engine = tmp_path / "gate.onnx"
    assert main(["export", str(training_gate_run / "best.pt"), "--out", str(engine),
                 "--reference-pt", str(tmp_path / "gate.pt")]) == 0
    out = tmp_path / "tuned"
    assert main(["train", "gate", str(training_gate_data), "--out", str(out), "--init", str(engine),
                 "--epochs", "1", *SMALL]) == 0
    assert torch.load(out / "best.pt", weights_only=True)["meta"]["extra"]["init"]["checkpoint"] == \
        str(tmp_path / "gate.pt")
    os.remove(tmp_path / "gate.pt")
    capsys.readouterr()
    assert main(["train", "gate", str(training_gate_data), "--out", str(tmp_path / "x"), "--init", str(engine),
                 "--epochs", "1", *SMALL]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "no gate.pt beside it" in err


@pytest.mark.parametrize("family, extra, says", [
    ("seg", [], "is a classify mobilenet_v2 checkpoint; this run trains a segment unet_mobilenet_v2"),
    ("gate", ["--width", "0.5"], "trained with mobilenet_v2 {'width_mult': 0.25}; this run asks for "
                                 "{'width_mult': 0.5}"),
    ("gate", ["--classes", "tendon", "nerve", "opening_wound"],
     "trained on classes ['nerve', 'opening_wound', 'tendon']; this run's are ['tendon', 'nerve', 'opening_wound']"),
    ("gate", ["--model", "resnet50"], "this run trains a classify resnet50"),
])
def test_init_refuses_another_model_in_one_line(training_gate_data, training_seg_data, training_gate_run,
                                                tmp_path, capsys, family, extra, says):
    data = training_gate_data if family == "gate" else training_seg_data
    code = main(["train", family, str(data), "--out", str(tmp_path / "x"),
                 "--init", str(training_gate_run / "best.pt"), "--epochs", "1", *SMALL, *extra])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and says in err, err
    assert not (tmp_path / "x" / "last.pt").exists()
