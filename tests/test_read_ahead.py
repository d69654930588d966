"""A video file played at its rate is decoded ahead of its clock at the lowest priority
(``source.read_ahead_ms``, docs/SOURCES.md "Frames larger than the screen"): the picture
and inference go first, the frames read ahead carry the decoder through a stretch that
costs more than a frame's time. Real PyAV decoding, real reader threads, real OS
priorities (Linux)."""

from __future__ import annotations

import os
import threading
import time

import numpy as np
import pytest
from video_fixtures import write_video

from nerveseg.realtime import config as cfg
from nerveseg.realtime import priority
from nerveseg.realtime.sources import open_source
from nerveseg.realtime.sources import file as file_source
from nerveseg.realtime.sources.base import Pacer, reduce
from nerveseg.realtime.sources.file import IN_STEP, VideoFileSource
from nerveseg.realtime.stages import SourceOp


def _settled(read, timeout: float = 10.0) -> int:
    """``read()`` once it stops changing (checked every 0.2 s)."""
    last, deadline = read(), time.monotonic() + timeout
    while time.monotonic() < deadline:
        time.sleep(0.2)
        now = read()
        if now == last:
            return now
        last = now
    return last


@pytest.fixture
def video(tmp_path):
    return write_video(tmp_path / "in.mp4", frames=60, fps=30, height=120, width=320)


def test_a_paced_file_is_decoded_ahead_as_far_as_asked_and_no_further(video):
    """500 ms at 30 FPS: 15 frames decoded ahead while the consumer holds the first one;
    in step, no more than the two-frame queue; as fast as possible, never read ahead."""
    held = {}
    for name, source in (("ahead", VideoFileSource(video, pace=True, read_ahead_ms=500)),
                         ("in step", VideoFileSource(video, pace=True, read_ahead_ms=0)),
                         ("not paced", VideoFileSource(video, pace=False, read_ahead_ms=500))):
        stop = threading.Event()
        frames = source.frames(stop)
        first = next(frames)
        assert first.index == 0
        held[name] = _settled(lambda: source._decoded_count)
        stop.set()
        frames.close()
        held[name + " described"] = source.describe().get("read_ahead")
    # the frames read ahead (15), the one given, and the one the reader holds waiting to put
    assert 15 <= held["ahead"] <= 15 + 2
    assert held["in step"] <= 1 + IN_STEP + 1
    assert held["not paced"] <= 1 + IN_STEP + 1
    assert held["ahead described"]["frames"] == 15 and held["ahead described"]["ms"] == 500
    assert held["in step described"] is None and held["not paced described"] is None


def test_every_frame_read_ahead_comes_in_order_at_the_files_rate(video):
    """Reading ahead changes when frames are decoded, not which or when they are given:
    all 60, in order, released one period apart (30 FPS) by the median."""
    source = VideoFileSource(video, pace=True, read_ahead_ms=1000)
    stop = threading.Event()
    frames = list(source.frames(stop))
    assert [f.index for f in frames] == list(range(60))
    gaps = np.diff([f.captured_ns for f in frames]) / 1e6
    assert abs(float(np.median(gaps)) - 1000 / 30) < 3.0
    assert "late" in source.describe()
    assert source.skipped == 0


@pytest.mark.skipif(not priority.SUPPORTED, reason="per-thread priorities are Linux's")
def test_the_decoder_reading_ahead_and_the_threads_it_starts_run_at_the_lowest_priority(video):
    """The reader lowers itself before FFmpeg starts its decoding threads, which take its
    priority; in step, the decoder keeps the process's."""
    base = os.getpriority(os.PRIO_PROCESS, os.getpid())
    for read_ahead_ms, expected in ((500, min(19, base + file_source.DECODER_NICE)), (0, base)):
        before = priority.thread_ids()
        source = VideoFileSource(video, pace=True, read_ahead_ms=read_ahead_ms, decoder_threads=2)
        stop = threading.Event()
        frames = source.frames(stop)
        next(frames)
        started = priority.thread_ids() - before
        nices = {tid: priority.thread_nice(tid) for tid in started}
        stop.set()
        frames.close()
        nices = {tid: n for tid, n in nices.items() if n is not None}  # a thread that ended since
        assert nices, "the reader and its decoder threads"
        assert set(nices.values()) == {expected}, nices
        assert (source.lead or {}).get("lowered", False) == bool(read_ahead_ms)


def test_frames_read_ahead_are_held_at_the_reduced_size_and_match_the_pipelines_reduction(tmp_path):
    """``source.max_height`` on a file: reduced in the reader thread (so 4K frames read
    ahead are held at the size shown: more of them fit the memory cap). A whole factor of a
    4:2:0 file is reduced in its planes before the colour conversion: the picture the
    pipeline's own reduction of the converted frame gives, within a grey level on average;
    any other height is that reduction exactly. The pipeline's summary says so."""
    video = write_video(tmp_path / "big.mp4", frames=8, fps=30, height=480, width=960)
    whole = [f.image for f in VideoFileSource(video).frames(threading.Event())]
    for max_height, exact in ((240, False), (200, True)):
        source = VideoFileSource(video, pace=True, read_ahead_ms=1000)
        op = SourceOp(source, max_height=max_height)
        assert op.at_source
        reduced = [f.image for f in op.items(threading.Event())]
        expected = [reduce(w, max_height) for w in whole]
        assert len(reduced) == 8 and all(r.shape == e.shape for r, e in zip(reduced, expected))
        assert reduced[0].shape[0] == max_height
        for r, e in zip(reduced, expected):
            diff = np.abs(r.astype(int) - e)
            if exact:
                assert not diff.any()
            else:
                assert diff.mean() < 1.0 and np.percentile(diff, 99) <= 8, (diff.mean(), np.percentile(diff, 99))
        assert op.reduced_from == (480, 960)
        h, w = reduced[0].shape[:2]
        assert source.lead["mb"] == pytest.approx(source.lead["frames"] * h * w * 3 / 2**20, abs=0.1)


def test_a_420_frame_is_reduced_in_its_planes_by_whole_factors_only():
    """Flat blocks of colour (16x16 each) reduced by 2 in the planes and converted: inside
    each block the same colours as converting whole and reducing (at the blocks' edges the
    chroma is blended in another order); no whole factor, or another pixel format: None,
    for the caller's reduction."""
    import av

    from nerveseg.realtime.sources.rgb import reduce_420

    rng = np.random.default_rng(3)
    blocks = rng.integers(16, 240, (8, 10, 3), dtype=np.uint8)
    image = np.repeat(np.repeat(blocks, 16, axis=0), 16, axis=1)  # 128 x 160
    frame = av.VideoFrame.from_ndarray(image, format="rgb24").reformat(format="yuv420p")
    small = reduce_420(frame, 64)
    assert (small.height, small.width, small.format.name) == (64, 80, "yuv420p")
    converted = small.to_ndarray(format="rgb24").astype(int)
    direct = reduce(frame.to_ndarray(format="rgb24"), 64)
    yy, xx = np.mgrid[:64, :80]
    inside = (yy % 8 >= 2) & (yy % 8 < 6) & (xx % 8 >= 2) & (xx % 8 < 6)
    assert np.abs(converted - direct)[inside].max() <= 3
    assert np.abs(converted - direct).mean() < 3
    assert reduce_420(frame, 50) is None  # 128 / 50: no whole factor
    assert reduce_420(frame.reformat(format="yuv444p"), 60) is None


def test_the_lead_is_capped_by_memory(video, monkeypatch):
    """A second of 4K frames is 750 MB: the lead is as many frames as fit the cap, and
    never fewer than the two of decoding in step."""
    source = VideoFileSource(video, pace=True, read_ahead_ms=1000)
    assert source._depth() == 30
    frame_mb = 120 * 320 * 3 / 2**20
    monkeypatch.setattr(file_source, "READ_AHEAD_MB", 10 * frame_mb)
    assert source._depth() == 10
    monkeypatch.setattr(file_source, "READ_AHEAD_MB", 0)
    assert source._depth() == IN_STEP


def test_the_pacer_counts_the_times_it_fell_behind():
    pacer, stop = Pacer(100.0), threading.Event()
    pacer.wait(stop)
    pacer.wait(stop)  # on time
    time.sleep(0.05)  # five periods late: re-anchored, counted once
    pacer.wait(stop)
    pacer.wait(stop)
    assert pacer.late == 1


def test_read_ahead_reaches_the_file_source_from_the_config(video, tmp_path):
    """The YAML key opens the file with it; a value out of range is refused with its key."""
    source = open_source(str(video), pace=True, read_ahead_ms=250)
    assert isinstance(source, VideoFileSource) and source.read_ahead_ms == 250
    assert cfg.load(None, {}).source.read_ahead_ms == 1000
    bad = tmp_path / "bad.yaml"
    bad.write_text("source:\n  read_ahead_ms: -5\n")
    with pytest.raises(Exception) as caught:
        cfg.load(bad)
    assert "read_ahead_ms" in str(caught.value) and "-5" in str(caught.value)
