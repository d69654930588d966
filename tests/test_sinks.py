"""The sinks package: one CSV writer for the run's log and every recording, records
copied whole, the JSON summary written whole or not at all."""

from __future__ import annotations

import csv
import json

import av
import numpy as np
import pytest

from nerveseg.engines.preprocess import Box
from nerveseg.realtime.frames import Frame, GateResult, Rendered, Segmentation, now_ns
from nerveseg.realtime.sinks import AviRecorder, CsvLog, Recording, write_summary

PROVENANCE = {"gate": {"sha256": "a" * 64}, "segment": {"sha256": "b" * 64}}


T0 = now_ns()


def rendered(i: int, marks=()) -> Rendered:
    """Frame ``i`` of a 30 fps source, captured 33 ms after the one before it."""
    image = np.full((64, 80, 3), 40 + i, np.uint8)
    t = T0 + i * 33_000_000
    frame = Frame(i, t, image, pts=i / 30)
    gate = GateResult(frame, image, Box(0, 0, 80, 64), image[None], "nerve", 0.9,
                      np.array([0.9, 0.05, 0.05], np.float32), True, (("gate", t, t + 1000),))
    seg = Segmentation(gate, np.zeros((64, 80), bool), gate.stamps)
    return Rendered(seg, image.copy(), Box(0, 0, 20, 10), seg.stamps, fps=30.0, extra={"k": i}, marks=marks)


def test_a_recording_keeps_every_field_and_adds_its_encode_stamp(tmp_path):
    recording = Recording(AviRecorder(tmp_path / "r.avi", 30.0), CsvLog(tmp_path / "r.csv", PROVENANCE))
    marks = (Box(1, 2, 10, 12),)
    original = rendered(0, marks)
    out = recording.write(original)
    recording.close()
    assert out.marks == marks and out.extra == {"k": 0} and out.fps == 30.0 and out.panel == original.panel
    assert out.stamps[:-1] == original.stamps and out.stamps[-1][0] == "encode"
    with av.open(str(tmp_path / "r.avi")) as container:
        assert sum(1 for _ in container.decode(video=0)) == 1


def test_the_log_and_a_recording_write_the_same_columns_from_the_same_origin(tmp_path):
    log = CsvLog(tmp_path / "log.csv", PROVENANCE)
    rec = Recording(AviRecorder(tmp_path / "r.avi", 30.0), CsvLog(tmp_path / "r.csv", PROVENANCE))
    log.open()
    for i in range(5):
        r = rendered(i)
        log.write_frame(r)
        if i >= 2:  # a recording started mid-run counts from its own first frame
            rec.write(r)
    log.close()
    rec.close()
    rows = {name: list(csv.DictReader(open(tmp_path / name))) for name in ("log.csv", "r.csv")}
    assert list(rows["log.csv"][0]) == list(rows["r.csv"][0])
    assert [float(r["capture_s"]) for r in rows["log.csv"]] == pytest.approx([0, 0.033, 0.066, 0.099, 0.132])
    assert [float(r["capture_s"]) for r in rows["r.csv"]] == pytest.approx([0, 0.033, 0.066])
    assert rows["r.csv"][0]["gate_sha256"] == "a" * 12


def test_a_pathless_log_makes_rows_without_a_file(tmp_path):
    log = CsvLog(None, PROVENANCE)
    log.open()
    row = log.write_frame(rendered(0))
    assert row["frame"] == 0 and log.rows == 0
    log.close()


def test_the_summary_is_written_whole_or_not_at_all(tmp_path):
    path = tmp_path / "s.json"
    write_summary(path, {"frames": 3})
    assert json.loads(path.read_text()) == {"frames": 3}

    class Unserialisable:
        def __str__(self):
            raise OSError(28, "No space left on device")

    with pytest.raises(OSError):
        write_summary(path, {"frames": Unserialisable()})
    assert json.loads(path.read_text()) == {"frames": 3}, "the earlier summary is untouched"
    assert [p.name for p in tmp_path.iterdir()] == ["s.json"], "no temporary file left behind"


def test_a_new_frame_size_starts_a_new_segment_and_nothing_is_stretched(tmp_path):
    """Every change of size starts the next segment, numbered from the first file's name,
    a return to an earlier size included (a capture card switching modes and back)."""
    recording = Recording(AviRecorder(tmp_path / "r.avi", 30.0), CsvLog(tmp_path / "r.csv", PROVENANCE))
    for i in range(3):
        recording.write(rendered(i))
    small = rendered(3)
    big = Rendered(small.seg, np.full((96, 128, 3), 90, np.uint8), None, small.stamps)
    wide = Rendered(small.seg, np.full((48, 160, 3), 30, np.uint8), None, small.stamps)
    for r, times in ((big, 2), (wide, 1), (small, 2)):
        for _ in range(times):
            recording.write(r)
    recording.close()
    expected = {"r.avi": (3, (64, 80)), "r.part2.avi": (2, (96, 128)), "r.part3.avi": (1, (48, 160)),
                "r.part4.avi": (2, (64, 80))}
    assert [s.path.name for s in recording.segments] == list(expected) and recording.frames == 8
    for name, (count, size) in expected.items():
        with av.open(str(tmp_path / name)) as container:
            frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
        assert len(frames) == count and frames[0].shape[:2] == size
    assert len(list(csv.DictReader(open(tmp_path / "r.csv")))) == 8, "one CSV across the segments"
