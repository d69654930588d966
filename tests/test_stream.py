"""A network stream end to end: this suite serves MPEG-TS over TCP on 127.0.0.1 itself
(PyAV muxing to ``tcp://127.0.0.1:PORT?listen=1`` in a child process), the pipeline
reads it live; the server is stopped mid-run ("no signal" within 1 s) and started again
(frames again), with the recording intact and nothing before the cut lost."""

from __future__ import annotations

import csv
import socket
import threading
import time

import pytest
from fault_fixtures import python_child, wait_for
from video_fixtures import count_frames

from nerveseg.engines.loader import load_engine
from nerveseg.realtime import config as cfg
from nerveseg.realtime.pipeline import Engines, NervePipeline
from nerveseg.realtime.sources import StreamSource, open_source
from nerveseg.realtime.sources.stream import is_stream, redact

SERVER = r"""
import sys, time
import av, numpy as np
port, width, height = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
with av.open(f"tcp://127.0.0.1:{port}?listen=1", "w", format="mpegts") as out:
    s = out.add_stream("mpeg2video", rate=25)
    s.width, s.height, s.pix_fmt = width, height, "yuv420p"
    s.codec_context.gop_size = 5
    s.codec_context.max_b_frames = 0
    print("serving", flush=True)
    start = time.monotonic()
    for i in range(100000):
        grey = np.full((height, width, 3), 40 + (i * 7) % 180, np.uint8)
        grey[:, width // 2 - 4: width // 2 + 4] = 250  # a bright band
        for packet in s.encode(av.VideoFrame.from_ndarray(grey, format="rgb24")):
            out.mux(packet)
        time.sleep(max(0.0, start + (i + 1) / 25 - time.monotonic()))
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def first_images(frames_of, n: int) -> list:
    """The images of the first ``n`` frames of ``frames_of(stop)`` (a source's ``frames`` or an
    operator's ``items``), then the stop set."""
    stop, images = threading.Event(), []
    for frame in frames_of(stop):
        images.append(frame.image)
        if len(images) == n:
            stop.set()
    return images


def serve(port: int, size=(320, 120)):
    server = python_child(SERVER, str(port), *map(str, size))
    return server


@pytest.fixture(scope="module")
def engines(tmp_path_factory):
    from engine_fixtures import make_gate, make_segmenter

    folder = tmp_path_factory.mktemp("engines")
    return Engines(load_engine(make_gate(folder / "gate.onnx"), task="classify"),
                   load_engine(make_segmenter(folder / "seg.onnx"), task="segment"))


def test_stream_specs_are_recognised_and_passwords_never_shown():
    for spec in ("rtsp://cam/1", "RTSPS://x", "rtmp://a/b", "http://h:8080/v.ts", "https://h/v", "tcp://1.2.3.4:5",
                 "udp://239.0.0.1:1234", "srt://h:9000"):
        assert is_stream(spec), spec
    for spec in ("0", "video.mp4", "/dev/video2", "file://x.mp4", "c:/x.mp4"):
        assert not is_stream(spec), spec
    assert redact("rtsp://admin:secret@10.0.0.9/stream1") == "rtsp://admin:***@10.0.0.9/stream1"
    source = open_source("tcp://127.0.0.1:9")
    assert isinstance(source, StreamSource) and source.live and source.name == "tcp://127.0.0.1:9"


def test_stream_lost_and_back_keeps_the_recording_and_says_no_signal_within_a_second(tmp_path, engines):
    port = free_port()
    server = serve(port)
    try:
        assert server.stdout.readline().strip() == "serving"
        config = cfg.from_dict({"source": {"spec": f"tcp://127.0.0.1:{port}", "live": True}})
        source = StreamSource(f"tcp://127.0.0.1:{port}", timeout=0.5, backoff=(0.1, 0.5))
        pipeline = NervePipeline(config, source=source, engines=engines, signal_timeout=0.5)
        states = []
        pipeline.subscribe_status(lambda s: states.append((time.monotonic(), s.state)))
        avi = tmp_path / "stream.avi"
        pipeline.start()
        pipeline.start_recording(avi)
        wait_for(lambda: pipeline.ops.record.frames >= 15, 20.0, "frames from the stream")
        before = pipeline.ops.record.frames

        n, cut = len(states), time.monotonic()
        server.kill()
        server.wait()
        said = wait_for(lambda: any(s == "no signal" for _, s in states[n:]), 3.0, "no signal")
        assert said - cut <= 1.0, f"no signal after {said - cut:.2f} s"

        server = serve(port, size=(352, 128))  # back, in another mode
        assert server.stdout.readline().strip() == "serving"
        n = len(states)
        wait_for(lambda: any(s == "ok" for _, s in states[n:]), 10.0, "frames again")
        wait_for(lambda: pipeline.ops.record.frames >= before + 10, 10.0, "frames recorded after the cut")
        pipeline.stop_recording()
        assert pipeline.close(3.0) and not pipeline.alive
    finally:
        server.kill()
        server.wait()
    recording_segments = sorted(tmp_path.glob("stream*.avi"))
    assert [p.name for p in recording_segments] == ["stream.avi", "stream.part2.avi"], "new size: a new segment"
    rows = list(csv.DictReader(avi.with_suffix(".csv").open()))
    assert sum(count_frames(p) for p in recording_segments) == len(rows) == pipeline.ops.record.frames
    assert count_frames(avi) >= before, "nothing recorded before the cut is lost"
    assert pipeline.source.reconnects >= 1 and pipeline.source.describe()["sizes"][:2] == ["320x120", "352x128"]


def test_a_stream_taller_than_max_height_is_reduced_as_it_is_converted(tmp_path):
    """``source.max_height`` on a network stream: its 4:2:0 frames reduced by the whole
    factor in their planes as they are converted, the bright band where it was; the
    summary's sizes say what the stream sent."""
    from nerveseg.realtime.stages import SourceOp

    port = free_port()
    server = serve(port, size=(640, 240))
    try:
        assert server.stdout.readline().strip() == "serving"
        source = StreamSource(f"tcp://127.0.0.1:{port}", timeout=0.5, backoff=(0.1, 0.5))
        op = SourceOp(source, max_height=120)
        assert op.at_source
        frames = first_images(op.items, 8)
    finally:
        server.kill()
        server.wait()
    assert all(f.shape == (120, 320, 3) for f in frames)
    # the 8-px bright band (250) at the middle, 4 px wide at half the width (the grey around
    # it changes from frame to frame, up to 219)
    assert frames[-1][:, 158:162].astype(int).mean() > 235
    assert op.reduced_from == (240, 640) and source.describe()["sizes"] == ["640x240"]
