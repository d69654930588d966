"""Help a user can read: every option of every sub-command has help with its default, no
Sphinx markup, every backend docs/TENSORRT.md names, and errors that advise only flags the
command has."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest

from nerveseg.commands.cli import build_parser, main, parsers

REPO = Path(__file__).resolve().parents[1]
MARKUP = re.compile(r"``|:(func|mod|class|data|meth|attr):`")


def _options():
    for parser in parsers(build_parser()):
        for action in parser._actions:
            if not isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)):
                yield parser, action


def test_every_option_has_help_and_shows_its_default():
    missing, no_default = [], []
    for parser, action in _options():
        name = f"{parser.prog} {'/'.join(action.option_strings) or action.dest}"
        if not (action.help or "").strip():
            missing.append(name)
            continue
        shown = parser._get_formatter()._get_help_string(action)
        if action.option_strings and action.default not in (None, False, [], argparse.SUPPRESS) \
                and "default" not in shown.lower():
            no_default.append(f"{name} (default {action.default!r})")
    assert not missing, f"options without help: {missing}"
    assert not no_default, f"options whose help hides the default: {no_default}"


def test_rendered_help_has_no_markup_and_the_defaults_of_the_issue():
    for parser in parsers(build_parser()):
        text = parser.format_help()
        assert not MARKUP.search(text), f"{parser.prog}: Sphinx markup in --help"
    by_prog = {p.prog: p for p in parsers(build_parser())}
    for prog, flag, default in (("nerveseg eval", "--batch-size", "16"), ("nerveseg eval", "--split", "test"),
                                ("nerveseg train gate-seg", "--head-epochs", "4"),
                                ("nerveseg synth all", "--per-class", "200"), ("nerveseg synth all", "--count", "300"),
                                ("nerveseg bench", "--rounds", "1"), ("nerveseg bench", "--soak", "10000"),
                                ("nerveseg bench", "--frames", "300"), ("nerveseg bench", "--live-fps", "30,60")):
        parser = by_prog[prog]
        shown = parser._get_formatter()._expand_help(parser._option_string_actions[flag])
        assert re.search(rf"default:?\s+{re.escape(default)}\b", shown), (prog, flag, shown)
        assert f"{flag}" in parser.format_help() and shown.split("(default")[0].strip() in " ".join(
            parser.format_help().split())


def test_backend_options_list_every_backend_the_docs_name():
    named = set(re.findall(r"^\| `([a-z-]+)`", (REPO / "docs/TENSORRT.md").read_text(), re.M))
    named.discard("--backend")
    assert {"auto", "onnxruntime", "onnxruntime-cuda", "onnxruntime-trt", "tensorrt", "torch"} <= named
    found = 0
    for parser, action in _options():
        if any(flag.startswith("--backend") for flag in action.option_strings) and action.choices:
            found += 1
            assert named <= set(action.choices), (parser.prog, sorted(named - set(action.choices)))
    backend_options = [a for _, a in _options() if "--backend" in a.option_strings]
    assert backend_options and all(a.choices for a in backend_options), "a --backend without choices"
    assert found >= 5


@pytest.mark.parametrize("argv", [["build-engine", "samples/models/gate.onnx", "--out", "{tmp}/gate.engine"],
                                  ["info", "samples/models/gate.onnx", "--backend", "tensorrt"],
                                  ["verify", "samples/models/gate.onnx", "samples/models/gate.onnx", "--backend-b",
                                   "tensorrt"]])
def test_errors_advise_only_flags_the_command_has(argv, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(REPO)
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    code = main(argv)
    err = capsys.readouterr().err
    if code == 0:
        pytest.skip("this machine can run TensorRT: no advice given")
    assert code == 2 and err.count("\n") == 1, err
    command = next(p for p in parsers(build_parser()) if p.prog == f"nerveseg {argv[0]}")
    own = {f for a in command._actions for f in a.option_strings}
    for match in re.finditer(r"(nerveseg [a-z-]+ )?(--[a-z][a-z0-9-]*)", err.split(": error: ", 1)[1]):
        assert match.group(2) in own or match.group(1), f"advises {match.group(2)}, which {argv[0]} lacks: {err}"


def test_region_counts_say_regions_in_images():
    from nerveseg.training.compare import counted, format_table

    record = {"task": "region_segment", "split": "test", "data": "d", "n": 36, "images": 12,
              "models": [{"name": "a", "report": "out/a/metrics.json", "iou_mean": 0.5}]}
    assert counted(record) == "36 regions in 12 images"
    text = format_table(record)
    assert "(36 regions in 12 images)" in text and "out/a/metrics.json" in text and "<out>" not in text
    assert counted({"task": "segment", "n": 12}) == "12 images"
