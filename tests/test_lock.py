"""Reproducible installs: the locks in requirements/ cover every dependency pyproject
declares, agree with each other, and are what this environment runs (scripts/env.sh
installs with them as constraints)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
import lock_diff  # noqa: E402  (a script beside the locks, not a package)

RUNTIME = ROOT / "requirements" / "runtime.lock"
TRAIN_TEST = ROOT / "requirements" / "train-test.lock"
# TensorRT is locked nowhere: it installs only where a GPU is (docs/TENSORRT.md).
LOCKED_EXTRAS = ("train", "test")


def _declared() -> tuple[list[Requirement], list[Requirement]]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    runtime = [Requirement(r) for r in project["dependencies"]]
    extras = [Requirement(r) for e in LOCKED_EXTRAS for r in project["optional-dependencies"][e]]
    return runtime, extras


@pytest.mark.parametrize("lock_path, include_extras", [(RUNTIME, False), (TRAIN_TEST, True)],
                         ids=["runtime", "train-test"])
def test_lock_pins_every_declared_dependency_within_its_range(lock_path, include_extras):
    runtime, extras = _declared()
    lock = lock_diff.read_lock(lock_path)
    for req in runtime + (extras if include_extras else []):
        name = lock_diff.normalise(req.name)
        assert name in lock, f"{lock_path.name} lacks {req.name}: run ./scripts/lock.sh"
        assert req.specifier.contains(lock[name], prereleases=True), \
            f"{lock_path.name} pins {name}=={lock[name]}, outside pyproject's {req}"


def test_runtime_lock_is_the_train_test_lock_without_the_training_stack():
    runtime, train_test = lock_diff.read_lock(RUNTIME), lock_diff.read_lock(TRAIN_TEST)
    assert {n: train_test.get(n) for n in runtime} == runtime
    assert "torch" not in runtime and "torch" in train_test


@pytest.mark.skipif(os.environ.get("NERVESEG_LOCK") == "none",
                    reason="scripts/test.sh --latest runs on the newest versions, not the lock")
def test_installed_versions_are_the_locked_ones():
    """The suite runs on exactly what the lock says (scripts/env.sh installed it so)."""
    result = subprocess.run([sys.executable, str(ROOT / "scripts" / "lock_diff.py"), "--check",
                             str(TRAIN_TEST)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout
    assert "every locked one installed" in result.stdout


@pytest.mark.skipif(os.environ.get("NERVESEG_LOCK") == "none", reason="not on the lock's environment")
def test_the_locks_are_what_scripts_lock_sh_makes_of_pyproject(tmp_path):
    """The documented refresh, run on copies: it changes nothing, so the committed locks
    match pyproject.toml (a dependency added without ./scripts/lock.sh fails here)."""
    for lock in (RUNTIME, TRAIN_TEST):
        shutil.copy(lock, tmp_path / lock.name)
    result = subprocess.run([str(ROOT / "scripts" / "lock.sh")], cwd=ROOT, capture_output=True, text=True,
                            env={**os.environ, "NERVESEG_LOCK_DIR": str(tmp_path)}, timeout=300)
    if result.returncode != 0 and "error sending request" in result.stderr.lower():
        pytest.skip(f"no package index reachable: {result.stderr.strip()[:200]}")
    assert result.returncode == 0, result.stderr
    for lock in (RUNTIME, TRAIN_TEST):  # the pins; the annotations name the folder they were made in
        made = lock_diff.read_lock(tmp_path / lock.name)
        assert made == lock_diff.read_lock(lock), f"{lock.name} is out of date: run ./scripts/lock.sh"


def test_lock_diff_names_changed_new_and_missing_packages():
    lines = lock_diff.differences({"numpy": "2.0.0", "av": "18.1.0", "gone": "1.0"},
                                  {"numpy": "2.1.0", "av": "18.1.0", "fresh": "3.0", "pip": "25.0"})
    assert lines == ["new      fresh 3.0", "missing  gone (locked 1.0)", "changed  numpy 2.0.0 -> 2.1.0"]
