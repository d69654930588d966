"""Training runs the importers' validation first; split lists are shared across families."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
from conftest import TRAINING_TINY

from nerveseg.commands.cli import main
from nerveseg.training import splits


@pytest.fixture
def three_class_pairs(tmp_path):
    """``images/`` + ``masks/`` with ids 0 background, 1 nerve (thin band), 2 tendon (wide band)."""
    root = tmp_path / "pairs"
    rng = np.random.default_rng(0)
    for k in range(14):
        grey = (90 + 15 * rng.standard_normal((32, 32))).clip(0, 255).astype(np.uint8)
        mask = np.zeros((32, 32), np.uint8)
        mask[:, 4 + k:8 + k] = 1
        mask[20:30, :] = np.where(mask[20:30, :] == 0, 2, 1)
        grey[mask == 1], grey[mask == 2] = 230, 180
        (root / "images").mkdir(parents=True, exist_ok=True)
        (root / "masks").mkdir(exist_ok=True)
        cv2.imwrite(str(root / "images" / f"f{k:02d}.png"), np.repeat(grey[..., None], 3, axis=2))
        cv2.imwrite(str(root / "masks" / f"f{k:02d}.png"), mask)
    return root


def test_training_refuses_bad_data_then_skips_it(three_class_pairs, tmp_path, capsys):
    root = three_class_pairs
    cv2.imwrite(str(root / "masks" / "f03.png"), np.zeros((16, 16), np.uint8))  # another size
    common = ["train", "seg", str(root), "--out", str(tmp_path / "run"), "--epochs", "1",
              "--classes", "background", "nerve", "tendon", *TRAINING_TINY]
    assert main(common) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "mask of another size: masks/f03.png (16x16, image 32x32)" in err[0]
    # The refused run left its train.log in run/: the retry writes into that folder, as asked.
    assert main([*common, "--skip-bad", "--exist-ok"]) == 0  # three mask classes: nerve is the default target
    run = tmp_path / "run"
    assert (run / "skipped.txt").read_text().startswith("mask of another size\tmasks/f03.png")
    listed = [i for s in splits.SPLITS for i in (run / "splits" / f"{s}.txt").read_text().split()]
    assert len(listed) == 13 and "images/f03.png" not in listed
    ckpt = torch.load(run / "last.pt", weights_only=True)
    assert list(ckpt["meta"]["classes"]) == ["background", "nerve"] and ckpt["args"]["target"] == "nerve"
    assert "pairs layout (segment), 13 images" in (run / "train.log").read_text()


def test_one_split_for_every_family(three_class_pairs, tmp_path):
    """``nerveseg data split`` once; a family whose data lacks some files (skipped as bad)
    keeps the same test images minus those, and never moves an image between splits."""
    shared = tmp_path / "shared"
    assert main(["data", "split", str(three_class_pairs), "--out", str(shared), "--classes",
                 "background", "nerve", "tendon"]) == 0
    full = splits.read_splits(shared)
    items = [i for s in splits.SPLITS for i in full[s]]
    fewer = [i for i in items if i != full["test"][0]]
    run = tmp_path / "run"
    used = splits.resolve_splits(run, fewer, lambda _: "", seed=99, reuse=shared, root=three_class_pairs)
    assert used["test"] == full["test"][1:] and used["train"] == full["train"]
    assert splits.read_splits(run / "splits") == used  # the run folder says what it used
    again = splits.resolve_splits(run, fewer, lambda _: "", seed=5)  # a resume: the run's own lists
    assert again == used


def test_segment_target_is_asked_for_when_ambiguous():
    from types import SimpleNamespace

    from nerveseg.training.train import resolve_target

    data = SimpleNamespace(classes=("background", "vessel", "tendon"))
    args = SimpleNamespace(target=None, data="D", classes=None)
    with pytest.raises(Exception, match="2 mask classes \\(vessel, tendon\\); give data.target"):
        resolve_target(args, data)
    args.target = "tendom"
    with pytest.raises(Exception, match="did you mean 'tendon'"):
        resolve_target(args, data)
    args.target = "tendon"
    resolve_target(args, data)
    assert args.classes == ["background", "vessel", "tendon"]
