"""Damaged input: replay skips what cannot be decoded, counts and says it, keeps every
good frame, ends with a clear summary, and never hangs on a stalled decoder."""

from __future__ import annotations

import csv
import json
import threading
import time
from fractions import Fraction

import av
import pytest
from fault_fixtures import write_frames
from video_fixtures import count_frames, scribble, stereo_frame, write_video

from nerveseg.realtime import config as cfg
from nerveseg.commands.cli import main
from nerveseg.realtime.pipeline import NervePipeline
from nerveseg.realtime.stall import Stalled, with_deadline
from nerveseg.realtime.sources import VideoFileSource


def replay(tmp_path, video, engines, *extra):
    out = tmp_path / "out" / "replay.avi"
    code = main(["replay", str(video), "--out", str(out), "--gate", str(engines[0]), "--seg", str(engines[1]),
                 "--no-progress", *extra])
    return code, out


def test_corrupted_bytes_mid_file_skip_those_frames_and_keep_the_rest(tmp_path, tiny_engines, capsys):
    video = scribble(write_video(tmp_path / "clean.avi", frames=40, codec="mjpeg"), tmp_path / "damaged.avi")
    good = count_frames(video)
    assert 30 < good < 40
    code, out = replay(tmp_path, video, tiny_engines)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1
    assert f"damaged.avi: damaged input: {40 - good} undecodable frame(s) skipped" in err[-1], err
    assert count_frames(out) == good, "every good frame is kept"
    assert len(list(csv.DictReader(out.with_suffix(".csv").open()))) == good
    summary = json.loads(out.with_suffix(".json").read_text())
    assert summary["source"]["skipped"] == 40 - good and summary["frames"] == good


def test_corrupted_inter_coded_file_ends_and_keeps_what_decodes(tmp_path, tiny_engines, capsys):
    """MPEG-4 part 2 with damage: FFmpeg conceals what it can; the replay ends, keeps
    every frame FFmpeg gives, and says the input was damaged."""
    video = scribble(write_video(tmp_path / "clean.mp4", frames=48), tmp_path / "damaged.mp4", at=(0.5,), length=400)
    code, out = replay(tmp_path, video, tiny_engines)
    assert code == 1 and "damaged.mp4: damaged input" in capsys.readouterr().err
    assert count_frames(out) == count_frames(video) > 40


def _header_only_avi(path):
    """What a recording killed before its first frame leaves: an AVI header, no frames."""
    full = write_video(path.with_suffix(".full.avi"), frames=4, codec="mjpeg").read_bytes()
    path.write_bytes(full[:full.index(b"movi") + 4])
    return path


@pytest.mark.parametrize("name, make, expected", [
    ("zero.mp4", lambda p: p.write_bytes(b""), "zero.mp4: not a readable video"),
    ("text.avi", lambda p: p.write_text("not a video at all\n" * 50), "text.avi: not a readable video"),
    ("cut.mp4", lambda p: p.write_bytes(write_video(p.with_suffix(".full.mp4"), frames=12).read_bytes()[:3000]),
     "cut.mp4: not a readable video"),
    ("audio.wav", lambda p: _wav(p), "audio.wav: file has no video stream"),
])
def test_unreadable_file_is_refused_at_start_with_one_line(tmp_path, tiny_engines, name, make, expected, capsys):
    """An MP4 cut short has lost its index (``moov``) with the end: nothing to decode."""
    make(tmp_path / name)
    code, out = replay(tmp_path, tmp_path / name, tiny_engines)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and expected in err[0], err
    assert not out.exists()


def _wav(path):
    import wave

    with wave.open(str(path), "wb") as w:
        w.setnchannels(1), w.setsampwidth(2), w.setframerate(8000)
        w.writeframes(b"\x00\x00" * 800)


def test_file_without_a_single_frame_says_so(tmp_path, tiny_engines, capsys):
    code, out = replay(tmp_path, _header_only_avi(tmp_path / "empty.avi"), tiny_engines)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and "empty.avi: no decodable frame" in err[-1], err


def _ts(path, frames, height, width, first=0):
    with av.open(str(path), "w", format="mpegts") as container:
        stream = container.add_stream("mpeg2video", rate=24)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for i in range(first, first + frames):
            for packet in stream.encode(av.VideoFrame.from_ndarray(stereo_frame(i, height, width), format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def test_resolution_change_mid_stream_keeps_every_frame(tmp_path, tiny_engines):
    """Two MPEG-TS streams of different sizes back to back (as a capture card that
    switches mode writes them): every decodable frame is annotated and recorded, the
    second size in a new segment of the recording (never stretched to the first)."""
    joined = tmp_path / "joined.ts"
    joined.write_bytes(_ts(tmp_path / "a.ts", 12, 240, 640).read_bytes()
                       + _ts(tmp_path / "b.ts", 12, 360, 960, first=12).read_bytes())
    sizes = set()
    with av.open(str(joined)) as container:
        sizes = {(f.height, f.width) for f in container.decode(video=0)}
    assert sizes == {(240, 640), (360, 960)}
    code, out = replay(tmp_path, joined, tiny_engines)
    second = out.with_name(f"{out.stem}.part2.avi")
    assert count_frames(out) + count_frames(second) == count_frames(joined) >= 22
    rows = list(csv.DictReader(out.with_suffix(".csv").open()))
    assert len(rows) == count_frames(joined) and all(r["status"] == "ok" for r in rows)
    summary = json.loads(out.with_suffix(".json").read_text())
    assert summary["recordings"] == [str(out), str(second)]
    for segment, size in ((out, (240, 240)), (second, (360, 360))):  # the left eye, whole, of each mode
        with av.open(str(segment)) as container:
            assert {(f.height, f.width) for f in container.decode(video=0)} == {size}
    assert code in (0, 1)  # the splice may cost the first stream's last frame: that is said, not hidden


def test_variable_frame_rate_keeps_every_frame_and_its_own_time(tmp_path, tiny_engines):
    """A Matroska file whose frames come 10 to 80 ms apart (and whose container gives
    its 1 kHz time base as the rate): every frame kept, each with its own time in the
    CSV, and a sane rate for the recording."""
    steps_ms = [20, 33, 80, 10]
    video = tmp_path / "vfr.mkv"
    times = []
    with av.open(str(video), "w") as container:
        stream = container.add_stream("mpeg4", rate=1000)
        stream.width, stream.height, stream.pix_fmt = 640, 240, "yuv420p"
        t = 0
        for i in range(30):
            frame = av.VideoFrame.from_ndarray(stereo_frame(i), format="rgb24")
            frame.pts, frame.time_base = t, Fraction(1, 1000)
            times.append(t / 1000)
            t += steps_ms[i % 4]
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    source = VideoFileSource(video)
    assert 10 < source.fps < 60, f"implausible rate {source.fps}"
    code, out = replay(tmp_path, video, tiny_engines)
    assert code == 0 and count_frames(out) == 30
    rows = list(csv.DictReader(out.with_suffix(".csv").open()))
    assert [float(r["pts_s"]) for r in rows] == pytest.approx(times, abs=1e-3)
    with av.open(str(out)) as container:
        assert 10 < float(container.streams.video[0].average_rate) < 60


class StallingSource(VideoFileSource):
    """A file whose decoder stops answering after ``good`` frames (as on a hung network
    share): the reads block until the test lets go."""

    def __init__(self, path, good, **kwargs):
        super().__init__(path, **kwargs)
        self.good, self.release = good, threading.Event()

    def _decoded(self, halt):
        for n, item in enumerate(super()._decoded(halt)):
            if n == self.good:
                self.release.wait(30)
                return
            yield item


def test_a_stalled_decoder_ends_the_replay_with_what_was_decoded(tmp_path, tiny_engines):
    video = write_video(tmp_path / "in.mp4", frames=24)
    source = StallingSource(video, good=6, stall_timeout=0.5)
    config = cfg.from_dict({"source": {"spec": str(video)}, "gate": {"engine": str(tiny_engines[0])},
                            "segment": {"engine": str(tiny_engines[1])},
                            "record": {"path": str(tmp_path / "out.avi")}})
    pipeline = NervePipeline(config, source=source)
    t0 = time.monotonic()
    summary = pipeline.run()
    try:
        assert time.monotonic() - t0 < 3.0, "the deadline ends the replay"
        assert "decoding stalled" in summary["source"]["ended_early"]
        assert summary["frames"] == summary["recorded_frames"] == 6 == count_frames(tmp_path / "out.avi")
        assert not pipeline.alive
    finally:
        source.release.set()


def test_deadline_reader_stops_promptly_and_passes_errors_on():
    stop = threading.Event()

    def endless(halt):
        while not halt.is_set():
            yield 1

    items = with_deadline(endless, stop, timeout=5.0)
    assert next(items) == 1
    stop.set()
    t0 = time.monotonic()
    assert list(items) == []
    assert time.monotonic() - t0 < 1.0

    def broken(halt):
        yield 1
        raise ValueError("bad packet")

    with pytest.raises(ValueError, match="bad packet"):
        list(with_deadline(broken, threading.Event(), timeout=5.0))

    def stuck(halt):
        yield 1
        time.sleep(2)
        yield 2

    with pytest.raises(Stalled, match="no frame decoded for 0.3 s"):
        list(with_deadline(stuck, threading.Event(), timeout=0.3))
