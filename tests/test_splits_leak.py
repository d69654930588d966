"""Splits cannot leak: over every importer layout, no image (by content hash) and no
recording is on two sides, lists written by ``data split`` come back through ``--splits``,
and ``data check`` counts the images training sees."""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import cv2
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nerveseg.engines.errors import UserError
from nerveseg.training import splits as splits_mod
from nerveseg.training.importers import import_dataset
from nerveseg.training.split_keys import file_digest, read_groups, source_from_name

SIZE = 16
CLASSES = ("c0", "c1")


def _picture(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 255, (SIZE, SIZE, 3), dtype=np.uint8)


def _mask() -> np.ndarray:
    mask = np.zeros((SIZE, SIZE), np.uint8)
    mask[4:10, 4:10] = 1
    return mask


def _write(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), array)


# One placement: (picture, class, recording or -1 for a plain name). Copies of a picture
# under several names/classes and frames of one recording are what a split must keep together.
PLACEMENT = st.tuples(st.integers(0, 5), st.integers(0, 1), st.integers(-1, 2))


def _name(k: int, recording: int) -> str:
    return f"rec{recording}_frame{k:03d}" if recording >= 0 else f"img{k:03d}"


def _layout_files(layout: str, root: Path, placements, coco: dict) -> None:
    """Write ``placements`` (plus one plain image per class, so no class is empty)."""
    rows = list(placements) + [(100 + c, c, -1) for c in range(2)]
    for k, (picture, cls, recording) in enumerate(rows):
        name, image, cname = _name(k, recording), _picture(picture), CLASSES[cls]
        if layout == "classes":
            _write(root / cname / f"{name}.png", image)
        elif layout == "pairs":
            _write(root / "images" / f"{name}.png", image)
            _write(root / "masks" / f"{name}.png", _mask())
        elif layout == "class_masks":
            _write(root / "image" / cname / f"{name}.png", image)
            _write(root / "mask" / cname / f"{name}.png", _mask() * 255)
        elif layout == "supervisely":
            _write(root / f"ds{cls}" / "img" / f"{name}.png", image)
            _write(root / f"ds{cls}" / "masks_machine" / f"{name}.png", _mask())
        else:  # coco
            _write(root / "images" / f"{name}.png", image)
            coco["images"].append({"id": k, "file_name": f"{name}.png", "height": SIZE, "width": SIZE})
            coco["annotations"].append({"id": k, "image_id": k, "category_id": cls + 1, "iscrowd": 0,
                                        "segmentation": [[4, 4, 10, 4, 10, 10, 4, 10]]})
    if layout == "coco":
        (root / "annotations.json").write_text(json.dumps(coco))


def _make(layout: str, placements) -> Path:
    root = Path(tempfile.mkdtemp(prefix=f"leak_{layout}_"))
    coco = {"images": [], "annotations": [],
            "categories": [{"id": i + 1, "name": n} for i, n in enumerate(CLASSES)]}
    _layout_files(layout, root, placements, coco)
    return root


def assert_no_leak(root: Path, splits: dict[str, list[str]], aliases: dict[str, list[str]]) -> None:
    """Every file (a listed item and the copies merged into it) by content and by recording
    is on one side only."""
    groups = read_groups(root)
    side_of: dict[str, str] = {}
    for side, items in splits.items():
        for item in items:
            for name in [item, *aliases.get(item, [])]:
                keys = ["sha256:" + file_digest(root / name)]
                source = groups.get(name) or source_from_name(name)
                keys += [f"source:{source}"] if source else []
                for key in keys:
                    assert side_of.setdefault(key, side) == side, f"{name} ({key}) on {side} and {side_of[key]}"


@pytest.mark.parametrize("layout", ["classes", "pairs", "class_masks", "coco", "supervisely"])
@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(placements=st.lists(PLACEMENT, min_size=3, max_size=14), seed=st.integers(0, 3))
def test_no_image_or_recording_on_two_sides(layout, placements, seed, tmp_path):
    root = _make(layout, placements)
    try:
        dataset = import_dataset(root, layout)
        lists = splits_mod.dataset_splits(None, dataset, seed)
        aliases = {s.item: list(s.aliases) for s in dataset.samples}
        assert sorted(i for items in lists.values() for i in items) == sorted(dataset.items)
        assert_no_leak(root, lists, aliases)
        # Written by `data split`, given back with --splits: the same lists, no refusal.
        folder = splits_mod.write_splits(tmp_path / f"lists_{layout}_{seed}", lists)
        if lists["train"] and lists["test"]:
            assert splits_mod.dataset_splits(None, dataset, seed + 1, reuse=folder) == lists
        else:  # everything tied into too few units: refused in one line, never a leak
            with pytest.raises(UserError, match="no (train|test) image"):
                splits_mod.dataset_splits(None, dataset, seed + 1, reuse=folder)
    finally:
        shutil.rmtree(root)


def test_groups_csv_keeps_a_subject_together(tmp_path):
    root = tmp_path / "data"
    for k in range(12):
        _write(root / CLASSES[k % 2] / f"img{k:03d}.png", _picture(k))
    (root / "groups.csv").write_text("image,subject\n" + "".join(
        f"{CLASSES[k % 2]}/img{k:03d}.png,mouse{k // 4}\n" for k in range(12)))
    lists = splits_mod.dataset_splits(None, import_dataset(root), 0)
    sides = {side for side, items in lists.items() for item in items if item.endswith(("000.png", "001.png",
                                                                                    "002.png", "003.png"))}
    assert len(sides) == 1, "four images of mouse0 split over several sides"
    assert_no_leak(root, lists, {})


def test_leaking_lists_are_refused_by_name(tmp_path):
    root = tmp_path / "data"
    for k in range(6):
        _write(root / CLASSES[k % 2] / f"img{k:03d}.png", _picture(k))
    shutil.copy(root / "c0/img000.png", root / "c1/copy.png")  # the same picture under another name
    leaky = {"train": ["c0/img000.png", "c1/img001.png", "c0/img002.png"], "val": ["c1/img003.png"],
             "test": ["c1/copy.png", "c0/img004.png", "c1/img005.png"]}
    folder = splits_mod.write_splits(tmp_path / "leaky", leaky)
    with pytest.raises(UserError, match=r"c0/img000.png \(train\) and c1/copy.png \(test\) are the same image"):
        splits_mod.read_splits(folder, root)
    with pytest.raises(UserError, match="leak"):
        splits_mod.dataset_splits(tmp_path / "run", import_dataset(root), reuse=folder)


def test_frame_names_give_the_recording():
    assert source_from_name("nerve/vid3_frame0012.png") == "vid3"
    assert source_from_name("a-b.frame_7.jpg") == "a-b"
    assert source_from_name("mouse2_f0031.png") == "mouse2"
    assert source_from_name("img_0012.png") is None  # a number alone names no recording
    assert source_from_name("leaf12.png") is None


def test_synth_instances_check_split_and_reuse_agree(tmp_path, capsys):
    """The issue's case: per-class folders of `synth instances` share images between classes;
    `data check` counts what COCO and training see, and `data split` lists come back whole."""
    from nerveseg.commands.cli import main
    from nerveseg.training.instance.data import load_instances
    from nerveseg.training.synth.instances import write_instances

    write_instances(tmp_path / "inst", 12, 48, seed=3, progress=False)
    folders, coco = tmp_path / "inst/folders", tmp_path / "inst/coco"
    assert main(["data", "check", str(folders)]) == 0
    first_line = capsys.readouterr().out.splitlines()[0]
    n_coco = len(load_instances(coco).samples)
    assert f", {n_coco} images," in first_line
    assert main(["data", "split", str(folders), "--out", str(tmp_path / "lists"), "--seed", "1"]) == 0
    dataset = load_instances(folders)
    listed = splits_mod.read_splits(tmp_path / "lists", folders)
    assert sum(map(len, listed.values())) == len(dataset.samples) == n_coco
    used = splits_mod.dataset_splits(tmp_path / "run", dataset, 7, reuse=tmp_path / "lists")
    assert used == listed
    assert_no_leak(folders, used, {s.item: list(s.aliases) for s in dataset.samples})


def test_eval_refuses_a_test_list_that_shares_an_image_with_train(tmp_path):
    from nerveseg.training.eval_cli import shared_items

    root = tmp_path / "data"
    for k in range(4):
        _write(root / CLASSES[k % 2] / f"img{k:03d}.png", _picture(k))
    shutil.copy(root / "c0/img000.png", root / "c0/again.png")
    folder = splits_mod.write_splits(tmp_path / "lists", {"train": ["c0/img000.png", "c1/img001.png"], "val": [],
                                                          "test": ["c0/again.png", "c1/img003.png"]})
    with pytest.raises(UserError, match="are the same image"):
        shared_items([tmp_path / "m.onnx"], str(folder), "test", str(root))
    (folder / "train.txt").unlink()  # a test list alone is scored as given
    assert shared_items([tmp_path / "m.onnx"], str(folder), "test", str(root)) == ["c0/again.png", "c1/img003.png"]
