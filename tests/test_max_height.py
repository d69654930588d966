"""``source.max_height`` (``--max-height``): frames taller than the screen shows are reduced
as they arrive, so the display, the engines' input, the overlay and the recording all work
at the size shown (docs/SOURCES.md, "Frames larger than the screen"). Real PyAV decode and
encode, real ONNX Runtime engines, real pipeline threads."""

from __future__ import annotations

import csv
import json

import av
import cv2
import numpy as np
import pytest
from video_fixtures import write_truth, write_video

from nerveseg.commands.cli import main
from nerveseg.realtime.sources.base import reduce, reduced_size


@pytest.mark.parametrize("size, max_height, expected", [
    ((2160, 3840), 1080, (1080, 1920)),   # 4K side by side: a whole factor of 2
    ((2160, 3840), 720, (720, 1280)),     # a whole factor of 3
    ((2160, 3840), 1000, (1000, 1778)),   # no whole factor: width even, shape kept
    ((1081, 1921), 1080, (1080, 1920)),   # an odd frame: even width
    ((1080, 1920), 1080, (1080, 1920)),   # not taller: untouched
    ((2160, 3840), 0, (2160, 3840)),      # 0: never reduced
])
def test_reduced_sizes_keep_the_shape_and_the_eyes_equal(size, max_height, expected):
    assert reduced_size(*size, max_height) == expected
    assert expected[1] % 2 == 0 or expected == size
    assert abs(expected[1] / expected[0] - size[1] / size[0]) < 0.01


def test_a_reduced_frame_is_the_area_average_and_a_small_one_is_the_same_array():
    rng = np.random.default_rng(1)
    image = rng.integers(0, 256, (432, 768, 3), dtype=np.uint8)
    small = reduce(image, 216)
    assert small.shape == (216, 384, 3)
    # each pixel the mean of the 2x2 pixels it covers
    means = image.reshape(216, 2, 384, 2, 3).astype(float).mean(axis=(1, 3))
    assert np.abs(small.astype(float) - means).max() <= 1.0
    assert reduce(image, 432) is image and reduce(image, 0) is image


def _avi_size(path) -> tuple[int, int]:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        return stream.codec_context.height, stream.codec_context.width


def test_replay_at_max_height_records_scores_and_says_the_reduced_size(tmp_path, tiny_engines):
    """A 480x960 stereo video replayed whole and at --max-height 240: the recording is at
    half the size, every frame is still scored on its (full-size) annotations, reduced the
    same way, with the same gate calls and nearly the same IoU; the summary says both sizes."""
    video = write_video(tmp_path / "in.mp4", frames=12, nerve_every=2, height=480, width=960)
    gt = write_truth(video, 12, nerve_every=2, height=480, width=960)
    results = {}
    for name, extra in (("whole", []), ("reduced", ["--max-height", "240"])):
        out = tmp_path / f"{name}.avi"
        assert main(["replay", str(video), "--out", str(out), "--gate", str(tiny_engines[0]), "--seg",
                     str(tiny_engines[1]), "--gt", str(gt), "--no-progress", *extra]) == 0
        rows = list(csv.DictReader(out.with_suffix(".csv").open()))
        results[name] = (out, rows, json.loads(out.with_suffix(".json").read_text()))
    (whole, whole_rows, whole_summary), (small, small_rows, small_summary) = results["whole"], results["reduced"]
    # the recording holds the view (the left eye, its glare border cropped, squared): about
    # half the size (the border is found again on the smaller frame, to a pixel or two)
    (wh, ww), (sh, sw) = _avi_size(whole), _avi_size(small)
    assert wh > 300 and abs(sh / wh - 0.5) < 0.03 and abs(sw / ww - 0.5) < 0.03, (wh, ww, sh, sw)
    assert small_summary["source"]["reduced"] == {"from": [480, 960], "to": [240, 480], "max_height": 240}
    assert "reduced" not in whole_summary["source"]
    assert small_summary["nerveseg"]["config"]["source"]["max_height"] == 240
    assert len(small_rows) == len(whole_rows) == 12
    assert [r["class"] for r in small_rows] == [r["class"] for r in whole_rows]
    assert all(r["gt_iou"] != "" for r in small_rows)
    nerve = [i for i, r in enumerate(whole_rows) if r["gt_class"] == "nerve"]
    whole_iou = np.mean([float(whole_rows[i]["gt_iou"]) for i in nerve])
    small_iou = np.mean([float(small_rows[i]["gt_iou"]) for i in nerve])
    assert whole_iou > 0.5 and abs(small_iou - whole_iou) < 0.1, (whole_iou, small_iou)
    assert small_summary["ground_truth"]["problem_count"] == 0


@pytest.mark.parametrize("yaml_value, flag_value, says", [
    ("50", None, "source.max_height = 50: must be 0 (off) or at least 120 rows"),
    ("tall", None, "source.max_height = 'tall'"),
    (None, "-1", "--max-height -1: must be a whole number within [0, 100000]"),
])
def test_a_wrong_max_height_is_one_line_at_start_up(tmp_path, tiny_engines, capsys, yaml_value, flag_value, says):
    video = write_video(tmp_path / "in.mp4", frames=2)
    extra = []
    if yaml_value is not None:
        config = tmp_path / "run.yaml"
        config.write_text(f"source:\n  max_height: {yaml_value}\n")
        extra = ["--config", str(config)]
    if flag_value is not None:
        extra = ["--max-height", flag_value]
    code = main(["replay", str(video), "--out", str(tmp_path / "o.avi"), "--gate", str(tiny_engines[0]),
                 "--seg", str(tiny_engines[1]), *extra])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and says in err[0], err
    assert not (tmp_path / "o.avi").exists()


def test_validate_at_max_height_checks_the_reduced_frames_and_scores_reduced_masks(tmp_path):
    """``validate --max-height``: every pass works at the reduced size, the recordings are
    compared with the input reduced the same way (nothing changed outside the overlay), and
    the annotations are reduced before scoring, so the scores stay those of the whole frames
    (not of a wrong region of the full-size mask)."""
    from engine_fixtures import make_gate, make_segmenter

    from nerveseg.training.synth import write_classification

    video = write_video(tmp_path / "in.mp4", frames=12, fps=24, nerve_every=2, height=480, width=960)
    write_truth(video, 12, nerve_every=2, height=480, width=960)
    data = tmp_path / "data"
    write_classification(data / "classify", 3, size=32, render_size=(108, 192), progress=False)
    gate, seg = make_gate(tmp_path / "gate.onnx"), make_segmenter(tmp_path / "seg.onnx")
    reports = {}
    for name, extra in (("whole", []), ("reduced", ["--max-height", "240"])):
        out = tmp_path / name
        code = main(["validate", "--engines", str(seg), str(gate), "--video", str(video), "--test-set", str(data),
                     "--out", str(out), "--annotation-threshold-ms", "5000", "--video-threshold-ms", "5000",
                     "--no-progress", "--no-pdf", *extra])
        reports[name] = json.loads((out / "validation.json").read_text())
        assert code == 0, (name, reports[name]["verdict"])
    whole, reduced = (reports[k]["performance"]["video"] for k in ("whole", "reduced"))
    assert reduced["problem_count"] == 0 and reduced["scored_frames"] == 12
    recordings = reports["reduced"]["degradation"]["recordings"]
    assert recordings["problems"] == []
    assert reports["reduced"]["nerveseg_validate"]["config"]["source"]["max_height"] == 240
    w, r = whole["segmentation"]["iou_nerve"]["mean"], reduced["segmentation"]["iou_nerve"]["mean"]
    assert w > 0.3 and abs(w - r) < 0.15, (w, r)


def test_no_command_rebuilds_the_source_configuration_from_its_spec():
    """The general guard behind the view's and validate's lost ``--max-height``: code that
    runs a pipeline on another source replaces fields of the configured ``source`` section
    (``dataclasses.replace(config.source, spec=...)``) instead of building a new
    ``SourceConfig``, which would drop every source key the user set (max_height,
    read_ahead_ms, camera, right)."""
    from fault_fixtures import REPO

    offenders = []
    for folder in ("realtime", "ui", "commands", "engines", "training"):
        for path in sorted((REPO / folder).rglob("*.py")):
            if path.name == "config.py" and path.parent.name == "realtime":
                continue  # where it is declared and loaded
            for number, line in enumerate(path.read_text().splitlines(), 1):
                if "SourceConfig(" in line and not line.lstrip().startswith(("#", "class ")):
                    offenders.append(f"{path.relative_to(REPO)}:{number}")
    assert offenders == []
