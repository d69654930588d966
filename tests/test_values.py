"""Every value checked at start-up. Hypothesis drives the config loader and the real
command line (in process) with arbitrary values: never a traceback, exit 0 or 2, one
line naming the key, and nothing written on exit 2."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import tempfile
import typing
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from nerveseg.realtime import config as cfg
from nerveseg.commands.cli import main
from nerveseg.engines.errors import UserError
from video_fixtures import write_video

ROOT = Path(__file__).resolve().parents[1]

# Values a YAML file or a command line can carry.
scalars = st.one_of(st.none(), st.booleans(), st.integers(-10**12, 10**12),
                    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=12))
values = st.one_of(scalars, st.lists(scalars, max_size=5), st.dictionaries(st.text(max_size=6), scalars, max_size=3))


def _keys(cls=cfg.PipelineConfig, where="") -> list[tuple[str, ...]]:
    """Every key path of the config schema: ('gate', 'threads'), ('queue_capacity',), ..."""
    hints = typing.get_type_hints(cls)
    out = []
    for f in dataclasses.fields(cls):
        hint = hints[f.name]
        if dataclasses.is_dataclass(hint):
            out += [(f.name, *k) for k in _keys(hint)]
        out.append((f.name,))
    return out


KEYS = _keys()


def _nest(path: tuple[str, ...], value) -> dict:
    for key in reversed(path):
        value = {key: value}
    return value


@settings(max_examples=400, deadline=None)
@given(key=st.sampled_from(KEYS), value=values)
def test_config_loader_takes_or_refuses_any_value_in_one_line(key, value):
    try:
        config = cfg.from_dict(_nest(key, value), "run.yaml")
    except UserError as exc:
        message = str(exc)
        assert "\n" not in message and message.startswith("run.yaml: ")
        assert ".".join(key) in message or key[0] in message
        return
    # Taken: it is what the config holds, of the declared type and within range.
    assert isinstance(config, cfg.PipelineConfig)


@pytest.mark.parametrize("raw, needle", [
    ({"segment": {"threshold": 2}}, "segment.threshold = 2: must be a number within (0, 1)"),
    ({"segment": {"threshold": 0}}, "segment.threshold = 0: must be a number within (0, 1)"),
    ({"segment": {"threshold": float("nan")}}, "segment.threshold = nan"),
    ({"segment": {"threshold": "high"}}, "segment.threshold = 'high'"),
    ({"gate": {"min_confidence": 7}}, "gate.min_confidence = 7: must be a number within [0, 1]"),
    ({"queue_capacity": 0}, "queue_capacity = 0: must be a whole number within [1, 256]"),
    ({"gate": {"threads": 1.5}}, "gate.threads = 1.5: must be a whole number"),
    ({"gate": {"threads": 100000}}, "gate.threads = 100000"),
    ({"gate": {"threads": -1}}, "gate.threads = -1"),
    ({"gate": {"engine": 5}}, "gate.engine = 5: must be text"),
    ({"segment": [1, 2]}, "segment = [1, 2]: must be a mapping"),
    ({"record": {"quality": 0}}, "record.quality = 0: must be a whole number within [1, 100]"),
    ({"preprocess": {"eye": "up"}}, "preprocess.eye = 'up': must be one of 'left', 'right', 'full'"),
    ({"overlay": {"opacity": True}}, "overlay.opacity = True: must be a number"),
])
def test_each_bad_value_names_key_value_and_what_is_allowed(raw, needle):
    with pytest.raises(UserError) as caught:
        cfg.from_dict(raw, "run.yaml")
    assert needle in str(caught.value)


@settings(max_examples=150, deadline=None)
@given(data=st.binary(max_size=200))
def test_any_bytes_as_a_config_file_load_or_are_refused_in_one_line(data):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "run.yaml"
        path.write_bytes(data)
        try:
            cfg.load(path)
        except UserError as exc:
            assert "\n" not in str(exc) and str(path) in str(exc)


def test_a_config_that_is_not_utf8_is_refused(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_bytes("gate:\n  engine: caf\xe9.onnx\n".encode("latin-1"))
    with pytest.raises(UserError, match="not UTF-8 text"):
        cfg.load(path)


# -- the command line, in process --------------------------------------------------------

@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    """A 3-frame video and the tiny engines, shared by every example."""
    from engine_fixtures import make_gate, make_segmenter

    folder = tmp_path_factory.mktemp("values")
    return (write_video(folder / "in.avi", frames=3, height=96, width=192, codec="mjpeg"),
            make_gate(folder / "gate.onnx"), make_segmenter(folder / "seg.onnx"))


def _run_cli(argv: list[str], capsys) -> tuple[int, str]:
    try:
        code = main(argv)
    except SystemExit as exit_:  # argparse's own refusal (a value of the wrong type)
        code = exit_.code
    return code, capsys.readouterr().err


FLAG_VALUES = st.one_of(st.sampled_from(["0.5", "0", "1", "2"]),  # good values too, often
                        st.integers(-10**9, 10**9).map(str), st.floats().map(str),
                        st.sampled_from(["nan", "inf", "-inf", "1e309", "", "0x10", "high", "1.5", "0", "1"]))


@settings(max_examples=int(os.environ.get("NERVESEG_CLI_EXAMPLES", 40)), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(threshold=FLAG_VALUES, threads=FLAG_VALUES, key=st.sampled_from(KEYS), value=values)
@example(threshold="0.5", threads="1", key=("queue_capacity",), value=2)  # a clean run: exit 0
def test_replay_with_arbitrary_flags_and_yaml_exits_0_or_2_and_writes_nothing_on_2(
        small_run, capsys, threshold, threads, key, value):
    video, gate, seg = small_run
    with tempfile.TemporaryDirectory() as tmp:
        out_dir, config = Path(tmp) / "out", Path(tmp) / "run.yaml"
        out_dir.mkdir()
        config.write_text(yaml.safe_dump(_nest(key, value)))
        code, err = _run_cli(["replay", str(video), "--out", str(out_dir / "r.avi"), "--gate", str(gate),
                              "--seg", str(seg), "--no-progress", "--config", str(config),
                              f"--threshold={threshold}", f"--threads={threads}"], capsys)
        assert "Traceback" not in err
        assert code in (0, 2), err
        if code == 2:
            assert len(err.strip().splitlines()) == 1, err
            assert list(out_dir.iterdir()) == [], "a refused run wrote something"
        else:
            assert (out_dir / "r.avi").is_file()


@pytest.mark.parametrize("argv, needle", [
    (["--threshold", "2"], "--threshold 2.0: must be a number within (0, 1)"),
    (["--threshold", "-1"], "--threshold -1.0"),
    (["--threshold", "nan"], "--threshold nan"),
    (["--threshold", "inf"], "--threshold inf"),
    (["--threads", "100000"], "--threads 100000: must be a whole number within [0, "),
    (["--threads", "-1"], "--threads -1"),
    (["--threads", "1.5"], "argument --threads: invalid int value: '1.5'"),
])
def test_bad_flags_are_refused_before_anything_opens(small_run, tmp_path, capsys, argv, needle):
    video, gate, seg = small_run
    code, err = _run_cli(["replay", str(video), "--out", str(tmp_path / "o" / "r.avi"), "--gate", str(gate),
                          "--seg", str(seg), *argv], capsys)
    assert code == 2 and needle in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "o").exists()


def test_an_output_name_longer_than_the_system_allows_is_refused_in_one_line(small_run, tmp_path, capsys):
    video, gate, seg = small_run
    name = "x" * 250 + ".avi"  # fits NAME_MAX (255); its .config.yaml beside it does not
    code, err = _run_cli(["replay", str(video), "--out", str(tmp_path / name), "--gate", str(gate),
                          "--seg", str(seg), "--no-progress"], capsys)
    assert code == 2 and "too long" in err and len(err.strip().splitlines()) == 1, err
    assert list(tmp_path.iterdir()) == []


def test_a_reader_that_leaves_early_is_no_error(tmp_path):
    """``nerveseg info MODEL | head``: the pipe closes before the JSON is written."""
    child = subprocess.Popen([sys.executable, "-m", "nerveseg.commands.cli", "info",
                              str(ROOT / "samples" / "models" / "gate.onnx")],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT,
                             env={**os.environ, "PYTHONUNBUFFERED": "0"})
    child.stdout.close()  # the reader is gone before the child loads the engine
    err = child.stderr.read().decode()
    assert child.wait(timeout=60) == 141, err
    assert "Traceback" not in err and "BrokenPipe" not in err, err
