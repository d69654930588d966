"""Outputs never overwrite inputs (resolved path and file identity: hard links,
symbolic links) and never replace an existing file unless ``--exist-ok`` says so; one
line, exit 2, the input byte for byte as it was. Real commands, run in process."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from nerveseg.engines import outputs
from nerveseg.commands.cli import main
from video_fixtures import count_frames, write_video


def _digest(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _other_name(kind: str, video: Path, tmp: Path) -> Path:
    """A second name for ``video``: the same path, a hard link, a symlink, a ``..`` detour."""
    if kind == "same path":
        return video
    if kind == "hard link":
        os.link(video, tmp / "link.avi")
        return tmp / "link.avi"
    if kind == "symlink":
        (tmp / "sym.avi").symlink_to(video)
        return tmp / "sym.avi"
    (tmp / "sub").mkdir()
    return tmp / "sub" / ".." / video.name


NAMES = ["same path", "hard link", "symlink", "dotdot"]


def _engines(e):
    return ["--gate", str(e[0]), "--seg", str(e[1])]


def _refused(code: int, capsys, *needles: str) -> str:
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    for needle in needles:
        assert needle in err, err
    return err


@pytest.mark.parametrize("kind", NAMES)
def test_replay_out_naming_its_input_by_any_name_is_refused(tmp_path, tiny_engines, kind, capsys):
    video = write_video(tmp_path / "clip.avi", frames=6)
    before = _digest(video)
    out = _other_name(kind, video, tmp_path)
    for extra in ([], ["--exist-ok"]):  # --exist-ok never lets an input be replaced
        code = main(["replay", str(video), "--out", str(out), *_engines(tiny_engines), "--no-progress", *extra])
        _refused(code, capsys, "would overwrite the input")
    assert _digest(video) == before and count_frames(video) == 6
    assert not (tmp_path / "clip.csv").exists() and not (tmp_path / "clip.config.yaml").exists()


@pytest.mark.parametrize("kind", ["hard link", "symlink"])
def test_live_recording_onto_its_source_is_refused(tmp_path, tiny_engines, kind, capsys):
    video = write_video(tmp_path / "clip.avi", frames=6)
    before = _digest(video)
    code = main(["run", "--source", str(video), "--record", str(_other_name(kind, video, tmp_path)),
                 *_engines(tiny_engines), "--duration", "1"])
    _refused(code, capsys, "would overwrite the input")
    assert _digest(video) == before


def test_an_output_derived_from_another_name_is_checked_too(tmp_path, tiny_engines, capsys):
    """``--out clip.avi`` writes ``clip.config.yaml`` and ``clip.csv`` beside it: when one
    of them is an input (here the config given with --config), the run is refused."""
    video = write_video(tmp_path / "in.mp4", frames=4)
    config = tmp_path / "clip.config.yaml"
    config.write_text("queue_capacity: 2\n")
    code = main(["replay", str(video), "--out", str(tmp_path / "clip.avi"), "--config", str(config),
                 *_engines(tiny_engines), "--no-progress"])
    _refused(code, capsys, "clip.config.yaml", "would overwrite the input")
    assert config.read_text() == "queue_capacity: 2\n" and not (tmp_path / "clip.avi").exists()


def test_an_engine_named_in_the_yaml_is_an_input(tmp_path, tiny_engines, capsys):
    video = write_video(tmp_path / "in.mp4", frames=4)
    config = tmp_path / "run.yaml"
    log = tmp_path / "log.csv"
    os.link(tiny_engines[0], log)  # the per-frame log would be the gate engine itself
    before = _digest(tiny_engines[0])
    config.write_text(f"gate:\n  engine: {tiny_engines[0]}\nsegment:\n  engine: {tiny_engines[1]}\n")
    # --exist-ok: past the "exists" check, the engine named only in the YAML still stops it.
    code = main(["run", "--source", str(video), "--config", str(config), "--log", str(log), "--duration", "1",
                 "--exist-ok"])
    _refused(code, capsys, "would overwrite the input", "gate.onnx")
    assert _digest(tiny_engines[0]) == before


def test_existing_output_is_refused_unless_exist_ok(tmp_path, tiny_engines, capsys):
    video = write_video(tmp_path / "in.mp4", frames=4)
    out = tmp_path / "out.avi"
    out.write_bytes(b"an earlier recording")
    argv = ["replay", str(video), "--out", str(out), *_engines(tiny_engines), "--no-progress"]
    _refused(main(argv), capsys, "out.avi: exists", "--exist-ok")
    assert out.read_bytes() == b"an earlier recording"
    assert main(argv + ["--exist-ok"]) == 0
    assert count_frames(out) == 4
    # The files beside it are outputs too: a second run needs --exist-ok for them.
    out.unlink()
    _refused(main(argv), capsys, "exists")


def test_repair_never_writes_onto_its_input_unless_in_place(tmp_path, capsys):
    video = write_video(tmp_path / "rec.avi", frames=5)
    before = _digest(video)
    os.link(video, tmp_path / "same.avi")
    _refused(main(["repair", str(video), "--out", str(tmp_path / "same.avi")]), capsys, "would overwrite the input")
    (tmp_path / "rec.repaired.avi").write_bytes(b"x")
    _refused(main(["repair", str(video)]), capsys, "rec.repaired.avi: exists")
    assert _digest(video) == before
    assert main(["repair", str(video), "--in-place"]) == 0  # the one asked-for replacement
    assert count_frames(video) == 5


def test_an_output_folder_that_is_an_input_or_holds_files_is_refused(tmp_path, capsys):
    data = tmp_path / "data"
    (data / "nerve").mkdir(parents=True)
    (data / "nerve" / "a.png").write_bytes(b"")
    _refused(main(["data", "split", str(data), "--out", str(tmp_path / "x" / ".." / "data")]),
             capsys, "is the input")
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "keep.txt").write_text("mine")
    _refused(main(["synth", "segment", str(busy)]), capsys, "holds files already", "--exist-ok")
    assert (busy / "keep.txt").read_text() == "mine"


def test_same_file_sees_through_links_and_detours(tmp_path):
    a = tmp_path / "a.bin"
    a.write_bytes(b"1")
    os.link(a, tmp_path / "hard.bin")
    (tmp_path / "soft.bin").symlink_to(a)
    assert outputs.same_file(a, tmp_path / "hard.bin")
    assert outputs.same_file(a, tmp_path / "soft.bin")
    assert outputs.same_file(a, tmp_path / "." / "a.bin")
    (tmp_path / "b.bin").write_bytes(b"1")
    assert not outputs.same_file(a, tmp_path / "b.bin")
    assert not outputs.same_file(a, tmp_path / "missing.bin")


def test_summary_json_is_replaced_whole_or_not_at_all(tmp_path, monkeypatch):
    path = tmp_path / "summary.json"
    path.write_text('{"old": true}')

    def full_disk(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", full_disk)
    with pytest.raises(OSError):
        outputs.write_text_atomic(path, '{"new": true}')
    assert path.read_text() == '{"old": true}'
    assert [p.name for p in tmp_path.iterdir()] == ["summary.json"]  # no temporary file left
