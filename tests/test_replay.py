"""Whole-file replay through real PyAV, real ONNX Runtime sessions and real threads."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import av
import numpy as np
import pytest
from video_fixtures import band_row, count_frames, pipeline_box, stereo_frame, write_video

from nerveseg.realtime import config as cfg
from nerveseg.commands.cli import main
from nerveseg.realtime.pipeline import NervePipeline


def replay(tmp_path, video, gate, seg, *extra):
    out = tmp_path / "out" / "replay.avi"
    code = main(["replay", str(video), "--out", str(out), "--gate", str(gate), "--seg", str(seg),
                 "--no-progress", *extra])
    return code, out


def decode_all(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]


def test_replay_keeps_every_frame_and_writes_csv_json_with_provenance(tmp_path, tiny_engines, capsys):
    video = write_video(tmp_path / "in.mp4", frames=36)
    code, out = replay(tmp_path, video, *tiny_engines)
    assert code == 0
    assert count_frames(out) == count_frames(video) == 36
    rows = list(csv.DictReader(out.with_suffix(".csv").open()))
    assert [int(r["frame"]) for r in rows] == list(range(36))
    assert {r["class"] for r in rows[::2]} == {"nerve"} and {r["class"] for r in rows[1::2]} == {"opening_wound"}
    assert all(r["segmented"] == "True" for r in rows[::2]) and all(r["segment_ms"] == "" for r in rows[1::2])
    gate_hash = rows[0]["gate_sha256"]
    assert len(gate_hash) == 12 and all(r["gate_sha256"] == gate_hash for r in rows)
    summary = json.loads(out.with_suffix(".json").read_text())
    assert summary["frames"] == 36 and summary["recorded_frames"] == 36 and summary["fps"] > 0
    for stage in ("decode", "preprocess", "gate", "segment", "overlay", "encode"):
        assert {"p50", "p95", "p99"} <= summary["stages_ms"][stage].keys()
    engines = summary["nerveseg"]["engines"]
    assert engines["gate"]["model"] == "tiny_gate" and engines["gate"]["sha256"].startswith(gate_hash)
    assert engines["segment"]["classes"] == ["background", "nerve"] and engines["segment"]["input_size"] == [32, 32]
    with av.open(str(out)) as container:
        comment = json.loads(container.metadata["comment"])
    assert comment["nerveseg"]["gate"]["sha256"] == engines["gate"]["sha256"]
    assert "FPS" in capsys.readouterr().out
    assert cfg.load(out.with_suffix(".config.yaml")).gate.engine == str(tiny_engines[0])


def test_mask_is_drawn_on_the_frame_it_came_from(tmp_path, tiny_engines):
    """The nerve band moves one row per frame: each recorded frame's tint must sit on
    that frame's band, never on a neighbour's."""
    video = write_video(tmp_path / "in.mp4", frames=20, nerve_every=1)
    code, out = replay(tmp_path, video, *tiny_engines, "--codec", "ffv1")
    assert code == 0
    box = pipeline_box(stereo_frame(0))
    for i, image in enumerate(decode_all(out)):
        middle = band_row(i) - box.y0 + 8  # middle of the band, in view pixels
        green = image[:, :, 1].astype(int) - image[:, :, 0].astype(int)
        column = green[:, image.shape[1] - 5]  # right edge: clear of the text panel
        assert column[middle] > 40, f"frame {i}: band not tinted"
        far = [r for r in range(image.shape[0]) if abs(r - middle) > 14]
        assert column[far].max() < 25, f"frame {i}: tint away from this frame's band"


def test_pixels_outside_the_overlay_equal_the_input(tmp_path, tiny_engines):
    """Outside the mask tint and the text panel, every displayed and recorded pixel is
    the input's; with the lossless codec the recording equals the displayed frame."""
    video = write_video(tmp_path / "in.mp4", frames=8, nerve_every=1)
    config = cfg.from_dict({"source": {"spec": str(video)}, "gate": {"engine": str(tiny_engines[0])},
                            "segment": {"engine": str(tiny_engines[1])},
                            "record": {"path": str(tmp_path / "lossless.avi"), "codec": "ffv1"}})
    pipeline = NervePipeline(config)
    shown = {}
    pipeline.subscribe(lambda r: shown.setdefault(r.index, r))
    pipeline.run()
    inputs, recorded = decode_all(video), decode_all(tmp_path / "lossless.avi")
    assert len(recorded) == 8 and shown
    for index, r in shown.items():
        view = r.seg.gate.box.slice(inputs[index])
        changed = (r.image != view).any(axis=2)
        allowed = r.seg.mask.copy()
        allowed[r.panel.y0:r.panel.y1, r.panel.x0:r.panel.x1] = True
        assert r.seg.mask.any() and changed[r.seg.mask].mean() > 0.9
        assert not (changed & ~allowed).any(), f"frame {index}: pixels changed outside the overlay"
        assert np.array_equal(recorded[index], r.image), f"frame {index}: recording differs from display"


def test_image_folder_replay(tmp_path, tiny_engines):
    import cv2

    folder = tmp_path / "images"
    folder.mkdir()
    for i in range(5):
        cv2.imwrite(str(folder / f"{i:03d}.png"), stereo_frame(i)[..., ::-1])
    (folder / "notes.txt").write_text("not an image")
    code, out = replay(tmp_path, folder, *tiny_engines)
    assert code == 0 and count_frames(out) == 5


def test_library_pipeline_runs_with_subscribers(tmp_path, tiny_engines):
    video = write_video(tmp_path / "in.mp4", frames=10)
    config = cfg.from_dict({"source": {"spec": str(video)}, "gate": {"engine": str(tiny_engines[0])},
                            "segment": {"engine": str(tiny_engines[1])}})
    pipeline = NervePipeline(config)
    seen = []
    pipeline.subscribe(lambda r: seen.append(r.index))
    summary = pipeline.run()
    assert summary["frames"] == 10 and summary["recorded_frames"] == 0
    assert seen and seen == sorted(seen)


def test_live_mode_drops_frames_but_not_the_newest(tmp_path, tiny_engines):
    """A paced source faster than a deliberately slow gate: the newest-frame policy
    drops and counts, latency stays bounded."""
    import time

    from nerveseg.engines.loader import load_engine
    from nerveseg.realtime.pipeline import Engines

    video = write_video(tmp_path / "in.mp4", frames=60, fps=60)
    gate = load_engine(tiny_engines[0], task="classify")
    original = gate.run
    gate.run = lambda batch: (time.sleep(0.05), original(batch))[1]
    config = cfg.from_dict({"source": {"spec": str(video), "pace": True, "live": True},
                            "record": {"path": str(tmp_path / "live.avi")}})
    pipeline = NervePipeline(config, engines=Engines(gate, load_engine(tiny_engines[1], task="segment")))
    summary = pipeline.run()
    assert summary["dropped"] > 0 and summary["frames"] + summary["dropped"] == 60
    assert summary["frames"] == count_frames(tmp_path / "live.avi")
    assert summary["latency_ms"]["p99"] < 500


BAD_CASES = {
    "missing video": lambda t, e: (["replay", str(t / "nope.mp4")], "nope.mp4: video file not found"),
    "not a video": lambda t, e: (["replay", _text(t / "fake.mp4")], "fake.mp4: not a readable video"),
    "empty folder": lambda t, e: (["replay", _dir(t / "empty")], "empty: no images in folder"),
    "missing engine": lambda t, e: (["replay", _vid(t), "--gate", str(t / "g.onnx")], "g.onnx: engine file not found"),
    "engine without metadata": lambda t, e: (["replay", _vid(t), "--gate", _nometa(t)], "has no nerveseg metadata"),
    "wrong task": lambda t, e: (["replay", _vid(t), "--gate", str(e[1])], "expected a 'classify' model"),
    "not onnx": lambda t, e: (["replay", _vid(t), "--gate", _text(t / "junk.onnx")], "junk.onnx: not a loadable ONNX"),
    "unwritable output": lambda t, e: (["replay", _vid(t), "--out", "/proc/nerveseg/x.avi"], "cannot write output"),
}


def _text(path):
    path.write_text("this is not media")
    return str(path)


def _dir(path):
    path.mkdir()
    return str(path)


def _vid(tmp):
    return str(write_video(tmp / "ok.mp4", frames=4))


def _nometa(tmp):
    from engine_fixtures import make_gate

    return str(make_gate(tmp / "nometa.onnx", meta=False))


@pytest.mark.parametrize("case", sorted(BAD_CASES))
def test_bad_input_gives_one_line_error_and_nonzero_exit(tmp_path, tiny_engines, case, capsys):
    argv, expected = BAD_CASES[case](tmp_path, tiny_engines)
    defaults = {"--out": str(tmp_path / "o.avi"), "--gate": str(tiny_engines[0]), "--seg": str(tiny_engines[1])}
    for flag, value in defaults.items():
        if flag not in argv:
            argv += [flag, value]
    code = main(argv + ["--no-progress"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code != 0
    assert len(err) == 1 and expected in err[0], err


def test_video_damaged_mid_stream_keeps_every_good_frame(tmp_path, tiny_engines, capsys):
    """Cut a file short mid-stream: the replay ends cleanly, the AVI is closed properly
    and holds every frame that could be decoded."""
    video = write_video(tmp_path / "in.avi", frames=40, codec="mjpeg")
    data = video.read_bytes()
    damaged = tmp_path / "damaged.avi"
    damaged.write_bytes(data[: int(len(data) * 0.6)])
    decodable = count_frames(damaged)
    assert 0 < decodable < 40
    code, out = replay(tmp_path, damaged, *tiny_engines)
    assert code != 0
    assert count_frames(out) == decodable
    assert "damaged.avi" in capsys.readouterr().err
