"""``nerveseg replay --gt``: a recorded video scored on its annotations while it replays
(real PyAV, real ONNX Runtime, real threads); the annotations checked against the video."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from video_fixtures import band_row, decodable_positions, scribble, write_truth, write_video

from nerveseg.commands.cli import main
from nerveseg.engines.preprocess import PreprocessConfig, Preprocessor
from nerveseg.realtime import config as cfg
from nerveseg.realtime.pipeline import NervePipeline
from nerveseg.realtime.truth import TruthScorer, iou_dice, load_truth, truth_in_view

ROOT = Path(__file__).resolve().parents[1]
CLASSES = ("nerve", "opening_wound", "tendon")


def replay(tmp_path, video, gate, seg, gt, *extra):
    out = tmp_path / "out" / "scored.avi"
    code = main(["replay", str(video), "--out", str(out), "--gate", str(gate), "--seg", str(seg),
                 "--gt", str(gt), "--no-progress", *extra])
    return code, out


def rows_of(out: Path) -> list[dict]:
    return list(csv.DictReader(out.with_suffix(".csv").open()))


def test_synthetic_video_scored_on_its_known_truth(tmp_path, tiny_engines):
    """Every frame's gate call and mask scored; the summary's means are the CSV's, inside their CI."""
    video = write_video(tmp_path / "in.mp4", frames=24, nerve_every=2)
    gt = write_truth(video, 24, nerve_every=2)
    code, out = replay(tmp_path, video, *tiny_engines, gt)
    assert code == 0
    rows = rows_of(out)
    assert len(rows) == 24
    for r in rows:
        assert r["gt_class"] == ("nerve" if int(r["frame"]) % 2 == 0 else "opening_wound")
        assert r["gate_correct"] == str(r["class"] == r["gt_class"])
    nerve = [r for r in rows if r["gt_class"] == "nerve"]
    # the tiny segmenter finds the band: the mask shown overlaps the annotated one well
    assert np.mean([float(r["gt_iou"]) for r in nerve]) > 0.5
    # no nerve annotated and none shown: both empty, which scores 1
    assert all(float(r["gt_iou"]) == 1.0 for r in rows if r["gt_class"] != "nerve" and r["segmented"] == "False")
    report = json.loads(out.with_suffix(".json").read_text())["ground_truth"]
    assert report["scored_frames"] == report["masks_scored"] == 24
    ious = [float(r["gt_iou"]) for r in rows]
    assert report["iou"]["mean"] == pytest.approx(np.mean(ious), abs=1e-6)
    assert report["iou"]["ci_low"] <= report["iou"]["mean"] <= report["iou"]["ci_high"]
    right = sum(r["gate_correct"] == "True" for r in rows)
    assert report["gate_accuracy"]["correct"] == right
    assert report["iou_nerve_frames"]["n"] == 12


def test_frames_after_an_undecodable_one_keep_their_own_annotations(tmp_path, tiny_engines, capsys):
    """A damaged recording: the frames after a lost one are scored on their own annotations
    (numbered by their place in the file, ``gt_frame``), not on their neighbours'."""
    clean = write_video(tmp_path / "clean.avi", frames=40, nerve_every=3, codec="mjpeg")
    video = scribble(clean, tmp_path / "damaged.avi")
    good = decodable_positions(video)
    assert 30 < len(good) < 40 and good != list(range(len(good)))
    gt = write_truth(video, 40, nerve_every=3)
    code, out = replay(tmp_path, video, *tiny_engines, gt)
    err = capsys.readouterr().err
    assert code == 1 and f"{40 - len(good)} undecodable frame(s) skipped" in err
    assert f"{40 - len(good)} annotated frame(s) were undecodable" in err and "another video" not in err, err
    rows = rows_of(out)
    assert [int(r["frame"]) for r in rows] == list(range(len(good)))
    assert [int(r["gt_frame"]) for r in rows] == good
    assert all(r["gt_class"] == ("nerve" if int(r["gt_frame"]) % 3 == 0 else "opening_wound") for r in rows)
    # the band moves from frame to frame: a mask scored on a neighbour's annotation would miss it
    nerve = [float(r["gt_iou"]) for r in rows if r["gt_class"] == "nerve" and r["segmented"] == "True"]
    assert nerve and np.mean(nerve) > 0.5
    report = json.loads(out.with_suffix(".json").read_text())["ground_truth"]
    assert report["scored_frames"] == len(good)


def test_positions_count_lost_frames_in_presentation_order():
    """Packets read in decode order (B-frames after the frame they lean on); one lost (pts 4)."""
    from nerveseg.realtime.sources.file import Positions

    positions, shown = Positions(), []
    for read, out in ((0, [0]), (3, []), (1, [1]), (2, [2]), (6, [3]), (4, []), (5, [5])):
        positions.add(read)
        shown += [positions.of(pts) for pts in out]
    shown.append(positions.of(6))  # the decoder's flush
    assert shown == [0, 1, 2, 3, 5, 6]
    lost = Positions()
    lost.add(None)  # a packet without a time stamp: positions unknown, not guessed
    assert lost.of(0) is None


def test_a_wrong_annotation_scores_low(tmp_path, tiny_engines):
    """The score can fail: masks moved away from the band and labels swapped score near 0."""
    video = write_video(tmp_path / "in.mp4", frames=12, nerve_every=2)
    gt = write_truth(video, 12, nerve_every=2)
    for i in range(0, 12, 2):
        mask = np.zeros((240, 320), np.uint8)
        mask[band_row(i) + 60:band_row(i) + 76] = 1
        cv2.imwrite(str(gt / "masks" / f"{i:06d}.png"), mask)
    labels = (gt / "labels.csv").read_text().replace("opening_wound", "X").replace("nerve", "opening_wound")
    (gt / "labels.csv").write_text(labels.replace("X", "nerve"))
    code, out = replay(tmp_path, video, *tiny_engines, gt)
    report = json.loads(out.with_suffix(".json").read_text())["ground_truth"]
    assert code == 0 and report["gate_accuracy"]["mean"] < 0.2
    assert report["iou_nerve_frames"]["mean"] < 0.2  # frames with nothing to find and nothing shown score 1


def test_unannotated_frames_have_empty_columns_and_a_smaller_panel(tmp_path, tiny_engines):
    video = write_video(tmp_path / "in.mp4", frames=10, nerve_every=1, height=480, width=1280)
    gt = write_truth(video, 10, nerve_every=1, height=480, width=1280)  # room for every panel line
    kept = (gt / "labels.csv").read_text().splitlines()[:6]  # frames 0-4 annotated
    (gt / "labels.csv").write_text("\n".join(kept) + "\n")
    config = cfg.from_dict({"source": {"spec": str(video)}, "gate": {"engine": str(tiny_engines[0])},
                            "segment": {"engine": str(tiny_engines[1])}, "log": {"csv": str(tmp_path / "log.csv")}})
    truth = load_truth(gt, CLASSES, (480, 1280), 10)
    pipeline = NervePipeline(config, scorer=TruthScorer(truth))
    panels = {}
    pipeline.subscribe(lambda r: panels.setdefault(r.index, r.panel.height))
    pipeline.run()
    rows = list(csv.DictReader((tmp_path / "log.csv").open()))
    assert all(r["gt_iou"] and r["gt_class"] for r in rows[:5])
    assert all(r["gt_iou"] == r["gt_class"] == r["gate_correct"] == "" for r in rows[5:])
    scored = [h for i, h in panels.items() if i < 5]
    plain = [h for i, h in panels.items() if i >= 5]
    assert scored and plain and min(scored) > max(plain)  # two more lines: GT call and IoU/Dice


def test_whole_frame_masks_score_like_one_eye_masks(tmp_path, tiny_engines):
    video = write_video(tmp_path / "in.mp4", frames=8, nerve_every=2)
    gt = write_truth(video, 8, nerve_every=2)
    code, out = replay(tmp_path, video, *tiny_engines, gt, "--codec", "ffv1")
    one_eye = [(r["gt_iou"], r["gt_dice"]) for r in rows_of(out)]
    for path in (gt / "masks").glob("*.png"):
        eye = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        cv2.imwrite(str(path), np.hstack([eye, eye]))  # the band crosses both eyes
    code2 = main(["replay", str(video), "--out", str(tmp_path / "whole.avi"), "--gate", str(tiny_engines[0]),
                  "--seg", str(tiny_engines[1]), "--gt", str(gt), "--no-progress", "--codec", "ffv1"])
    whole = [(r["gt_iou"], r["gt_dice"]) for r in rows_of(tmp_path / "whole.avi")]
    assert code == code2 == 0 and whole == one_eye


@pytest.mark.parametrize("layout, eye, one_eye", [
    ("side-by-side", "left", True), ("side-by-side", "right", False), ("side-by-side", "left", False),
    ("top-bottom", "left", True), ("side-by-side-half", "left", True), ("side-by-side-half", "right", False),
    ("mono", "left", False)])
def test_masks_are_cut_as_the_runtime_cuts_the_frame(layout, eye, one_eye):
    """A frame that is its own mask (nerve 200, tissue 100, a blown-out border the crop
    removes): its view through the real preprocessor, thresholded, is the mask's cut."""
    h, w = 240, 640
    rng = np.random.default_rng(3)
    nerve = np.zeros((h, w), np.uint8)
    for _ in range(6):
        y, x = rng.integers(0, h - 30), rng.integers(0, w - 60)
        nerve[y:y + 30, x:x + 60] = 1
    frame = np.repeat(np.where(nerve, 200, 100).astype(np.uint8)[..., None], 3, axis=2)
    frame[:, :24] = frame[:12, :] = 255  # glare the border crop cuts away
    nerve[:, :24] = nerve[:12, :] = 0
    pre = Preprocessor(PreprocessConfig(eye=eye, layout=layout), (32, 32))
    view, _, box = pre(frame)
    truth = load_truth_for(nerve, layout, eye, one_eye)
    mask = nerve[:, : w // 2] if one_eye and layout != "top-bottom" else nerve[: h // 2] if one_eye else nerve
    cut = truth_in_view(truth, mask, box, eye)
    expected = (view[..., 0] > 150) & (view[..., 0] < 250)
    assert cut.shape == view.shape[:2] and expected.any()
    assert (cut != expected).mean() < 0.01  # only the stretched edges of a half-width eye may differ


def load_truth_for(nerve, layout, eye, one_eye):
    from nerveseg.realtime.truth import GroundTruth

    return GroundTruth(Path("."), {0: "nerve"}, nerve.shape, layout, one_eye)


def test_iou_dice_of_known_masks():
    a = np.zeros((4, 4), bool)
    b = a.copy()
    a[:2] = True
    b[1:3] = True
    assert iou_dice(a, b) == (pytest.approx(4 / 12), pytest.approx(8 / 16))
    assert iou_dice(a & False, b & False) == (1.0, 1.0)


@pytest.mark.parametrize("breakage, says", [
    ("no folder", "ground-truth folder not found"),
    ("no labels", "labels.csv: ground-truth labels not found"),
    ("frame beyond the video", "labels.csv: frame 30 is labelled but the video has only 12 frames"),
    ("mask missing", "000004.png: mask of labelled frame 4 not found"),
    ("mask of another size", "000002.png: mask is 100x80, the video's frames are 640x240"),
    ("unknown class", "class 'nerv' is not one of"),
    ("right eye", "the masks are one eye (the left), the run looks at eye=right"),
])
def test_annotations_that_do_not_fit_the_video_stop_at_start_up(tmp_path, tiny_engines, capsys, breakage, says):
    video = write_video(tmp_path / "in.mp4", frames=12, nerve_every=2)
    gt = write_truth(video, 12, nerve_every=2)
    labels = gt / "labels.csv"
    extra = []
    if breakage == "no folder":
        shutil.rmtree(gt)
    elif breakage == "no labels":
        labels.unlink()
    elif breakage == "frame beyond the video":
        labels.write_text(labels.read_text() + "30,nerve\n")
    elif breakage == "mask missing":
        (gt / "masks" / "000004.png").unlink()
    elif breakage == "mask of another size":
        cv2.imwrite(str(gt / "masks" / "000002.png"), np.zeros((80, 100), np.uint8))
    elif breakage == "unknown class":
        labels.write_text(labels.read_text().replace("3,opening_wound", "3,nerv"))
    else:
        extra = ["--eye", "right"]
    code, out = replay(tmp_path, video, *tiny_engines, gt, *extra)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and says in err[0] and err[0].startswith("nerveseg replay: error:")
    assert not out.parent.exists() or not any(out.parent.iterdir())  # nothing written


def test_shipped_sample_scored_on_its_annotations(tmp_path, capsys, monkeypatch):
    """README's command, on the shipped engines and sample: the summary's gate accuracy is
    the CSV's share of right calls, every annotated frame scored, the table printed."""
    import shlex

    from test_docs_commands import doc_commands

    shown = [c for c in doc_commands(ROOT / "README.md")[0] if " --gt " in c]
    assert len(shown) == 1
    (tmp_path / "samples").symlink_to(ROOT / "samples")
    monkeypatch.chdir(tmp_path)
    code = main([*shlex.split(shown[0])[1:], "--no-progress"])
    out = tmp_path / "runs" / "scored.avi"
    assert code == 0
    rows = rows_of(out)
    report = json.loads(out.with_suffix(".json").read_text())["ground_truth"]
    assert report["scored_frames"] == report["annotated_frames"] == len(rows) == 180
    right = [r["class"] == r["gt_class"] for r in rows]
    assert report["gate_accuracy"]["mean"] == pytest.approx(np.mean(right))
    assert 0 < report["iou_nerve_frames"]["mean"] < 1
    assert "gate accuracy" in capsys.readouterr().out
