"""What a user types as a source, as it comes: a ``file://`` URL copied from a browser or a
file manager is the file it names (and guarded as an input like any path); a URL of a
scheme nothing reads (``rtp://``, ``smb://``) is refused in one line that names the
schemes read, never mistaken for a file name (it was: "rtp:/239.0.0.1:5004: video file not
found"); a command that needs a recorded video refuses a stream or a camera. The same rule
for every command and for the YAML's ``source.spec``."""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import quote

import pytest
from video_fixtures import write_video

from nerveseg.commands.cli import main
from nerveseg.engines.errors import UserError
from nerveseg.realtime.sources import SCHEMES, normalise_spec, open_source, video_file_arg
from nerveseg.realtime.sources.stream import is_stream


def run_cli(argv: list[str]) -> int:
    try:
        return main(argv)
    except SystemExit as exc:  # argparse's own refusal of a flag's value
        return exc.code


def file_url(path: Path) -> str:
    return "file://" + quote(str(path.absolute()))


def test_a_file_url_is_the_file_it_names(tmp_path):
    path = tmp_path / "a case" / "left eye #1.mp4"
    assert normalise_spec(file_url(path)) == str(path.absolute())
    assert normalise_spec(f"  FILE://localhost{quote(str(path))}  ") == str(path)
    with pytest.raises(UserError, match="a file on another machine \\(nas\\); mount it and give its path"):
        normalise_spec("file://nas/cases/a.mp4")


@pytest.mark.parametrize("spec", ["rtp://239.0.0.1:5004", "smb://server/share/a.mp4", "ftp://h/a.mp4",
                                  "mms://h/live", "Srtp://h:1"])
def test_a_url_nothing_reads_is_refused_naming_the_schemes_that_are(spec):
    with pytest.raises(UserError) as caught:
        normalise_spec(spec)
    message = str(caught.value)
    assert message.startswith(f"{spec}: {spec.split(':')[0].lower()}:// is not a source nerveseg reads")
    assert all(f"{scheme}://" in message for scheme in SCHEMES) and "\n" not in message


def test_streams_paths_and_devices_pass_unchanged():
    for spec in ("RTSP://cam/1", "srt://h:9000", "udp://239.0.0.1:1234", "video.mp4", "/dev/video2", "0",
                 "c:/x.mp4", "folder/with://odd/name"):
        assert normalise_spec(spec) == spec
    assert is_stream("RTSP://cam/1") and not is_stream("folder/with://odd/name")


@pytest.mark.parametrize("argv, flag", [
    (["run", "--source", "rtp://239.0.0.1:5004", "--duration", "1"], "--source"),
    (["replay", "smb://server/share/a.mp4", "--out", "{tmp}/r.avi"], "input"),
    (["validate", "--video", "rtp://h:1", "--out", "{tmp}/v"], "--video"),
    (["extract", "ftp://h/a.mp4", "--out", "{tmp}/x"], "VIDEO"),
    (["bench", "mms://h/live", "--out", "{tmp}/b"], "video"),
])
def test_every_command_refuses_a_url_nothing_reads_in_one_line(argv, flag, tmp_path, capsys):
    code = run_cli([a.format(tmp=tmp_path) for a in argv])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1, err
    assert f"argument {flag}: " in err and "is not a source nerveseg reads" in err
    assert not any(tmp_path.iterdir()), "nothing written"


@pytest.mark.parametrize("argv, flag, what", [
    (["validate", "--video", "rtsp://cam/1", "--out", "{tmp}/v"], "--video", "stream"),
    (["extract", "0", "--out", "{tmp}/x"], "VIDEO", "camera"),
    (["bench", "/dev/video0", "--out", "{tmp}/b"], "video", "camera"),
])
def test_a_command_that_needs_a_recording_refuses_a_live_source(argv, flag, what, tmp_path, capsys):
    code = run_cli([a.format(tmp=tmp_path) for a in argv])
    err = capsys.readouterr().err.strip()
    assert code == 2 and f"argument {flag}: " in err and f"a recorded video is needed here, not a {what}" in err


def test_a_file_named_like_a_camera_index_is_still_a_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_video(tmp_path / "0.mp4", frames=2).rename(tmp_path / "0")
    assert video_file_arg("0") == Path("0")


def test_replay_reads_a_file_url_and_guards_the_file_as_its_input(tmp_path, tiny_engines, capsys):
    video = write_video(tmp_path / "a case.mp4", frames=6)
    engines = ["--gate", str(tiny_engines[0]), "--seg", str(tiny_engines[1]), "--no-progress"]
    out = tmp_path / "out.avi"
    assert main(["replay", file_url(video), "--out", str(out), *engines]) == 0
    assert json.loads(out.with_suffix(".json").read_text())["recorded_frames"] == 6
    before = video.read_bytes()
    code = main(["replay", file_url(video), "--out", str(video), "--exist-ok", *engines])
    err = capsys.readouterr().err
    assert code == 2 and f"{video}: the output would overwrite the input {video}" in err
    assert video.read_bytes() == before


def test_open_source_follows_the_same_rule(tmp_path):
    """The YAML's ``source.spec`` and the window's "open" reach the sources through here."""
    with pytest.raises(UserError, match="rtp:// is not a source nerveseg reads"):
        open_source("rtp://239.0.0.1:5004")
    video = write_video(tmp_path / "v.mp4", frames=2)
    assert Path(open_source(file_url(video)).name) == video
