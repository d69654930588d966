"""Rebuildable engines: export refuses a checkpoint trained from uncommitted changes, or a
checkout holding them, unless --allow-dirty (then the engine says so); a clean one records
the clean revision. Real git repositories, a real checkpoint, a real export."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from nerveseg.engines.errors import UserError
from nerveseg.training import rebuildable


def _git(repo: Path, *argv: str) -> str:
    return subprocess.run(["git", "-c", "user.email=t@t", "-c", "user.name=t", *argv], cwd=repo, check=True,
                          capture_output=True, text=True).stdout.strip()


@pytest.fixture
def repo(tmp_path) -> Path:
    repo = tmp_path / "repo"
    repo.mkdir()
    _git(repo, "init", "-q")
    (repo / "code.py").write_text("x = 1\n")
    _git(repo, "add", "code.py")
    _git(repo, "commit", "-qm", "one")
    return repo


def test_a_clean_checkout_and_checkpoint_pass_with_the_revision(repo, monkeypatch):
    monkeypatch.delenv(rebuildable.ENV, raising=False)
    head = _git(repo, "rev-parse", "--short", "HEAD")
    (repo / "untracked.txt").write_text("runs, data: not code")  # untracked files do not count
    assert rebuildable.check("best.pt", head, where=repo) == {"export_revision": head}


def test_uncommitted_changes_are_refused_unless_allowed(repo, monkeypatch):
    monkeypatch.delenv(rebuildable.ENV, raising=False)
    head = _git(repo, "rev-parse", "--short", "HEAD")
    with pytest.raises(UserError, match=r"best.pt: .*trained from uncommitted changes \(revision 03f5b4e\+dirty\).*"
                                        r"--allow-dirty"):
        rebuildable.check("best.pt", "03f5b4e+dirty", where=repo)
    (repo / "code.py").write_text("x = 2\n")
    with pytest.raises(UserError, match=rf"the checkout has uncommitted changes \(revision {head}\+dirty\)"):
        rebuildable.check("best.pt", head, where=repo)
    marked = rebuildable.check("best.pt", head, allow=True, where=repo)
    assert marked["export_revision"] == f"{head}+dirty" and "uncommitted" in marked["dirty"][0]
    monkeypatch.setenv(rebuildable.ENV, "1")
    assert rebuildable.check("best.pt", head, where=repo)["dirty"]


def test_export_refuses_a_dirty_checkpoint_and_marks_an_allowed_one(training_gate_run, tmp_path, monkeypatch, capsys):
    import torch

    from nerveseg.engines.loader import load_engine
    from nerveseg.commands.cli import main

    ckpt = torch.load(training_gate_run / "best.pt", map_location="cpu", weights_only=False)
    ckpt["meta"]["revision"] = "86e2d08+dirty"
    dirty = tmp_path / "dirty.pt"
    torch.save(ckpt, dirty)
    monkeypatch.delenv(rebuildable.ENV, raising=False)
    assert main(["export", str(dirty), "--out", str(tmp_path / "x.onnx")]) == 2
    err = capsys.readouterr().err
    assert "trained from uncommitted changes (revision 86e2d08+dirty)" in err and err.count("\n") == 1
    assert not (tmp_path / "x.onnx").exists()
    assert main(["export", str(dirty), "--out", str(tmp_path / "x.onnx"), "--allow-dirty"]) == 0
    with load_engine(tmp_path / "x.onnx", backend="onnxruntime") as engine:
        extra = engine.meta.extra
        assert engine.meta.revision == "86e2d08+dirty" and extra["dirty"] and extra["export_revision"]


def test_train_samples_script_dirties_nothing_tracked_before_its_last_step():
    """scripts/train_samples.sh writes engines, RECIPE.md and the video under WORK (ignored)
    and copies them into samples/ only at the end, so every training and export it runs
    sees the tree as clean as the commit it started from."""
    script = (Path(__file__).resolve().parents[1] / "scripts/train_samples.sh").read_text()
    steps = [line for line in script.splitlines() if line.startswith("step ")]
    publish = next(k for k, line in enumerate(steps) if line.startswith("step publish"))
    assert publish == len(steps) - 1
    for line in steps[:publish]:
        assert "samples/" not in line and '"$MODELS"' not in line, line


@pytest.mark.parametrize("name", ["gate.onnx", "unet.onnx", "gate_seg.onnx"])
def test_the_shipped_engines_name_a_clean_commit_of_this_repository(name):
    """Anyone can check out the revision a shipped engine records and rebuild it."""
    import subprocess

    from nerveseg.engines.onnxruntime_backend import read_onnx_meta

    repo = Path(__file__).resolve().parents[1]
    meta = read_onnx_meta(repo / "samples" / "models" / name)
    revision = meta.revision
    assert revision and "dirty" not in revision and not meta.extra.get("dirty"), (revision, meta.extra.get("dirty"))
    assert meta.extra.get("export_revision") == revision
    known = subprocess.run(["git", "-C", str(repo), "cat-file", "-e", f"{revision}^{{commit}}"], capture_output=True)
    if known.returncode != 0 and (repo / ".git" / "shallow").exists():
        pytest.skip("a shallow clone: the engines' commit is not in this history")
    assert known.returncode == 0, f"{name}: revision {revision} is not a commit of this repository"


def test_the_recipe_report_names_its_world_and_where_each_run_started():
    """RECIPE.md says which synthetic world trained the shipped engines and whether a run was
    fine-tuned (from which engine and commit) or started from scratch, from the run's own files."""
    from nerveseg.training.recipe import _start, world

    commands = [".venv/bin/nerveseg synth classify runs/s/data/classify --per-class 300 --size 224 --seed 1 "
                "--domain mixed --no-progress", ".venv/bin/nerveseg train gate runs/s/data/classify"]
    assert world(commands) == "mixed"
    assert world(commands[1:]) == "wide"  # synth's default
    assert _start({"init": None}) == "from scratch (no pretrained weights)"
    assert _start({"init": "samples/models/gate.onnx", "init_from": {"revision": "870ae16"}}) == \
        "fine-tuned from `samples/models/gate.onnx` (revision 870ae16)"
