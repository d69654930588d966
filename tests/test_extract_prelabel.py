"""Issue 15, item 3: `nerveseg extract` (frames to label, cut as the runtime cuts,
near-duplicates dropped) and `nerveseg prelabel` (the engines' answers as COCO, CVAT and
Supervisely), read back by the real importers; real PyAV, real ONNX Runtime sessions."""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
from engine_fixtures import make_gate, make_segmenter

from nerveseg.commands.cli import main
from nerveseg.engines.loader import load_engine
from nerveseg.engines.preprocess import PreprocessConfig, Preprocessor
from nerveseg.training.importers import detect_layout, import_dataset

H, W, FPS = 160, 320, 10


def picture(kind: str) -> np.ndarray:
    """A side-by-side stereo frame ``(H, W, 3) uint8``: ``a`` bright tissue with a brighter
    band (the gate's nerve), ``b`` dark tissue with a bright round blob and a small dot."""
    yy, xx = np.mgrid[:H, :W // 2].astype(np.float32)
    if kind == "a":
        eye = 150 + 40 * xx / (W // 2)
        eye[:, 60:72] = 240
    else:
        eye = 40 + 50 * yy / H
        cv2.circle(eye, (50, 60), 14, 235, -1)
        cv2.circle(eye, (120, 120), 5, 235, -1)
    eye = np.repeat(np.clip(eye, 0, 255).astype(np.uint8)[..., None], 3, axis=2)
    return np.concatenate([eye, eye], axis=1)


SEQUENCE = ["a"] * 10 + ["b"] * 10 + ["a"] * 10  # 3 s at 10 fps: a still camera, a cut, back


@pytest.fixture(scope="module")
def video(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("extract") / "clip.mp4"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = W, H, "yuv444p"
        stream.options = {"crf": "0"}  # lossless: the test compares pixels with the runtime's crop
        for i, kind in enumerate(SEQUENCE):
            frame = av.VideoFrame.from_ndarray(picture(kind), format="rgb24")
            frame.pts, frame.time_base = i, Fraction(1, FPS)
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


def decoded(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]


@pytest.fixture(scope="module")
def dataset(video, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("ds") / "frames"
    assert main(["extract", str(video), "--every", "0.5s", "--out", str(out), "--no-progress"]) == 0
    return out


def test_extract_keeps_one_frame_per_interval_and_drops_near_duplicates(dataset, video):
    index = json.loads((dataset / "extract.json").read_text())
    assert index["complete"] is True and index["every"] == [0.5, "s"]
    # Due at 0, 0.5, ..., 2.5 s: frames 0, 5 (a), 10, 15 (b), 20, 25 (a again).
    assert [f["frame"] for f in index["frames"]] == [0, 10]
    assert [(d["frame"], d["repeats"]) for d in index["dropped"]] == [
        (5, "images/clip_000000.png"), (15, "images/clip_000010.png"),
        (20, "images/clip_000000.png"), (25, "images/clip_000000.png")]
    files = sorted(p.name for p in (dataset / "images").iterdir())
    assert files == ["clip_000000.png", "clip_000010.png"]


def test_extract_crops_exactly_as_the_runtime(dataset, video):
    frames = decoded(video)
    runtime = Preprocessor(PreprocessConfig(), (224, 224))
    for name, i in (("clip_000000.png", 0), ("clip_000010.png", 10)):
        view, _, box = runtime(frames[i])
        saved = cv2.cvtColor(cv2.imread(str(dataset / "images" / name)), cv2.COLOR_BGR2RGB)
        assert saved.shape == view.shape == (H, H, 3) and np.array_equal(saved, view)
    index = json.loads((dataset / "extract.json").read_text())
    assert index["view"] == {"x": box.x0, "y": box.y0, "width": box.width, "height": box.height}


def test_extract_by_frames_all_frames_and_size(video, tmp_path):
    out = tmp_path / "f"
    assert main(["extract", str(video), "--every", "10f", "--keep-duplicates", "--size", "64",
                 "--out", str(out), "--no-progress"]) == 0
    index = json.loads((out / "extract.json").read_text())
    assert [f["frame"] for f in index["frames"]] == [0, 10, 20] and not index["dropped"]
    assert all(cv2.imread(str(out / f["file"])).shape == (64, 64, 3) for f in index["frames"])


@pytest.mark.parametrize("argv, says", [
    (["--every", "0s"], "'0s': an interval is a positive number"),
    (["--every", "1m"], "'1m': an interval"),
    (["--size", "4"], "--size 4"),
    (["--max-distance", "65"], "--max-distance 65"),
])
def test_extract_bad_options_fail_in_one_line(video, tmp_path, capsys, argv, says):
    try:
        code = main(["extract", str(video), "--out", str(tmp_path / "x"), *argv])
    except SystemExit as exc:  # argparse's own errors (a bad --every) stop the parser
        code = exc.code
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and says in err
    assert not (tmp_path / "x" / "extract.json").exists()


def test_extract_refuses_what_is_not_a_video(tmp_path, capsys):
    fake = tmp_path / "notes.mp4"
    fake.write_text("not a video")
    assert main(["extract", str(fake), "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(fake) in err
    index = json.loads((tmp_path / "x" / "extract.json").read_text())
    assert index["complete"] is False  # an interrupted or failed run never says complete


@pytest.fixture(scope="module")
def engines(tmp_path_factory):
    root = tmp_path_factory.mktemp("engines")
    return make_gate(root / "gate.onnx"), make_segmenter(root / "seg.onnx")


def run_prelabel(dataset, engines, out, *extra) -> dict:
    gate, seg = engines
    assert main(["prelabel", str(dataset), "--out", str(out), "--gate", str(gate), "--seg", str(seg),
                 "--backend", "onnxruntime", "--no-progress", *extra]) == 0
    return json.loads((out / "prelabel.json").read_text())


def expected(engines, image_path: Path, segment: bool) -> tuple[str, np.ndarray]:
    """The gate's class and the mask, computed here with the engines' own sessions the way
    the runtime maps them to the view (INTER_AREA in, logits resized linearly, > 0)."""
    gate = load_engine(engines[0], "onnxruntime", task="classify")
    seg = load_engine(engines[1], "onnxruntime", task="segment")
    image = cv2.cvtColor(cv2.imread(str(image_path)), cv2.COLOR_BGR2RGB)
    h, w = gate.input_size
    batch = cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA)[None]
    label = gate.classes[int(gate.run(batch)["logits"][0].argmax())]
    if not segment:
        return label, np.zeros(image.shape[:2], bool)
    logits = seg.run(batch)["mask_logits"][0, 0]
    return label, cv2.resize(logits, image.shape[1::-1], interpolation=cv2.INTER_LINEAR) > 0


def union(dataset, item_name: str) -> np.ndarray:
    sample = next(s for s in dataset.samples if Path(s.item).name == item_name)
    masks = [inst.mask.decode() for inst in sample.instances]
    return np.any(masks, axis=0) if masks else np.zeros(sample.size, bool)


def test_prelabel_round_trips_through_every_importer(dataset, engines, tmp_path):
    report = run_prelabel(dataset, engines, tmp_path / "labels", "--segment-all")
    assert [r["file"] for r in report["images"]] == ["clip_000000.png", "clip_000010.png"]
    imported = {fmt: import_dataset(tmp_path / "labels" / fmt) for fmt in ("coco", "cvat", "supervisely")}
    assert {fmt: detect_layout(tmp_path / "labels" / fmt) for fmt in imported} == \
        {"coco": "coco", "cvat": "cvat", "supervisely": "supervisely"}
    for row in report["images"]:
        label, mask = expected(engines, dataset / "images" / row["file"], segment=True)
        assert row["gate"] == label and row["mask_pixels"] == int(mask.sum()) > 0
        for fmt, data in imported.items():
            assert np.array_equal(union(data, row["file"]), mask), (fmt, row["file"])
    # Frame 10 (dark tissue, a blob and a dot): two pieces, two objects to accept or delete.
    coco = json.loads((tmp_path / "labels" / "coco" / "annotations.json").read_text())
    assert sorted(a["image_id"] for a in coco["annotations"]).count(2) == 2
    assert {i["file_name"]: i["nerveseg"]["gate"] for i in coco["images"]} == \
        {r["file"]: r["gate"] for r in report["images"]}
    supervisely = import_dataset(tmp_path / "labels" / "supervisely", task="segment")
    assert supervisely.classes == ("background", "nerve")
    # The gate's answers as class folders, the layout `nerveseg train gate` reads.
    folders = import_dataset(tmp_path / "labels" / "classes", task="classify", skip_bad=True)
    assert {Path(s.item).name: s.label for s in folders.samples} == {r["file"]: r["gate"] for r in report["images"]}


def test_prelabel_masks_only_what_the_gate_calls_nerve(dataset, engines, tmp_path):
    report = run_prelabel(dataset, engines, tmp_path / "labels", "--formats", "coco")
    rows = {r["file"]: r for r in report["images"]}
    for name, row in rows.items():
        label, _ = expected(engines, dataset / "images" / name, segment=False)
        assert row["gate"] == label
        assert (row["mask_pixels"] > 0) == (label == "nerve"), row
    assert {r["gate"] for r in rows.values()} == {"nerve", "opening_wound"}
    assert sorted(p.name for p in (tmp_path / "labels").iterdir()) == ["coco", "prelabel.json"]


def test_prelabel_never_writes_into_its_input(dataset, engines, capsys):
    gate, seg = engines
    assert main(["prelabel", str(dataset), "--out", str(dataset), "--gate", str(gate), "--seg", str(seg)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "input" in err


def test_cvat_importer_reads_masks_and_polygons_and_refuses_bad_runs(tmp_path):
    (tmp_path / "images").mkdir()
    cv2.imwrite(str(tmp_path / "images" / "x.png"), np.zeros((6, 8, 3), np.uint8))
    good = """<annotations><version>1.1</version><meta><task><labels>
      <label><name>nerve</name><type>any</type></label><label><name>tendon</name><type>tag</type></label>
      </labels></task></meta>
      <image id="0" name="x.png" width="8" height="6"><tag label="tendon"/>
        <mask label="nerve" rle="1, 2, 3" left="2" top="1" width="3" height="2"/>
        <polygon label="nerve" points="5,3;7,3;7,5;5,5"/>
      </image></annotations>"""
    (tmp_path / "annotations.xml").write_text(good)
    data = import_dataset(tmp_path)
    assert data.layout == "cvat" and data.classes == ("nerve",)
    mask, polygon = (inst.mask.decode() for inst in data.samples[0].instances)
    want = np.zeros((6, 8), bool)
    want[1, 3:5] = True  # runs over the 3 x 2 box at (2, 1), row-major: 1 off, 2 on, 3 off
    assert np.array_equal(mask, want)
    assert polygon[3:6, 5:8].all() and polygon.sum() == 9
    (tmp_path / "annotations.xml").write_text(good.replace('rle="1, 2, 3"', 'rle="1, 2"'))
    with pytest.raises(Exception, match="covers 3 pixels, its box 6"):
        import_dataset(tmp_path)


def test_training_docs_loop_runs_on_a_fresh_clone(tmp_path):
    """docs/TRAINING.md "Learning from a few real frames", on the shipped sample and engines:
    extract and prelabel as written (every frame masked, so the set has a nerve for certain),
    then one quick epoch of the segmenter fine-tuned from the shipped U-Net."""
    from test_docs_commands import REPO, _fresh_clone, _run, doc_commands

    commands = [c for c in doc_commands(REPO / "docs/TRAINING.md")[0]
                if c.split()[1] in ("extract", "prelabel") or "--init" in c]
    assert [c.split()[1] for c in commands] == ["extract", "prelabel", "train", "train"]
    work = _fresh_clone(tmp_path)
    _run(work, commands[0], ("--no-progress",))
    index = json.loads((work / "runs/real/frames/extract.json").read_text())
    assert index["complete"] and 1 <= len(index["frames"]) <= 7  # 6 s, one a second, minus repeats
    _run(work, commands[1], ("--segment-all", "--no-progress"))
    for fmt in ("coco", "cvat", "supervisely"):
        assert len(import_dataset(work / "runs/real/labels" / fmt).samples) == len(index["frames"])
    import torch

    _run(work, commands[2], ("--epochs", "1", "--threads", "1"))
    meta = torch.load(work / "runs/real/seg/best.pt", weights_only=True)["meta"]
    assert meta["extra"]["init"]["checkpoint"] == "samples/models/unet.pt"
