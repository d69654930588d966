"""A full disk at any moment of a replay, on a real small file system (a tmpfs mounted
for the test: it needs root, and is skipped where mounting is not allowed). Whatever
the moment: no traceback, the summary printed, every file readable, CSV rows whole,
the JSON summary whole or absent, no temporary file left."""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from nerveseg.commands.cli import main
from video_fixtures import count_frames, write_video


@pytest.fixture
def small_disk(tmp_path, request):
    """A tmpfs of ``request.param`` bytes, mounted under ``tmp_path``."""
    where = tmp_path / "disk"
    where.mkdir()
    mount, umount = shutil.which("mount"), shutil.which("umount")
    if mount is None or umount is None or os.geteuid() != 0:
        pytest.skip("mounting a small file system needs root and mount(8)")
    result = subprocess.run([mount, "-t", "tmpfs", "-o", f"size={request.param}", "tmpfs", str(where)],
                            capture_output=True, text=True)
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {result.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run([umount, "-l", str(where)], check=False)


def _whole_rows(path: Path) -> int:
    """Rows of a CSV, checking that each one is whole (as many fields as the header,
    the file ending at a line end)."""
    data = path.read_bytes()
    assert data == b"" or data.endswith(b"\n"), "the CSV ends inside a row"
    rows = list(csv.reader(data.decode().splitlines()))
    assert all(len(row) == len(rows[0]) for row in rows), "a row of the CSV is cut"
    return max(0, len(rows) - 1)


# From "no room for the resolved config" to "the summary does not fit at the end".
@pytest.mark.parametrize("small_disk", ["4k", "16k", "48k", "96k", "200k", "400k"], indirect=True)
def test_a_full_disk_at_any_moment_stops_cleanly(small_disk, tmp_path, tiny_engines, capsys):
    video = write_video(tmp_path / "in.avi", frames=40, codec="mjpeg")
    out = small_disk / "r.avi"
    code = main(["replay", str(video), "--out", str(out), "--gate", str(tiny_engines[0]),
                 "--seg", str(tiny_engines[1]), "--no-progress"])
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    assert code in (0, 1, 2), captured.err
    if code == 0:  # it all fitted: nothing to prove at this size
        assert count_frames(out) == 40
        return
    assert "No space left on device" in captured.err
    if code == 1 and "frames " in captured.out:  # it ran: the summary table is printed
        assert "FPS" in captured.out
    leftovers = [p.name for p in small_disk.iterdir() if p.name.endswith(".tmp") or p.name.endswith(".part")]
    assert leftovers == []
    summary = out.with_suffix(".json")
    if summary.exists():
        json.loads(summary.read_text())  # whole, or not there at all
    if out.with_suffix(".csv").exists():
        _whole_rows(out.with_suffix(".csv"))
    stopped = re.search(r"recording stopped after (\d+) frames", captured.err)
    if out.exists():  # every frame it says it wrote plays (a half-written last one may too)
        assert stopped is not None and count_frames(out) >= int(stopped[1]) > 0
    wrote = next((line for line in captured.out.splitlines() if line.startswith("wrote ")), "wrote nothing")
    for name in re.findall(r"(\S+\.(?:avi|csv|json))", wrote):
        assert Path(name).exists(), f"said it wrote {name}"
