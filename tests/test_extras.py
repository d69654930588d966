"""The runtime install has no torch: every command or backend that needs the training
stack says so in one line (which extra, how to install it), exit 2, and ``bench`` runs
every mode it can and names the others. Real child processes in which torch (and the
rest of the train and tensorrt extras) cannot be imported."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from nerveseg.engines.extras import EXTRA_OF

ROOT = Path(__file__).resolve().parents[1]
HINT = "pip install -e '.[train]'"

BLOCKER = f'''
import sys

class _NotInstalled:
    """Imports of an extra's packages fail as they do where it was never installed."""
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {sorted(EXTRA_OF)!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
        return None

sys.meta_path.insert(0, _NotInstalled())
'''


@pytest.fixture(scope="module")
def runtime_only(tmp_path_factory) -> dict:
    """The environment of a child that behaves like the runtime install."""
    folder = tmp_path_factory.mktemp("runtime-only")
    (folder / "sitecustomize.py").write_text(BLOCKER)
    return {**os.environ, "PYTHONPATH": str(folder), "QT_QPA_PLATFORM": "offscreen"}


def nerveseg(env: dict, *argv: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "nerveseg.commands.cli", *argv], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)


def test_the_blocker_really_hides_torch(runtime_only):
    probe = subprocess.run([sys.executable, "-c", "import torch"], env=runtime_only, capture_output=True, text=True)
    assert probe.returncode != 0 and "No module named 'torch'" in probe.stderr


@pytest.mark.parametrize("argv", [
    ["train", "gate", "samples", "--out", "{tmp}/run"],
    ["export", "samples/models/gate.pt", "--out", "{tmp}/gate.onnx"],
    ["replay", "samples/stereo_sample.mp4", "--out", "{tmp}/a.avi", "--backend", "torch"],
    ["replay", "samples/stereo_sample.mp4", "--out", "{tmp}/b.avi", "--gate", "samples/models/gate.pt"],
    ["run", "--source", "samples/stereo_sample.mp4", "--seg", "samples/models/unet.pt", "--duration", "1"],
    ["quantize", "samples/models/unet.onnx", "--out", "{tmp}/unet.int8.onnx", "--calib", "samples/stereo_sample.mp4"],
], ids=["train", "export", "backend-torch", "pt-gate", "pt-seg-live", "quantize"])
def test_a_command_that_needs_the_train_extra_says_so_in_one_line(runtime_only, tmp_path, argv):
    result = nerveseg(runtime_only, *[a.format(tmp=tmp_path) for a in argv])
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert [line for line in lines if not line.startswith("INFO ")] == [lines[-1]], result.stderr
    assert "needs the train extra" in lines[-1] and HINT in lines[-1]
    assert list(tmp_path.iterdir()) == []


def test_help_still_lists_every_command(runtime_only):
    result = nerveseg(runtime_only, "--help")
    assert result.returncode == 0
    for command in ("train", "export", "eval", "bench", "replay"):
        assert command in result.stdout


def test_bench_runs_what_it_can_and_names_what_it_skipped(runtime_only, tmp_path):
    result = nerveseg(runtime_only, "bench", "samples/stereo_sample.mp4", "--out", str(tmp_path / "b"),
                      "--frames", "12", "--modes", "naive,bare,scaling", timeout=300)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    skipped = [line for line in result.stderr.splitlines() if line.startswith("nerveseg bench: skipped")]
    assert any(line.startswith("nerveseg bench: skipped naive: ") and "needs the train extra" in line
               for line in skipped), skipped
    assert any("skipped scaling" in line for line in skipped), skipped
    assert "bare" in result.stdout and (tmp_path / "b" / "bench.json").is_file()
