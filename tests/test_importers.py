"""Dataset importers: every layout read, counted and validated on tiny hand-made sets."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest

from nerveseg.training import importers
from nerveseg.training.importers import ImportRefused, import_dataset

SIZE = 24


def _png(path: Path, array: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), array)
    return path


def _image(path: Path, value: int = 90, size: int = SIZE) -> Path:
    return _png(path, np.full((size, size, 3), value, np.uint8))


def _mask(path: Path, boxes: list[tuple[int, int, int, int, int]], size: int = SIZE) -> np.ndarray:
    """Draw ``(y0, y1, x0, x1, value)`` boxes into a ``(size, size) uint8`` PNG."""
    mask = np.zeros((size, size), np.uint8)
    for y0, y1, x0, x1, value in boxes:
        mask[y0:y1, x0:x1] = value
    _png(path, mask)
    return mask


def _bitmap(mask: np.ndarray, title: str) -> dict:
    """A Supervisely bitmap object: base64 zlib RGBA PNG of the bounding box, at its origin."""
    ys, xs = np.nonzero(mask)
    crop = mask[ys.min():ys.max() + 1, xs.min():xs.max() + 1] > 0
    rgba = np.zeros((*crop.shape, 4), np.uint8)
    rgba[crop] = 255
    data = base64.b64encode(zlib.compress(cv2.imencode(".png", rgba)[1].tobytes())).decode()
    return {"classTitle": title, "geometryType": "bitmap",
            "bitmap": {"data": data, "origin": [int(xs.min()), int(ys.min())]}}


@pytest.fixture
def supervisely(tmp_path) -> Path:
    """Two datasets, classes nerve (1) and tendon (2): 3 images, one without tendon, one
    object a polygon."""
    root = tmp_path / "sly"
    root.mkdir()
    (root / "meta.json").write_text(json.dumps({"classes": [{"title": "nerve"}, {"title": "tendon"}]}))
    (root / "obj_class_to_machine_color.json").write_text(json.dumps({"nerve": [1, 1, 1], "tendon": [2, 2, 2]}))
    layouts = {"a/f0": [(2, 6, 2, 20, 1), (10, 20, 4, 8, 2)], "a/f1": [(0, 24, 10, 12, 1)],
               "b/f2": [(5, 9, 5, 9, 2)]}
    for name, boxes in layouts.items():
        ds, stem = name.split("/")
        _image(root / ds / "img" / f"{stem}.png")
        mask = _mask(root / ds / "masks_machine" / f"{stem}.png", boxes)
        objects = [_bitmap(mask == v, t) for v, t in ((1, "nerve"), (2, "tendon")) if (mask == v).any()]
        ann = {"size": {"height": SIZE, "width": SIZE}, "objects": objects}
        _png_json(root / ds / "ann" / f"{stem}.png.json", ann)
    poly = {"classTitle": "nerve", "geometryType": "polygon",
            "points": {"exterior": [[12, 12], [20, 12], [20, 20], [12, 20]], "interior": [[[14, 14], [16, 14], [16, 16], [14, 16]]]}}
    ann = json.loads((root / "b/ann/f2.png.json").read_text())
    ann["objects"].append(poly)
    _png_json(root / "b/ann/f2.png.json", ann)
    return root


def _png_json(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj))


def test_supervisely_counts_classes_and_instances(supervisely):
    data = import_dataset(supervisely)
    assert data.layout == "supervisely" and data.kind == "segment"
    assert data.classes == ("background", "nerve", "tendon")
    assert [s.item for s in data.samples] == ["a/img/f0.png", "a/img/f1.png", "b/img/f2.png"]
    assert [s.group for s in data.samples] == ["a", "a", "b"]
    # nerve: 4*18 + 24*2 pixels in 2 images; tendon: 10*4 + 4*4 in 2 images
    assert data.counts["nerve"] == {"images": 2, "pixels": 72 + 48}
    assert data.counts["tendon"] == {"images": 2, "pixels": 40 + 16}
    f0 = data.samples[0]
    assert [i.label for i in f0.instances] == ["nerve", "tendon"]
    truth = cv2.imread(str(f0.mask), cv2.IMREAD_UNCHANGED)
    assert np.array_equal(f0.instances[1].mask.decode(), truth == 2)
    assert importers.mask_box(f0.instances[0].mask.decode()) == (2, 2, 20, 6)
    polygon = data.samples[2].instances[1].mask.decode()  # 9x9 square minus a 3x3 hole
    assert polygon.sum() == 81 - 9 and not polygon[15, 15] and polygon[12, 12]


def test_supervisely_refusals_name_the_files(supervisely):
    (supervisely / "a/masks_machine/f1.png").unlink()
    _mask(supervisely / "b/masks_machine/f2.png", [(0, 2, 0, 2, 7)])  # id 7: no such class
    _mask(supervisely / "a/masks_machine/f0.png", [(2, 6, 2, 20, 1)])  # no tendon left anywhere
    _image(supervisely / "a/img/f3.png", size=SIZE)
    _mask(supervisely / "a/masks_machine/f3.png", [], size=16)  # another size
    (supervisely / "a/img/f4.png").write_bytes(b"not a png")  # unreadable
    with pytest.raises(ImportRefused) as info:
        import_dataset(supervisely)
    message = str(info.value)
    assert "\n" not in message
    for part in ("1 image without mask: a/img/f1.png", "1 mask of another size: a/masks_machine/f3.png (16x16, image 24x24)",
                 "1 unknown class id: b/masks_machine/f2.png (values 7 not in 0..2", "1 unreadable file: a/img/f4.png",
                 "1 empty class: meta.json (class 'tendon' has no examples)", "--skip-bad"):
        assert part in message, part


def test_skip_bad_goes_on_and_writes_the_list(supervisely, tmp_path):
    (supervisely / "a/masks_machine/f1.png").unlink()
    ann = json.loads((supervisely / "b/ann/f2.png.json").read_text())
    ann["objects"][0]["classTitle"] = "vessel"
    _png_json(supervisely / "b/ann/f2.png.json", ann)
    with pytest.raises(ImportRefused, match=r"unknown class id: b/ann/f2.png.json \(class 'vessel'"):
        import_dataset(supervisely)
    data = import_dataset(supervisely, skip_bad=True)
    assert data.items == ["a/img/f0.png"]
    assert [p.kind for p in data.skipped] == ["image without mask", "unknown class id"]
    path = importers.write_skipped(tmp_path / "skipped.txt", data)
    assert path.read_text().splitlines()[0] == (
        "image without mask\ta/img/f1.png\texpected a/masks_machine/f1.png")


def test_pairs_binary_and_multiclass(tmp_path):
    root = tmp_path / "pairs"
    for k in range(3):
        _image(root / "images" / f"x{k}.jpg")
        _mask(root / "masks" / f"x{k}.png", [(0, 4, 0, 4 + k, 255)] if k else [])
    data = import_dataset(root)
    assert data.layout == "pairs" and data.classes == ("background", "nerve")
    assert data.counts["nerve"] == {"images": 2, "pixels": 20 + 24}  # 0/255 masks are binary
    with pytest.raises(ImportRefused, match=r"masks/x1.png \(values 255 not in 0..2"):
        import_dataset(root, classes=("background", "nerve", "tendon"))


def test_class_masks_instances_from_values_and_blobs(tmp_path):
    root = tmp_path / "cm"
    _image(root / "image/left/a.png")
    _mask(root / "mask/left/a.png", [(0, 4, 0, 4, 255), (10, 14, 10, 14, 255)])  # two blobs
    _image(root / "image/right/b.png", 100)  # distinct pictures: identical ones are merged
    _mask(root / "mask/right/b.png", [(0, 6, 0, 6, 1), (0, 6, 6, 12, 2)])  # touching, two ids
    _image(root / "image/right/c.png", 110)
    _mask(root / "mask/right/c.png", [])  # a negative
    data = import_dataset(root)
    assert data.layout == "class_masks" and data.kind == "instance" and data.classes == ("left", "right")
    assert data.counts == {"left": {"images": 1, "instances": 2}, "right": {"images": 1, "instances": 2}}
    a, b = data.samples[0], data.samples[1]
    assert [importers.mask_box(i.mask.decode()) for i in a.instances] == [(0, 0, 4, 4), (10, 10, 14, 14)]
    assert [i.mask.decode().sum() for i in b.instances] == [36, 36] and b.group == "right"
    (root / "mask/right/b.png").unlink()
    with pytest.raises(ImportRefused, match="image without mask: image/right/b.png"):
        import_dataset(root)


def _coco(root: Path) -> dict:
    _image(root / "images/a.png")
    _image(root / "images/b.png")
    _image(root / "images/c.png")
    rle = {"size": [SIZE, SIZE], "counts": [24 * 2, 24 * 3, 24 * 19]}  # columns 2..4 (column-major)
    return {"images": [{"id": 1, "file_name": "a.png", "height": SIZE, "width": SIZE},
                       {"id": 2, "file_name": "b.png", "height": SIZE, "width": SIZE},
                       {"id": 3, "file_name": "c.png", "height": SIZE, "width": SIZE}],
            "categories": [{"id": 7, "name": "cell"}, {"id": 3, "name": "vessel"}],
            "annotations": [
                {"id": 1, "image_id": 1, "category_id": 7, "iscrowd": 0,
                 "segmentation": [[2, 2, 10, 2, 10, 6, 2, 6]], "bbox": [2, 2, 8, 4], "area": 32},
                {"id": 2, "image_id": 1, "category_id": 3, "iscrowd": 0, "segmentation": rle},
                {"id": 3, "image_id": 2, "category_id": 7, "iscrowd": 1, "segmentation": rle}]}


def test_coco_through_pycocotools(tmp_path):
    root = tmp_path / "coco"
    (root / "annotations.json").parent.mkdir(parents=True, exist_ok=True)
    (root / "annotations.json").write_text(json.dumps(_coco(root)))
    data = import_dataset(root)
    assert data.layout == "coco" and data.classes == ("vessel", "cell")  # sorted by category id
    assert data.counts == {"vessel": {"images": 1, "instances": 1}, "cell": {"images": 1, "instances": 1}}
    a = data.samples[0]
    assert a.item == "images/a.png" and [i.label for i in a.instances] == ["cell", "vessel"]
    assert importers.mask_box(a.instances[1].mask.decode()) == (2, 0, 5, 24)
    assert a.instances[0].mask.decode()[3:6, 3:9].all()
    assert data.notes == ("images without annotations (negatives): 2", "crowd regions ignored: 1")


def test_coco_refusals(tmp_path):
    root = tmp_path / "coco"
    coco = _coco(root)
    coco["annotations"][0]["category_id"] = 99
    coco["annotations"][1]["segmentation"] = {"size": [16, 16], "counts": [256]}
    coco["images"][2]["height"] = 30
    (root / "annotations.json").write_text(json.dumps(coco))
    with pytest.raises(ImportRefused) as info:
        import_dataset(root)
    message = str(info.value)
    assert "unknown class id: annotations.json (annotation 1 of images/a.png: category_id 99)" in message
    assert "annotation 2 of images/a.png: RLE size [16, 16]" in message
    assert "images/c.png (JSON says 30x24, file is 24x24)" in message
    assert "2 empty classes" in message
    (root / "annotations.json").write_text('{"images": []}')
    with pytest.raises(Exception, match="annotations.json: not a COCO instance file"):
        import_dataset(root)


def test_class_folders_and_a_missing_class(tmp_path):
    root = tmp_path / "cls"
    for name, n in (("nerve", 3), ("tendon", 2)):
        for k in range(n):
            _image(root / name / f"{k}.png")
    data = import_dataset(root)
    assert data.kind == "classify" and data.counts == {"nerve": {"images": 3}, "tendon": {"images": 2}}
    assert data.samples[0].stratum == "nerve"
    with pytest.raises(ImportRefused, match=r"empty class: opening_wound/ \(folder missing\)"):
        import_dataset(root, classes=("nerve", "opening_wound", "tendon"))
    with pytest.raises(Exception, match="cannot train a segment model"):
        import_dataset(root, task="segment")


def test_data_check_and_split_cli(supervisely, tmp_path, capsys):
    from nerveseg.commands.cli import main

    assert main(["data", "check", str(supervisely)]) == 0
    out = capsys.readouterr().out
    assert "supervisely layout" in out and "tendon" in out and "no problems found" in out
    assert main(["data", "split", str(supervisely), "--out", str(tmp_path / "splits")]) == 0
    assert sum(len((tmp_path / "splits" / f"{s}.txt").read_text().split()) for s in ("train", "val", "test")) == 3
    (supervisely / "a/masks_machine/f1.png").unlink()
    assert main(["data", "check", str(supervisely)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "a/img/f1.png" in err[0]
    assert main(["data", "check", str(supervisely), "--skip-bad", "--out", str(tmp_path / "rep")]) == 0
    assert (tmp_path / "rep/skipped.txt").is_file() and (tmp_path / "rep/import_report.json").is_file()


def test_importers_do_not_import_torch():
    code = ("import sys; import nerveseg.training.importers, nerveseg.training.data_cli; "
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
