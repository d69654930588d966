"""Interlaced video (a 1080i capture card or recorder, an SDI encoder's stream): each frame
holds two fields half a frame period apart, so anything that moves is combed line by line.
Files and streams whose decoder marks a frame interlaced show it as its top field, the
lines between interpolated: no combing, the picture of one instant, counted in the summary;
progressive video is untouched. Real encodes (x264 interlaced, MPEG-2 field DCT), decoded
by FFmpeg through the sources the pipeline uses."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import av
import numpy as np
import pytest
from engine_fixtures import make_gate, make_segmenter
from test_stream import first_images, free_port
from fault_fixtures import python_child
from video_fixtures import write_video

from nerveseg.commands.cli import main
from nerveseg.realtime.sources import StreamSource, VideoFileSource
from nerveseg.realtime.sources.rgb import RgbConverter, bob, top_field

#: the encoders' options for an interlaced, top-field-first encode
INTERLACED = {"libx264": {"x264-params": "interlaced=1:tff=1", "crf": "8"},
              "mpeg2video": {"flags": "+ildct+ilme", "b": "12M"}}
LEVEL, BAR = 60, 230
SHIFT = 12  # how far the bar moves in the half frame period between the fields


def bar_x(i: int) -> int:
    return 40 + 16 * i


def interlaced_frame(i: int, height: int, width: int, level: int = LEVEL) -> np.ndarray:
    """The top field sees the bar at ``bar_x(i)``, the bottom field half a period later."""
    top = np.full((height, width, 3), level, np.uint8)
    bottom = top.copy()
    top[:, bar_x(i):bar_x(i) + 24] = BAR
    bottom[:, bar_x(i) + SHIFT:bar_x(i) + SHIFT + 24] = BAR
    top[1::2] = bottom[1::2]
    return top


def write_interlaced(path: Path, codec: str = "libx264", frames: int = 10, height: int = 240,
                     width: int = 640, pix_fmt: str = "yuv420p", level: int = LEVEL) -> Path:
    with av.open(str(path), "w") as out:
        s = out.add_stream(codec, rate=25)
        s.width, s.height, s.pix_fmt = width, height, pix_fmt
        s.options = INTERLACED[codec]
        for i in range(frames):
            picture = av.VideoFrame.from_ndarray(interlaced_frame(i, height, width, level), "rgb24")
            picture = picture.reformat(format=pix_fmt)
            for packet in s.encode(picture):
                out.mux(packet)
        for packet in s.encode():
            out.mux(packet)
    return path


def combing(image: np.ndarray) -> float:
    """Mean difference between each even line and the odd line below it."""
    a = image.astype(int)
    return float(np.abs(a[0:-1:2] - a[1::2]).mean())


def bar_columns(image: np.ndarray) -> tuple[int, int]:
    bright = np.where(image[image.shape[0] // 2, :, 1] > (LEVEL + BAR) / 2)[0]
    return int(bright[0]), int(bright[-1])


def file_frames(path: Path, max_height: int = 0) -> tuple[list[np.ndarray], dict]:
    source = VideoFileSource(path)
    source.reduce_to(max_height)
    images = [f.image for f in source.frames(threading.Event())]
    return images, source.describe()


@pytest.mark.parametrize("codec", sorted(INTERLACED))
def test_an_interlaced_file_is_shown_one_field_at_a_time(tmp_path, codec):
    video = write_interlaced(tmp_path / f"i.{'mp4' if codec == 'libx264' else 'ts'}", codec)
    with av.open(str(video)) as container:  # the premise: FFmpeg marks them, and they are combed
        raw = [f for f in container.decode(video=0)]
    assert all(f.interlaced_frame for f in raw)
    assert combing(raw[5].to_ndarray(format="rgb24")) > 3
    images, described = file_frames(video)
    assert described["deinterlaced"] == len(images) == 10
    for i, image in enumerate(images):
        assert image.shape == (240, 640, 3)
        assert combing(image) < 0.5, i
        left, right = bar_columns(image)  # where the top field saw it, not smeared to the bottom's
        assert abs(left - bar_x(i)) <= 2 and abs(right - (bar_x(i) + 23)) <= 2, (i, left, right)


@pytest.mark.parametrize("max_height, size", [(120, (120, 320)), (200, (200, 534))])
def test_an_interlaced_file_reduced_is_reduced_from_its_field(tmp_path, max_height, size):
    """At or under the field's rows the field itself is reduced; above, the interpolated frame."""
    images, described = file_frames(write_interlaced(tmp_path / "i.mp4"), max_height)
    assert described["deinterlaced"] == 10 and all(image.shape == (*size, 3) for image in images)
    scale = size[1] / 640
    for i, image in enumerate(images):
        assert combing(image) < 1.0, i
        left, _ = bar_columns(image)
        assert abs(left - bar_x(i) * scale) <= 2, (i, left)


def test_progressive_video_is_untouched(tmp_path):
    video = write_video(tmp_path / "p.mp4", frames=6)
    images, described = file_frames(video)
    assert described["deinterlaced"] == 0
    with av.open(str(video)) as container:
        plain = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    assert len(images) == len(plain) and all(np.array_equal(a, b) for a, b in zip(images, plain))


def test_bob_keeps_the_field_and_interpolates_the_lines_between():
    field = np.array([[0], [100], [201]], np.uint8)[:, :, None].repeat(3, axis=2)
    even = bob(field, 6)[:, 0, 0].tolist()
    assert even == [0, 50, 100, 151, 201, 201]  # the last line below the field: a copy
    assert bob(field, 5)[:, 0, 0].tolist() == [0, 50, 100, 151, 201]


@pytest.mark.parametrize("pix_fmt, chroma_rows", [("yuv420p", 30), ("yuv422p", 60), ("yuv444p", 60)])
def test_the_top_field_takes_every_planes_even_rows(pix_fmt, chroma_rows):
    frame = av.VideoFrame(64, 120, pix_fmt)
    for k, plane in enumerate(frame.planes):
        rows = np.frombuffer(plane, np.uint8).reshape(-1, plane.line_size)
        rows[:] = (np.arange(rows.shape[0]) % 2 * 100 + k)[:, None]  # even rows k, odd rows 100 + k
    field = top_field(frame)
    assert (field.width, field.height, field.format.name) == (64, 60, pix_fmt)
    assert [p.height for p in field.planes] == [60, chroma_rows, chroma_rows]
    for k, plane in enumerate(field.planes):
        rows = np.frombuffer(plane, np.uint8).reshape(-1, plane.line_size)[:plane.height, :plane.width]
        assert (rows == k).all()  # nothing of the bottom field
    assert top_field(av.VideoFrame(64, 122, "yuv420p")) is None  # its field cannot be 4:2:0
    assert top_field(av.VideoFrame(64, 120, "rgb24")) is None


def test_a_format_without_its_own_field_takes_the_rgb_even_lines(tmp_path):
    """10-bit 4:2:0 (a broadcast recorder's): converted whole, its RGB's even lines kept."""
    video = write_interlaced(tmp_path / "i.mp4", frames=6, pix_fmt="yuv420p10le")
    with av.open(str(video)) as container:
        assert next(container.decode(video=0)).format.name == "yuv420p10le"
    images, described = file_frames(video)
    assert described["deinterlaced"] == 6
    for i, image in enumerate(images):
        assert image.shape == (240, 640, 3) and combing(image) < 1.0
        assert abs(bar_columns(image)[0] - bar_x(i)) <= 2


SERVER = r"""
import sys, time
import av, numpy as np
sys.path.insert(0, sys.argv[2])
from test_interlaced import INTERLACED, interlaced_frame
with av.open(f"tcp://127.0.0.1:{sys.argv[1]}?listen=1", "w", format="mpegts") as out:
    s = out.add_stream("mpeg2video", rate=25)
    s.width, s.height, s.pix_fmt = 640, 240, "yuv420p"
    s.options = INTERLACED["mpeg2video"]
    s.codec_context.gop_size = 5
    s.codec_context.max_b_frames = 0
    print("serving", flush=True)
    start = time.monotonic()
    for i in range(100000):
        picture = av.VideoFrame.from_ndarray(interlaced_frame(i % 30, 240, 640), "rgb24").reformat(format="yuv420p")
        for packet in s.encode(picture):
            out.mux(packet)
        time.sleep(max(0.0, start + (i + 1) / 25 - time.monotonic()))
"""


def test_an_interlaced_stream_is_shown_one_field_at_a_time():
    port = free_port()
    server = python_child(SERVER, str(port), str(Path(__file__).parent))
    try:
        assert server.stdout.readline().strip() == "serving"
        source = StreamSource(f"tcp://127.0.0.1:{port}", timeout=0.5, backoff=(0.1, 0.5))
        images = first_images(source.frames, 8)
    finally:
        server.kill()
        server.wait()
    assert source.describe()["deinterlaced"] >= 8
    assert all(image.shape == (240, 640, 3) and combing(image) < 0.5 for image in images)


def assert_validate_keeps_the_picture(video: Path, folder: Path) -> None:
    """``nerveseg validate`` on ``video`` passes: the re-decode it compares the recordings
    with is converted as the run's frames were, so the pixels outside the overlay match."""
    out = folder / "report"
    code = main(["validate", "--gate", str(make_gate(folder / "gate.onnx")), "--seg",
                 str(make_segmenter(folder / "seg.onnx")), "--video", str(video), "--out", str(out), "--no-pdf",
                 "--display", "subscriber", "--no-progress", "--annotation-threshold-ms", "5000",
                 "--video-threshold-ms", "5000"])
    checks = {c["name"]: c for c in json.loads((out / "validation.json").read_text())["verdict"]["checks"]}
    for name in ("displayed frames unchanged outside the overlay", "lossless recording unchanged outside the overlay",
                 "recording equals the displayed frames"):
        assert checks[name]["passed"], checks[name]["line"]
    assert code == 0, [c["line"] for c in checks.values()]


def test_validate_on_an_interlaced_video_finds_the_picture_unchanged_outside_the_overlay(tmp_path):
    """Deinterlaced in the run and in validate's re-decode alike."""
    assert_validate_keeps_the_picture(write_interlaced(tmp_path / "i.mp4", frames=24, level=160),  # bright: nerve
                                      tmp_path)


def test_extract_writes_deinterlaced_frames(tmp_path):
    """Training frames taken from an interlaced recording look as the live view shows them."""
    import cv2

    video = write_interlaced(tmp_path / "i.mp4", frames=6)
    out = tmp_path / "frames"
    assert main(["extract", str(video), "--out", str(out), "--every", "1f", "--keep-duplicates"]) == 0
    written = sorted(out.rglob("*.png"))
    assert written
    assert all(combing(cv2.imread(str(p))) < 0.5 for p in written)


def test_the_converter_counts_only_interlaced_frames(tmp_path):
    convert = RgbConverter()
    with av.open(str(write_interlaced(tmp_path / "i.mp4", frames=3))) as container:
        for frame in container.decode(video=0):
            convert(frame)
    with av.open(str(write_video(tmp_path / "p.mp4", frames=3))) as container:
        for frame in container.decode(video=0):
            convert(frame)
    assert convert.deinterlaced == 3
