"""The default engines are found from any folder (the installed project's shipped
samples, or $NERVESEG_MODELS), an explicit path still wins, and `nerveseg info` says
where a default came from."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from video_fixtures import write_video

REPO = Path(__file__).resolve().parents[1]


def nerveseg(*args: str, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "nerveseg.commands.cli", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=240, env={**os.environ, **(env or {})})


def test_replay_from_another_folder_finds_the_shipped_engines(tmp_path):
    video = write_video(tmp_path / "in.mp4", frames=6)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    run = nerveseg("replay", str(video), "--out", "y.avi", cwd=elsewhere)
    assert run.returncode == 0, run.stderr
    summary = json.loads((elsewhere / "y.json").read_text())
    engines = summary["nerveseg"]["engines"]
    assert Path(engines["gate"]["path"]) == REPO / "samples" / "models" / "gate.onnx"
    assert Path(engines["segment"]["path"]) == REPO / "samples" / "models" / "unet.onnx"


def test_info_says_where_the_defaults_come_from(tmp_path):
    run = nerveseg("info", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    report = json.loads(run.stdout)
    assert set(report) == {"gate", "segment"}
    assert "shipped sample engines" in report["gate"]["from"] and str(REPO) in report["gate"]["from"]
    assert report["segment"]["metadata"]["task"] == "segment"


def test_models_folder_from_the_environment_and_an_explicit_path_wins(tmp_path, tiny_engines):
    folder = tmp_path / "site"
    folder.mkdir()
    (folder / "gate.onnx").write_bytes(tiny_engines[0].read_bytes())
    (folder / "unet.onnx").write_bytes(tiny_engines[1].read_bytes())
    run = nerveseg("info", cwd=tmp_path, env={"NERVESEG_MODELS": str(folder)})
    assert run.returncode == 0, run.stderr
    report = json.loads(run.stdout)
    assert report["gate"]["from"] == "$NERVESEG_MODELS"
    assert Path(report["gate"]["provenance"]["path"]) == folder / "gate.onnx"
    run = nerveseg("info", str(tiny_engines[1]), cwd=tmp_path, env={"NERVESEG_MODELS": str(folder)})
    assert json.loads(run.stdout)["from"] == "given on the command line"
