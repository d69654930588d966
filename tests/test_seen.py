"""A fine-tuned model has seen its starting model's images too: they never reach its
validation or test split, and ``nerveseg eval`` refuses to score a model on images it has
seen (training.seen). Real training runs (tiny), real exports, real ONNX Runtime."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import cv2
import pytest

from nerveseg.commands.cli import main
from nerveseg.training import seen
from nerveseg.training.splits import make_splits, read_splits

torch = pytest.importorskip("torch")
SMALL = ["--size", "32", "--batch-size", "8", "--threads", "1"]


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:seen.PREFIX]


def record_of(checkpoint: Path) -> dict:
    return torch.load(checkpoint, weights_only=True)["meta"]["extra"]["seen"]


def chunks(text: str) -> set[str]:
    return {text[i:i + seen.PREFIX] for i in range(0, len(text), seen.PREFIX)}


@pytest.fixture(scope="module")
def grown(training_gate_data, tmp_path_factory) -> Path:
    """The tiny gate set plus as many new pictures (each image flipped: new content)."""
    root = tmp_path_factory.mktemp("grown")
    shutil.copytree(training_gate_data, root, dirs_exist_ok=True)
    for path in sorted(training_gate_data.rglob("*.png")):
        image = cv2.imread(str(path))
        cv2.imwrite(str(root / path.parent.name / f"flip_{path.name}"), cv2.flip(image, 0))
    return root


def test_a_run_records_the_images_it_trained_and_was_selected_on(training_gate_run, training_gate_data):
    splits = read_splits(training_gate_run / "splits")
    record = record_of(training_gate_run / "best.pt")
    assert record["complete"] is True and record["unknown"] == []
    assert chunks(record["trained"]) == {digest(training_gate_data / item) for item in splits["train"]}
    assert chunks(record["validated"]) == {digest(training_gate_data / item) for item in splits["val"]}
    assert record["trained_count"] == len(splits["train"]) and record["validated_count"] == len(splits["val"])


def test_fine_tuning_keeps_what_the_start_has_seen_in_train(training_gate_run, training_gate_data, grown,
                                                            tmp_path, capsys):
    start = read_splits(training_gate_run / "splits")
    out = tmp_path / "tuned"
    assert main(["train", "gate", str(grown), "--out", str(out), "--init", str(training_gate_run / "best.pt"),
                 "--epochs", "1", *SMALL]) == 0
    tuned = read_splits(out / "splits")
    seen_before = set(start["train"]) | set(start["val"])
    assert seen_before <= set(tuned["train"])
    assert tuned["val"] and tuned["test"]
    assert not seen_before & (set(tuned["val"]) | set(tuned["test"]))
    assert "stay in the train split" in (out / "train.log").read_text()
    # The record is the start's plus this run's: the chain stays complete.
    before, after = record_of(training_gate_run / "best.pt"), record_of(out / "best.pt")
    assert chunks(before["trained"]) <= chunks(after["trained"]) and after["complete"] is True
    # The start scored on the new test split: none of it has it seen; the tuned model scored
    # on every image of the start's set (its training images among them) is refused in one line.
    capsys.readouterr()
    assert main(["eval", "gate", str(training_gate_run / "best.pt"), "--data", str(grown), "--splits",
                 str(out / "splits"), "--out", str(tmp_path / "ev_ok"), "--threads", "1"]) == 0
    capsys.readouterr()
    assert main(["eval", "gate", str(out / "best.pt"), "--data", str(training_gate_data), "--split", "all",
                 "--out", str(tmp_path / "ev_bad"), "--threads", "1"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "learned from" in err and str(out / "best.pt") in err, err
    left = json.loads((tmp_path / "ev_bad" / "metrics.json").read_text())
    assert left["status"] == "INCOMPLETE" and "learned from" in left["reason"]


def test_the_record_travels_in_the_engine_and_eval_of_the_engine_checks_it(training_gate_run, training_gate_data,
                                                                         tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("NERVESEG_ALLOW_DIRTY", "1")
    engine = tmp_path / "gate.onnx"
    assert main(["export", str(training_gate_run / "best.pt"), "--out", str(engine)]) == 0
    capsys.readouterr()
    assert main(["info", str(engine)]) == 0
    shown = json.loads(capsys.readouterr().out)["metadata"]["extra"]["seen"]
    assert shown["trained_count"] == record_of(training_gate_run / "best.pt")["trained_count"]
    assert "trained" not in shown  # counts, not thousands of digests
    # Its validation split is images it was selected on: fine for --split val, not for test.
    assert main(["eval", "gate", str(engine), "--data", str(training_gate_data), "--splits",
                 str(training_gate_run / "splits"), "--split", "val", "--out", str(tmp_path / "v"),
                 "--threads", "1"]) == 0
    capsys.readouterr()
    copies = tmp_path / "copies"  # its training images under other names: content, not names, counts
    for item in read_splits(training_gate_run / "splits")["train"][::4]:
        (copies / Path(item).parent).mkdir(parents=True, exist_ok=True)
        shutil.copy(training_gate_data / item, copies / Path(item).parent / f"copy_{Path(item).name}")
    assert main(["eval", "gate", str(engine), "--data", str(copies), "--split", "all",
                 "--out", str(tmp_path / "t"), "--threads", "1"]) == 2
    assert "learned from" in capsys.readouterr().err


def test_validate_refuses_a_test_set_the_gate_learned_from(training_gate_run, training_gate_data, tmp_path,
                                                            monkeypatch, capsys):
    from engine_fixtures import make_segmenter
    from video_fixtures import write_video

    monkeypatch.setenv("NERVESEG_ALLOW_DIRTY", "1")
    gate = tmp_path / "gate.onnx"
    assert main(["export", str(training_gate_run / "best.pt"), "--out", str(gate)]) == 0
    video = write_video(tmp_path / "v.mp4", frames=8)
    capsys.readouterr()
    code = main(["validate", "--gate", str(gate), "--seg", str(make_segmenter(tmp_path / "seg.onnx")),
                 "--video", str(video), "--test-set", str(training_gate_data), "--out", str(tmp_path / "out"),
                 "--no-progress"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "learned from" in err[0] and "gate.onnx" in err[0], err
    assert not (tmp_path / "out" / "validation.json").exists()  # refused before measuring


def test_lists_that_test_on_the_start_s_images_are_refused(training_gate_run, training_gate_data, tmp_path,
                                                           capsys):
    start = read_splits(training_gate_run / "splits")
    lists = tmp_path / "lists"
    lists.mkdir()
    (lists / "train.txt").write_text("".join(f"{i}\n" for i in start["test"] + start["val"]))
    (lists / "val.txt").write_text("")
    (lists / "test.txt").write_text("".join(f"{i}\n" for i in start["train"]))
    capsys.readouterr()
    assert main(["train", "gate", str(training_gate_data), "--out", str(tmp_path / "x"), "--splits", str(lists),
                 "--init", str(training_gate_run / "best.pt"), "--epochs", "1", *SMALL]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "seen by the --init model" in err, err


def test_a_start_without_a_record_is_said_and_marks_the_chain_incomplete(training_gate_run, grown, tmp_path):
    ckpt = torch.load(training_gate_run / "best.pt", weights_only=True)
    del ckpt["meta"]["extra"]["seen"]  # as engines exported before the record existed
    old = tmp_path / "old.pt"
    torch.save(ckpt, old)
    out = tmp_path / "tuned"
    assert main(["train", "gate", str(grown), "--out", str(out), "--init", str(old), "--epochs", "1", *SMALL]) == 0
    assert "does not record the images it was trained on" in (out / "train.log").read_text()
    record = record_of(out / "best.pt")
    assert record["complete"] is False and record["unknown"] == [str(old)]


def test_pinned_items_go_to_train_and_nothing_changes_without_them():
    items = [f"c/{i:02d}.png" for i in range(20)]
    plain = make_splits(items, lambda item: "c", seed=3)
    assert make_splits(items, lambda item: "c", seed=3, pinned=set()) == plain
    held = set(plain["test"]) | set(plain["val"][:1])
    pinned = make_splits(items, lambda item: "c", seed=3, pinned=held)
    assert held <= set(pinned["train"])
    assert len(pinned["val"]) == len(plain["val"]) and len(pinned["test"]) == len(plain["test"])


def test_the_single_engine_records_the_u_net_s_images_and_both_parts(training_seg_run, training_gate_run,
                                                                      training_gate_data, training_seg_data,
                                                                      tmp_path):
    out = tmp_path / "gs"
    assert main(["train", "gate-seg", "--gate-data", str(training_gate_data), "--seg-data", str(training_seg_data),
                 "--gate-splits", str(training_gate_run / "splits"), "--seg-splits",
                 str(training_seg_run / "splits"), "--init-seg", str(training_seg_run / "best.pt"),
                 "--out", str(out), "--head-epochs", "1", "--epochs", "0", "--threads", "1"]) == 0
    record = record_of(out / "best.pt")
    gate_train = read_splits(training_gate_run / "splits")["train"]
    assert chunks(record_of(training_seg_run / "best.pt")["trained"]) <= chunks(record["trained"])
    assert {digest(training_gate_data / item) for item in gate_train} <= chunks(record["trained"])


def test_the_bench_release_gate_refuses_a_test_set_the_engine_learned_from(training_gate_run, training_gate_data,
                                                                          training_seg_data, tmp_path, monkeypatch):
    from engine_fixtures import make_segmenter

    from nerveseg.commands.bench import formats
    from nerveseg.engines.errors import UserError
    from nerveseg.engines.loader import load_engine

    monkeypatch.setenv("NERVESEG_ALLOW_DIRTY", "1")
    assert main(["export", str(training_gate_run / "best.pt"), "--out", str(tmp_path / "gate.onnx")]) == 0
    data = tmp_path / "set"
    shutil.copytree(training_gate_data, data / "classify")
    shutil.copytree(training_seg_data, data / "segment")
    gate, seg = load_engine(tmp_path / "gate.onnx"), load_engine(make_segmenter(tmp_path / "seg.onnx"))
    with pytest.raises(UserError, match="learned from"):
        formats._scores({}, gate, seg, data, None)
