"""``nerveseg validate`` end to end: real ONNX Runtime (tiny engines), real PyAV videos,
real synthetic test sets, the real Qt view offscreen.

One full run (in a subprocess that cannot import torch, as in the runtime install) is
shared by the report tests; the failure tests each run once more with one thing broken.
"""

from __future__ import annotations

import base64
import json
import re
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from video_fixtures import write_truth, write_video

from nerveseg.engines.metadata import file_sha256
from nerveseg.realtime import overlay_op
from nerveseg.commands.cli import main

FPS = 24
SECTIONS = ("performance", "degradation", "annotation", "video", "model-card")


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    from engine_fixtures import make_gate, make_segmenter

    from nerveseg.training.synth import write_classification, write_segmentation

    root = tmp_path_factory.mktemp("validate")
    data = root / "data"
    write_classification(data / "classify", 3, size=32, render_size=(108, 192), progress=False)
    write_segmentation(data / "segment", 4, size=32, render_size=(108, 192), progress=False)
    (root / "splits").mkdir()
    (root / "splits" / "test.txt").write_text("synthetic/img/synth_00000.png\nsynthetic/img/synth_00002.png\n")
    video = write_video(root / "sample.mp4", frames=24, fps=FPS, nerve_every=2)
    write_truth(video, 24, 2)
    plain = write_video(root / "plain.mp4", frames=16, fps=FPS, nerve_every=1)
    return {"gate": make_gate(root / "gate.onnx"), "seg": make_segmenter(root / "seg.onnx"), "data": data,
            "split": root / "splits" / "test.txt", "video": video, "plain": plain, "root": root}


NO_TORCH = "import sys; sys.modules.update(torch=None, torchvision=None); from nerveseg.commands.cli import main; " \
           "sys.exit(main(sys.argv[1:]))"


@pytest.fixture(scope="module")
def report(inputs):
    """The full run: both test sets (segmentation restricted to a split), the video with
    ground truth, the Qt view, generous thresholds; in a process where torch cannot load."""
    out = inputs["root"] / "report"
    argv = ["validate", "--engines", str(inputs["seg"]), str(inputs["gate"]), "--video", str(inputs["video"]),
            "--test-set", str(inputs["data"]), "--seg-split", str(inputs["split"]), "--out", str(out),
            "--annotation-threshold-ms", "2000", "--video-threshold-ms", "2000", "--no-progress"]
    done = subprocess.run([sys.executable, "-c", NO_TORCH, *argv], capture_output=True, text=True, timeout=240)
    return done, out


def test_report_is_produced_without_torch_and_passes(report):
    done, out = report
    assert done.returncode == 0, done.stdout + done.stderr
    assert sum(line.startswith("PASS") for line in done.stdout.splitlines()) == 6
    for name in ("validation.html", "validation.json", "validation.pdf", "validation.config.yaml"):
        assert (out / name).stat().st_size > 0
    assert (out / "validation.pdf").read_bytes().startswith(b"%PDF")
    assert not list(out.glob("recordings-*")), "temporary recordings left behind"


def test_html_is_self_contained_and_every_section_has_figures(report):
    _, out = report
    page = (out / "validation.html").read_text()
    assert not re.search(r'(src|href)="(?!data:|#)', page), "the report links outside itself"
    for section in SECTIONS:
        body = re.search(rf'<section id="{section}">(.*?)</section>', page, re.S)
        assert body, section
        images = re.findall(r'src="data:image/png;base64,([^"]+)"', body.group(1))
        assert images, f"section {section} has no figure"
        assert all(base64.b64decode(img).startswith(b"\x89PNG") for img in images)
    for published in ("0.863", "0.778", "0.960", "0.672", "0.786"):
        assert published in page


def test_json_holds_every_figure_and_the_documents(report, inputs):
    _, out = report
    r = json.loads((out / "validation.json").read_text())
    perf = r["performance"]
    assert perf["test_set"]["classification"]["n"] == 9
    assert perf["test_set"]["segmentation"]["n"] == 2 and perf["test_set"]["segmentation"]["split"]
    video = perf["video"]
    assert video["scored_frames"] == 24 and video["classification"]["accuracy"] == 1.0
    assert video["segmentation"]["iou_nerve"]["mean"] > 0.8  # the tiny segmenter finds the band
    d = r["degradation"]
    assert d["displayed"]["frames"] == 24 and d["displayed"]["pixels_changed"] == 0
    assert d["recordings"]["lossless"]["identical_to_displayed"] == 24
    loss = d["recordings"]["codec_loss"]
    assert loss["codec"] == "mjpeg" and 20 < loss["psnr_db"]["p50"] < 80
    delays = r["delays"]
    assert delays["display"]["method"] == "qt-paint" and delays["display"]["platform"] == "offscreen"
    annotated, shown = delays["annotation"]["stats"]["n"], delays["video"]["stats"]["n"]
    assert 0 < annotated <= shown
    assert all(ms >= 0 for ms in delays["annotation"]["parts_median_ms"].values())
    assert {"p50", "p95", "p99", "max"} <= delays["video"]["stats"].keys()
    versions = {c["name"]: c["version"] for c in r["components"]}
    assert versions["torch"] and versions["onnxruntime"].startswith("1.") and "FFmpeg libavcodec" in versions
    assert versions["Qt"][0] == "6" and versions["tensorrt"]  # a version, or "not installed"
    assert r["provenance"]["gate"]["sha256"] == file_sha256(inputs["gate"]) == r["provenance"]["gate"]["sha256_now"]
    card = r["model_card"]
    assert card["intended_use"] and card["known_limits"] and card["engines"][0]["classes"]
    assert r["machine"]["logical_cpus"] and len(r["figures"]) >= 12
    assert {c["name"] for c in r["verdict"]["checks"]} >= {"annotation delay", "video delay"}


def run_validate(tmp_path, inputs, *extra, capsys=None) -> tuple[int, dict]:
    out = tmp_path / "report"
    code = main(["validate", "--gate", str(inputs["gate"]), "--seg", str(inputs["seg"]), "--video",
                 str(inputs["plain"]), "--out", str(out), "--no-pdf", "--display", "subscriber", "--no-progress",
                 *extra])
    return code, json.loads((out / "validation.json").read_text())


def checks(report: dict) -> dict[str, dict]:
    return {c["name"]: c for c in report["verdict"]["checks"]}


def test_a_broken_overlay_fails_the_degradation_test(tmp_path, inputs, monkeypatch):
    """An overlay whose tint bleeds two pixels past the mask: caught on screen and on disk."""
    tint = overlay_op.tint

    def bleeding(image, mask, colour, opacity, outline=True):
        grown = cv2.dilate(mask.view(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
        tint(image, grown, colour, opacity, outline)

    monkeypatch.setattr(overlay_op, "tint", bleeding)
    code, r = run_validate(tmp_path, inputs, "--annotation-threshold-ms", "5000")
    c = checks(r)
    assert code == 1
    assert not c["displayed frames unchanged outside the overlay"]["passed"]
    assert c["displayed frames unchanged outside the overlay"]["pixels_changed"] > 0
    assert not c["lossless recording unchanged outside the overlay"]["passed"]
    assert c["recording equals the displayed frames"]["passed"]  # the recorder itself is faithful
    # default, live passthrough: the 5.75 ms a device of this kind may add to the video
    assert c["video delay"]["threshold_ms"] == 5.75
    assert r["delays"]["display_mode"] == "passthrough"


def test_a_threshold_below_the_measured_delay_exits_nonzero(tmp_path, inputs, capsys):
    code, r = run_validate(tmp_path, inputs, "--annotation-threshold-ms", "0.01", "--video-threshold-ms", "0.01",
                           "--delay-statistic", "p50")
    c = checks(r)
    assert code == 1
    for name in ("annotation delay", "video delay"):
        assert not c[name]["passed"] and c[name]["measured_ms"] > 0.01 and c[name]["statistic"] == "p50"
    assert all(c[n]["passed"] for n in c if "delay" not in n), "only the delays should fail"
    assert "FAIL  annotation delay: p50" in capsys.readouterr().out
    assert r["delays"]["display"]["method"] == "subscriber"


# -- bad inputs: one line naming the file, exit 2, before anything is measured ----------

def _bad_truth(root: Path, labels: str | None = None, drop_mask: bool = False) -> str:
    video = write_video(root / "clip.mp4", frames=3)
    gt = write_truth(video, 3, 1)
    if labels is not None:
        (gt / "labels.csv").write_text(labels)
    if drop_mask:
        (gt / "masks" / "000001.png").unlink()
    return str(video)


def _missing_mask_set(root: Path) -> str:
    (root / "seg" / "ds" / "img").mkdir(parents=True)
    (root / "seg" / "ds" / "masks_machine").mkdir()
    cv2.imwrite(str(root / "seg" / "ds" / "img" / "a.png"), np.zeros((8, 8, 3), np.uint8))
    return str(root / "seg")


BAD = {
    "missing video": (lambda t, i: ["--video", str(t / "nope.mp4")], "nope.mp4: video file not found"),
    "camera": (lambda t, i: ["--video", "0"], "argument --video: 0: a recorded video is needed here, not a camera"),
    "stream": (lambda t, i: ["--video", "rtsp://10.0.0.9/1"],
               "rtsp://10.0.0.9/1: a recorded video is needed here, not a stream"),
    "not a test set": (lambda t, i: ["--test-set", str(t)], "{t}: not a test set"),
    "missing test set": (lambda t, i: ["--test-set", str(t / "gone")], "gone: test set folder not found"),
    "mask missing": (lambda t, i: ["--test-set", _missing_mask_set(t)], "a.png: mask missing for image"),
    "split lists unknown files": (lambda t, i: ["--test-set", str(i["data"] / "classify"), "--gate-split",
                                                str(i["split"])], "test.txt: 2 listed files are not in"),
    "split without its set": (lambda t, i: ["--seg-split", str(i["split"])], "test.txt: split list for a segment"),
    "bad ground-truth class": (lambda t, i: ["--video", _bad_truth(t, "frame,class\n0,bone\n")],
                               "labels.csv: line 2: class 'bone'"),
    "ground-truth mask missing": (lambda t, i: ["--video", _bad_truth(t, drop_mask=True)],
                                  "masks: no mask for 1 labelled frames (first: 000001.png)"),
    "two gates": (lambda t, i: ["--engines", str(i["gate"]), str(i["gate"])], "gate.onnx: a second 'classify'"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_inputs_give_one_line_errors_naming_the_file(tmp_path, inputs, case, capsys):
    make, expected = BAD[case]
    extra = make(tmp_path, inputs)
    argv = ["validate", "--video", str(inputs["plain"]), "--out", str(tmp_path / "out"), "--no-progress"]
    if "--engines" not in extra:
        argv += ["--gate", str(inputs["gate"]), "--seg", str(inputs["seg"])]
    try:
        code = main(argv + extra)
    except SystemExit as exc:  # argparse's own refusal of a flag's value
        code = exc.code
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and expected.replace("{t}", str(tmp_path)) in err[0], err
    assert not (tmp_path / "out" / "validation.json").exists()  # failed before measuring


def test_a_video_whose_glare_grows_mid_run_validates_to_its_report(tmp_path, inputs):
    """As the shipped sample (its glare border grows at frame 120): the crop is fixed for
    the run, so the recording keeps one size and the report is written."""
    import av

    from video_fixtures import stereo_frame

    video = tmp_path / "glare.mp4"
    with av.open(str(video), "w") as container:
        stream = container.add_stream("mpeg4", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = 640, 240, "yuv420p"
        for i in range(40):  # past frame 30, where the crop used to be looked for again
            image = stereo_frame(i)
            if i >= 8:
                image[:, :100] = 255  # the glare band widens: a new crop, were it found again
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    out = tmp_path / "report"
    code = main(["validate", "--gate", str(inputs["gate"]), "--seg", str(inputs["seg"]), "--video", str(video),
                 "--out", str(out), "--no-pdf", "--display", "subscriber", "--no-progress",
                 "--annotation-threshold-ms", "5000", "--video-threshold-ms", "5000"])
    report = json.loads((out / "validation.json").read_text())
    assert code in (0, 1) and report["verdict"]["checks"]
    assert checks(report)["recording equals the displayed frames"]["passed"]
