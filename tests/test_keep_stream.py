"""``replay IN --out OUT.mkv``: the input's video stream copied packet for packet (no
re-encoding: its pixels are the input's by construction) beside a lossless mask track,
with the engines' provenance; the annotated AVI as an option. Real PyAV demux, decode and
mux, real ONNX Runtime engines, real pipeline threads."""

from __future__ import annotations

import csv
import hashlib
import json

import av
import numpy as np
import pytest
from video_fixtures import write_video

from nerveseg.commands.cli import main


def _packets(path, index: int = 0) -> list[bytes]:
    with av.open(str(path)) as container:
        stream = container.streams.video[index]
        return [bytes(p) for p in container.demux(stream) if p.size]


def _frames(path, index: int = 0, fmt: str = "rgb24") -> list[tuple[float, np.ndarray]]:
    with av.open(str(path)) as container:
        stream = container.streams.video[index]
        return [(float(f.time), f.to_ndarray(format=fmt)) for f in container.decode(stream)]


def _tag(container, key: str) -> str | None:
    return next((v for k, v in container.metadata.items() if k.lower() == key), None)


@pytest.fixture
def replayed(tmp_path, tiny_engines):
    """A 16-frame H.264 stereo clip (every second frame nerve) replayed to OUT.mkv, and the
    same clip to an annotated AVI for comparison."""
    video = write_video(tmp_path / "in.mp4", frames=16, fps=24, nerve_every=2, codec="h264")
    engines = ["--gate", str(tiny_engines[0]), "--seg", str(tiny_engines[1]), "--no-progress"]
    mkv = tmp_path / "out.mkv"
    code = main(["replay", str(video), "--out", str(mkv), *engines])
    return video, mkv, code, engines


def test_the_input_stream_is_copied_untouched_and_decodes_to_the_same_pictures(replayed):
    video, mkv, code, _ = replayed
    assert code == 0 and mkv.is_file()
    assert _packets(mkv, 0) == _packets(video, 0)  # byte for byte, every packet
    original, kept = _frames(video), _frames(mkv, 0)
    assert len(kept) == len(original) == 16
    assert all(np.array_equal(a, b) for (_, a), (_, b) in zip(original, kept))
    assert not list(mkv.parent.glob(".out*"))  # no partial file left behind


def test_the_mask_track_holds_each_frames_mask_at_its_time(replayed):
    """One grey picture of the view per frame, 0/255 only, as many nerve pixels as the
    CSV's mask fraction of the view, none on frames the gate did not call nerve; each at
    its video frame's time; the track says where the view lies in the frame (the left
    eye of the side-by-side frame)."""
    video, mkv, _, _ = replayed
    masks, pictures = _frames(mkv, 1, "gray"), _frames(mkv, 0)
    assert len(masks) == 16
    assert [round(t, 3) for t, _ in masks] == [round(t, 3) for t, _ in pictures]
    with av.open(str(mkv)) as container:
        tag = _tag(container.streams.video[1], "box")  # Matroska gives its tags' names in capitals
        box = dict(kv.split("=") for kv in tag.split(" in ")[0].split())
    x0, y0, x1, y1 = (int(box[k]) for k in ("x0", "y0", "x1", "y1"))
    frame_h, frame_w = pictures[0][1].shape[:2]
    assert 0 <= x0 < x1 <= frame_w // 2 and 0 <= y0 < y1 <= frame_h  # inside the left eye
    rows = list(csv.DictReader(open(mkv.with_suffix(".csv"))))
    assert len(rows) == 16
    masked = 0
    for (_, mask), row in zip(masks, rows):
        assert set(np.unique(mask)) <= {0, 255}
        assert mask.shape == (y1 - y0, x1 - x0)
        area = int((mask == 255).sum())
        assert area == pytest.approx(float(row["mask_fraction"]) * mask.size, abs=1)
        if row["segmented"] != "True":
            assert area == 0, row
        masked += area > 0
    assert masked >= 4


def test_the_file_says_which_engines_made_it(replayed, tiny_engines):
    from nerveseg.engines.metadata import file_sha256

    _, mkv, _, _ = replayed
    with av.open(str(mkv)) as container:
        comment = json.loads(_tag(container, "comment"))
        titles = [s.metadata.get("title", "") for s in container.streams.video]
    gate = comment["nerveseg"]["gate"]
    assert gate["sha256"] == file_sha256(tiny_engines[0])
    assert {"model", "classes", "input_size"} <= set(gate)
    assert "copied" in titles[0] and "mask" in titles[1]
    summary = json.loads(mkv.with_suffix(".json").read_text())
    assert summary["frames"] == 16 and summary["recorded_frames"] == 0  # nothing re-encoded


def test_the_annotated_avi_is_an_option(tmp_path, replayed):
    video, _, _, engines = replayed
    mkv, avi = tmp_path / "both.mkv", tmp_path / "both.avi"
    assert main(["replay", str(video), "--out", str(mkv), "--avi", str(avi), *engines]) == 0
    assert mkv.is_file() and avi.is_file()
    with av.open(str(avi)) as container:
        assert container.streams.video[0].frames in (0, 16) and len(_frames(avi)) == 16
    assert _packets(mkv, 0) == _packets(video, 0)


@pytest.mark.parametrize("what, says", [
    ("folder", "give a video file, not a folder"),
    ("avi_out", "--avi goes with --out OUT.mkv"),
    ("bad_suffix", "must be an .avi file (annotated) or an .mkv file"),
    ("input_as_out", "would overwrite the input"),
])
def test_wrong_mkv_requests_are_one_line(tmp_path, tiny_engines, capsys, what, says):
    video = write_video(tmp_path / "in.mkv", frames=4, fps=24)
    folder = tmp_path / "frames"
    folder.mkdir()
    argv = {"folder": [str(folder), "--out", str(tmp_path / "o.mkv")],
            "avi_out": [str(video), "--out", str(tmp_path / "o.avi"), "--avi", str(tmp_path / "x.avi")],
            "bad_suffix": [str(video), "--out", str(tmp_path / "o.mp4")],
            "input_as_out": [str(video), "--out", str(video)]}[what]
    before = hashlib.sha256(video.read_bytes()).hexdigest()
    code = main(["replay", *argv, "--gate", str(tiny_engines[0]), "--seg", str(tiny_engines[1]), "--no-progress"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and says in err[0], err
    assert hashlib.sha256(video.read_bytes()).hexdigest() == before


def test_a_truncated_input_keeps_every_packet_it_has_and_the_masks_of_every_frame_decoded(tmp_path, tiny_engines,
                                                                                          capsys):
    """Cut at 60 %: the run says the input is damaged (exit 1) and the file still holds
    every packet the input has, and a mask for each frame that decoded."""
    video = write_video(tmp_path / "whole.mp4", frames=24, fps=24, nerve_every=2, codec="h264")
    cut = tmp_path / "cut.mkv"
    # a Matroska copy cut short: its clusters before the cut stay readable
    with av.open(str(video)) as src, av.open(str(cut), "w", format="matroska") as dst:
        out = dst.add_stream_from_template(src.streams.video[0])
        for packet in src.demux(src.streams.video[0]):
            if packet.size:
                packet.stream = out
                dst.mux(packet)
    data = cut.read_bytes()
    cut.write_bytes(data[: int(len(data) * 0.6)])
    mkv = tmp_path / "kept.mkv"
    code = main(["replay", str(cut), "--out", str(mkv), "--gate", str(tiny_engines[0]), "--seg",
                 str(tiny_engines[1]), "--no-progress"])
    assert code in (0, 1) and mkv.is_file()
    kept, has = _packets(mkv, 0), _packets(cut, 0)
    assert kept == has and 0 < len(has) < 24
    summary = json.loads(mkv.with_suffix(".json").read_text())
    assert len(_frames(mkv, 1, "gray")) == summary["frames"] > 0
