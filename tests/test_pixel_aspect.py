"""Video whose pixels are not square (HDV's 1440x1080 shown as 1920x1080, anamorphic PAL,
a recorder's half-width stream): the picture is its displayed shape, so frames are widened
to square pixels as they are converted. Without that, a side-by-side recording stored
squeezed was taken for a single eye (its stored shape is not twice as wide as tall) and the
engines saw every structure squeezed. Real x264 encodes carrying their sample aspect ratio,
decoded by FFmpeg through the sources the pipeline uses."""

from __future__ import annotations

import json
import threading
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from test_interlaced import INTERLACED, assert_validate_keeps_the_picture, combing

from nerveseg.commands.cli import main
from nerveseg.realtime.sources import VideoFileSource
from nerveseg.realtime.sources.rgb import display_width, not_square

LEFT, RIGHT = 210, 90  # the two eyes' grey levels


def write_squeezed(path: Path, sar: Fraction = Fraction(2, 1), width: int = 320, height: int = 240,
                   frames: int = 8, interlaced: bool = False) -> Path:
    """A side-by-side frame (left eye bright, right eye dark, a dark bar in the left eye's
    middle) stored ``width`` pixels wide, each pixel ``sar`` wide."""
    with av.open(str(path), "w") as out:
        s = out.add_stream("libx264", rate=25)
        s.width, s.height, s.pix_fmt = width, height, "yuv420p"
        s.codec_context.sample_aspect_ratio = sar
        s.options = {**(INTERLACED["libx264"] if interlaced else {}), "crf": "8"}
        for _ in range(frames):
            image = np.full((height, width, 3), RIGHT, np.uint8)
            image[:, :width // 2] = LEFT
            image[:, width // 4 - 4:width // 4 + 4] = 20  # 8 stored pixels, 16 shown at 2:1
            for packet in s.encode(av.VideoFrame.from_ndarray(image, "rgb24").reformat(format="yuv420p")):
                out.mux(packet)
        for packet in s.encode():
            out.mux(packet)
    return path


def frames_of(path: Path, max_height: int = 0) -> tuple[list[np.ndarray], dict]:
    source = VideoFileSource(path)
    source.reduce_to(max_height)
    return [f.image for f in source.frames(threading.Event())], source.describe()


def dark_columns(image: np.ndarray) -> np.ndarray:
    return np.where(image[image.shape[0] // 2, :, 1] < 60)[0]


def test_a_squeezed_side_by_side_file_is_shown_in_its_displayed_shape(tmp_path):
    images, described = frames_of(write_squeezed(tmp_path / "s.mp4"))
    assert described["sample_aspect_ratio"] == "2:1" and (described["height"], described["width"]) == (240, 640)
    assert all(image.shape == (240, 640, 3) for image in images)
    image = images[-1].astype(int)
    left_eye = np.concatenate([image[:, 20:130, 1], image[:, 190:300, 1]], axis=1)  # the bar left out
    assert abs(left_eye.mean() - LEFT) < 6 and abs(image[:, 340:620, 1].mean() - RIGHT) < 6
    dark = dark_columns(images[-1])
    assert 14 <= len(dark) <= 18 and abs(dark.mean() - 160) <= 2  # the bar twice as wide, where it is shown


def test_replay_takes_a_squeezed_side_by_side_file_for_two_eyes(tmp_path, tiny_engines):
    """Stored 320x240 (4:3, "mono" by its stored shape), shown 640x240: the left eye is a
    240x240 square of the shown frame, recorded as such."""
    out = tmp_path / "r.avi"
    code = main(["replay", str(write_squeezed(tmp_path / "s.mp4")), "--out", str(out), "--gate",
                 str(tiny_engines[0]), "--seg", str(tiny_engines[1]), "--no-progress"])
    assert code == 0
    with av.open(str(out)) as container:
        recorded = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    assert len(recorded) == 8 and all(f.shape == (240, 240, 3) for f in recorded)
    assert json.loads(out.with_suffix(".json").read_text())["source"]["sample_aspect_ratio"] == "2:1"


def test_square_pixels_then_max_height(tmp_path, tiny_engines):
    video = write_squeezed(tmp_path / "s.mp4")
    images, described = frames_of(video, max_height=120)
    assert all(image.shape == (120, 320, 3) for image in images)
    out = tmp_path / "r.avi"
    assert main(["replay", str(video), "--out", str(out), "--max-height", "120", "--gate", str(tiny_engines[0]),
                 "--seg", str(tiny_engines[1]), "--no-progress"]) == 0
    summary = json.loads(out.with_suffix(".json").read_text())  # the sizes as shown, not as stored
    assert summary["source"]["reduced"] == {"from": [240, 640], "to": [120, 320], "max_height": 120}
    dark = dark_columns(images[-1])
    assert 6 <= len(dark) <= 10 and abs(dark.mean() - 80) <= 2


def test_an_interlaced_squeezed_file_is_deinterlaced_and_widened(tmp_path):
    images, described = frames_of(write_squeezed(tmp_path / "s.mp4", interlaced=True))
    assert described["deinterlaced"] == 8 and all(image.shape == (240, 640, 3) for image in images)
    assert combing(images[-1]) < 0.5


def test_validate_on_a_squeezed_file_finds_the_picture_unchanged_outside_the_overlay(tmp_path):
    assert_validate_keeps_the_picture(write_squeezed(tmp_path / "s.mp4", frames=24), tmp_path)


@pytest.mark.parametrize("sar, square", [(None, True), (Fraction(0, 1), True), (Fraction(1, 1), True),
                                         (Fraction(1, 5), True), (Fraction(9, 2), True), (Fraction(4, 3), False),
                                         (Fraction(64, 45), False), (Fraction(2, 3), False)])
def test_which_aspect_ratios_count(sar, square):
    assert (not_square(sar) is None) == square


def test_display_width_is_even_and_square():
    assert display_width(1440, Fraction(4, 3)) == 1920
    assert display_width(720, Fraction(64, 45)) == 1024
    assert display_width(721, Fraction(1, 1)) == 721  # square: untouched
    assert display_width(720, Fraction(8, 9)) == 640


def test_the_kept_stream_keeps_its_mark_and_the_mask_box_is_in_shown_pixels(tmp_path, tiny_engines):
    out = tmp_path / "r.mkv"
    assert main(["replay", str(write_squeezed(tmp_path / "s.mp4")), "--out", str(out), "--gate",
                 str(tiny_engines[0]), "--seg", str(tiny_engines[1]), "--no-progress"]) == 0
    with av.open(str(out)) as container:
        video, masks = container.streams.video
        assert (video.width, video.height, video.sample_aspect_ratio) == (320, 240, Fraction(2, 1))
        assert (masks.width, masks.height) == (240, 240)
        assert dict(masks.metadata)["BOX"].endswith("in a 640x240 frame")
