"""Every `nerveseg ...` command shown in a code block of README.md and docs/*.md parses
with the real parser, and each file it reads exists in a fresh clone or is made by an
earlier command of the same document (or is the file a `yaml` block of it shows); some are
run for real (quick variants on data the test makes). An example can no longer go stale."""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from nerveseg.commands.cli import OUTPUT_ARGUMENTS, build_parser, leaf
from nerveseg.realtime.sources import is_camera
from nerveseg.realtime.sources.stream import is_stream

REPO = Path(__file__).resolve().parents[1]
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
FENCE = re.compile(r"^```([a-z]*)\n(.*?)^```", re.S | re.M)
# options (and synth's OUT) that name what a command makes: the dispatcher's own list and a few more
OUTPUTS = OUTPUT_ARGUMENTS | {"reference_pt", "update_docs"}
FILE_SUFFIXES = (".onnx", ".pt", ".pth", ".mp4", ".avi", ".yaml", ".yml", ".json", ".png", ".engine", ".plan",
                 ".txt")


def doc_commands(path: Path) -> tuple[list[str], set[str]]:
    """The commands of ``path``'s code blocks (continuations joined, comments and shown
    output dropped) and the files its ``yaml`` blocks show (``e.g. `exp/seg.yaml```) or a
    recipe script shown makes (``scripts/heavy_engines.sh runs/heavy``: its WORK folder)."""
    text = path.read_text()
    commands, shown = [], set()
    for match in FENCE.finditer(text):
        lang, body = match.group(1), match.group(2)
        if lang in ("yaml", "yml"):
            before = text[:match.start()].rstrip().rsplit("\n\n", 1)[-1]
            shown |= set(re.findall(r"`([\w./-]+\.ya?ml)`", before))
            continue
        for line in re.sub(r"\\\n\s*", " ", body).splitlines():
            line = line.strip().removeprefix("$ ")
            recipe = re.match(r"scripts/[\w-]+\.sh (\S+)", line)  # a recipe script makes its WORK folder
            if recipe and (REPO / line.split()[0]).is_file():
                shown.add(recipe.group(1).rstrip("/"))
            if line.startswith("nerveseg ") and not re.match(r"nerveseg [\w-]+:", line):  # output, not a command
                commands.append(line.split(" #")[0].strip())
    return commands, shown


def _paths(args: argparse.Namespace, parser: argparse.ArgumentParser) -> tuple[list[str], list[str]]:
    """``(inputs, outputs)``: the path-like values of the parsed command."""
    inputs, outputs = [], []
    for action in leaf(parser, args)._actions:
        value = getattr(args, action.dest, None)
        values = value if isinstance(value, list) else [value]
        for v in values:
            if not isinstance(v, (str, Path)) or action.dest in ("command", "handler"):
                continue
            text = str(v)
            if is_stream(text) or is_camera(text):
                continue  # a live source (a device, a network stream): nothing to find on disk
            if action.dest in OUTPUTS:
                outputs.append(text.rstrip("/"))
            elif "/" in text or text.endswith(FILE_SUFFIXES):
                if action.default is not None and v == action.default and action.option_strings:
                    continue  # a default the user did not type (e.g. bench's runs/bench)
                inputs.append(text.rstrip("/"))
    return inputs, outputs


def _made(path: str, made: set[str]) -> bool:
    return any(path == m or path.startswith(m + "/") for m in made)


ALL = [(doc, cmd) for doc in DOCS for cmd in doc_commands(doc)[0]]


def test_the_docs_show_commands():
    assert len(ALL) >= 40 and {doc.name for doc, _ in ALL} >= {"TRAINING.md", "VALIDATION.md", "MODELS.md"}


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_every_doc_command_parses_and_its_files_exist_or_are_made_earlier(doc):
    parser = build_parser()
    commands, made = doc_commands(doc)
    problems = []
    for command in commands:
        argv = shlex.split(command)[1:]
        try:
            args = parser.parse_args(argv)
        except SystemExit:
            problems.append(f"does not parse: {command}")
            continue
        inputs, outputs = _paths(args, parser)
        if args.command == "synth" and getattr(args, "out", None):
            outputs.append(str(args.out).rstrip("/"))
            if str(args.out).endswith(".mp4"):  # synth video writes its annotations beside: OUT.gt/
                outputs.append(str(Path(args.out).with_suffix(".gt")))
        for path in inputs:
            if not (REPO / path).exists() and not _made(path, made):
                problems.append(f"{path} neither in the repository nor made earlier in {doc.name}: {command}")
        made |= set(outputs)
    assert not problems, "\n".join(problems)


def _fresh_clone(tmp_path: Path) -> Path:
    """A working folder as a fresh clone has it: the shipped samples, nothing made."""
    work = tmp_path / "clone"
    work.mkdir()
    (work / "samples").symlink_to(REPO / "samples")
    return work


def _run(work: Path, command: str, extra: tuple[str, ...] = (), timeout: int = 400,
         codes: tuple[int, ...] = (0,)) -> subprocess.CompletedProcess:
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "OMP_NUM_THREADS": "1"}
    argv = [sys.executable, "-m", "nerveseg.commands.cli", *shlex.split(command)[1:], *extra]
    done = subprocess.run(argv, cwd=work, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode in codes, f"{command}\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
    return done


def _smaller(command: str) -> str:
    """The same command on less data (the counts of a synthetic set)."""
    command = re.sub(r"--per-class \d+", "--per-class 4", command)
    command = re.sub(r"--count \d+", "--count 8", command)
    return command


def test_validation_first_example_runs_on_a_fresh_clone(tmp_path):
    """docs/VALIDATION.md's first block, as written (fewer synthetic test images; no PDF,
    the display probe instead of a Qt window: the report's own tests cover those)."""
    commands = [c for c in doc_commands(REPO / "docs/VALIDATION.md")[0]][:3]
    assert [c.split()[1] for c in commands] == ["synth", "synth", "validate"]
    work = _fresh_clone(tmp_path)
    for command in commands[:2]:
        _run(work, _smaller(command))
    # A verdict either way (the delays depend on the machine's load): 0 PASS or 1 FAIL, never 2 or 3.
    done = _run(work, commands[2], ("--no-pdf", "--display", "subscriber", "--no-progress"), codes=(0, 1))
    assert "PASS  every frame processed" in done.stdout
    assert "PASS  lossless recording unchanged outside the overlay" in done.stdout
    verdict = json.loads((work / "validation" / "validation.json").read_text())["verdict"]
    assert verdict["status"] in ("PASS", "FAIL") and len(verdict["checks"]) == 6


def test_training_quick_start_runs_on_a_fresh_clone(tmp_path):
    """docs/TRAINING.md's data commands run for real on a small synthetic set."""
    commands = doc_commands(REPO / "docs/TRAINING.md")[0]
    wanted = [c for c in commands if c.split()[1] in ("synth", "data")]
    assert any(c.startswith("nerveseg data split") for c in wanted)
    work = _fresh_clone(tmp_path)
    for command in wanted:
        _run(work, _smaller(command).replace("--size 224", "--size 64"))
    assert (work / "data/splits/test.txt").is_file() and (work / "rep/import_report.json").is_file()


def test_parse_and_file_check_can_fail(tmp_path):
    """The checker itself: a stale path and a missing flag are caught."""
    doc = tmp_path / "X.md"
    doc.write_text("```sh\nnerveseg replay nowhere/v.mp4 --out a.avi\nnerveseg eval gate --no-such-flag\n```\n")
    with pytest.raises(AssertionError, match=r"nowhere/v.mp4 neither[\s\S]*does not parse"):
        test_every_doc_command_parses_and_its_files_exist_or_are_made_earlier(doc)
    shutil.rmtree(tmp_path)
