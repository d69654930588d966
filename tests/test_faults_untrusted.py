"""Untrusted files: a checkpoint is read with ``torch.load(weights_only=True)`` (a
pickle that runs code is refused, and the code never runs); a config file is plain
data (Python tags are refused, ``$(...)``, ``~`` and ``${VAR}`` stay literal text)."""

from __future__ import annotations

import ast
import pickle
from pathlib import Path

import pytest
from engine_fixtures import make_gate, make_segmenter
from video_fixtures import write_video

from nerveseg.realtime import config as cfg
from nerveseg.commands.cli import main
from nerveseg.engines.errors import UserError

REPO = Path(__file__).resolve().parents[1]


def _torch_loads(tree: ast.AST):
    for node in ast.walk(tree):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "load"
                and isinstance(node.func.value, ast.Name) and node.func.value.id == "torch"):
            yield node


def test_every_torch_load_in_the_product_is_weights_only():
    calls = []
    for folder in ("engines", "training", "realtime", "ui"):
        for path in (REPO / folder).rglob("*.py"):
            for call in _torch_loads(ast.parse(path.read_text(), str(path))):
                weights_only = {k.arg: k.value for k in call.keywords}.get("weights_only")
                calls.append((f"{path.relative_to(REPO)}:{call.lineno}",
                              isinstance(weights_only, ast.Constant) and weights_only.value is True))
    assert calls, "the checkpoint reader calls torch.load"
    assert [where for where, safe in calls if not safe] == []


class _Payload:
    """Unpickling this runs ``open(marker, "w")``: it creates the marker file."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return open, (str(self.marker), "w")


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
@pytest.mark.parametrize("writer", ["torch.save", "plain pickle"])
def test_a_checkpoint_that_runs_code_is_refused_and_the_code_never_runs(tmp_path, writer, capsys):
    torch = pytest.importorskip("torch")
    marker, evil = tmp_path / "pwned", tmp_path / "best.pt"
    state = {"model": {}, "meta": {}, "arch": "x", "arch_kwargs": {}, "hook": _Payload(marker)}
    if writer == "torch.save":
        torch.save(state, evil)
    else:
        evil.write_bytes(pickle.dumps(state))
    video = write_video(tmp_path / "in.mp4", frames=3)
    code = main(["replay", str(video), "--out", str(tmp_path / "o.avi"), "--gate", str(evil),
                 "--seg", str(make_segmenter(tmp_path / "seg.onnx")), "--no-progress"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "best.pt: not a readable torch checkpoint" in err[0], err
    assert not marker.exists(), "the pickle's code ran"


@pytest.mark.parametrize("tag", ["!!python/object/apply:os.system ['touch pwned']",
                                 "!!python/name:os.system", "!!python/object/new:subprocess.Popen [['touch', 'pwned']]"])
def test_a_config_with_python_tags_is_refused(tmp_path, monkeypatch, tag, capsys):
    monkeypatch.chdir(tmp_path)
    config = tmp_path / "run.yaml"
    config.write_text(f"segment:\n  threshold: {tag}\n")
    with pytest.raises(UserError, match="run.yaml: not valid YAML"):
        cfg.load(config)
    code = main(["replay", str(write_video(tmp_path / "in.mp4", frames=3)), "--out", "o.avi",
                 "--config", str(config), "--no-progress"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "run.yaml: not valid YAML" in err[0]
    assert not (tmp_path / "pwned").exists()


def test_paths_in_a_config_are_literal_text(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    gate, seg = make_gate(tmp_path / "gate.onnx"), make_segmenter(tmp_path / "seg.onnx")
    config = tmp_path / "run.yaml"
    config.write_text('gate:\n  engine: "$(touch pwned)/gate.onnx"\nsegment:\n  engine: "~/seg.onnx"\n'
                      'log:\n  csv: "${HOME}/`touch pwned2`.csv"\n')
    loaded = cfg.load(config)
    assert loaded.gate.engine == "$(touch pwned)/gate.onnx" and loaded.segment.engine == "~/seg.onnx"
    video = write_video(tmp_path / "in.mp4", frames=3)
    code = main(["replay", str(video), "--out", "o.avi", "--config", str(config), "--no-progress"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and err == ["nerveseg replay: error: $(touch pwned)/gate.onnx: engine file not found"]
    code = main(["replay", str(video), "--out", "o.avi", "--config", str(config), "--gate", str(gate),
                 "--no-progress"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and err == ["nerveseg replay: error: ~/seg.onnx: engine file not found"]
    code = main(["replay", str(video), "--out", "o.avi", "--config", str(config), "--gate", str(gate),
                 "--seg", str(seg), "--no-progress"])
    assert code == 0
    assert (tmp_path / "${HOME}" / "`touch pwned2`.csv").is_file(), "written where it says, literally"
    assert not list((tmp_path / "home").rglob("*.csv")) and not list(tmp_path.glob("pwned*"))
