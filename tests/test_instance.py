"""Instance segmentation (Mask R-CNN): synthetic set, data, augmentation, mAP, models,
tiny CPU training, export with ONNX Runtime parity, and evaluation through load_engine."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import torch
from test_instance_fixtures import SIZE, instance_data, instance_onnx, instance_run  # noqa: F401

from nerveseg.engines.instance_masks import paste_masks
from nerveseg.engines.loader import load_engine
from nerveseg.training.datasets import Augment, build_transforms
from nerveseg.training.instance.data import engine_classes, load_instances, read_instances
from nerveseg.training.instance.dataset import InstanceDataset, targets_from_masks
from nerveseg.training.instance.evaluate import evaluate_instance, score_instances
from nerveseg.training.instance.model import build_instance_model, get_instance_spec
from nerveseg.training.models import INSTANCE, ModelConfigError, load_pretrained


def _by_class(dataset, sample) -> dict[str, np.ndarray]:
    """Union of each class's instance masks of one image."""
    _, labels, masks = read_instances(dataset, sample)
    return {dataset.classes[k - 1]: masks[labels == k].any(0) for k in set(labels.tolist())}


def test_synthetic_set_reads_the_same_from_both_layouts(instance_data):
    coco = load_instances(instance_data / "coco")
    folders = load_instances(instance_data / "folders")
    assert (coco.layout, folders.layout) == ("coco", "class_masks")
    assert set(coco.classes) == set(folders.classes) == {"nerve", "vessel", "tendon"}
    assert len(coco.samples) == len(folders.samples) == 10  # shared images merged back into one each
    by_name = {s.image.name: s for s in folders.samples}
    for sample in coco.samples:
        a, b = _by_class(coco, sample), _by_class(folders, by_name[sample.image.name])
        assert a.keys() == b.keys() and all(np.array_equal(a[c], b[c]) for c in a)
    _, labels, masks = read_instances(coco, coco.samples[0])
    assert masks.dtype == bool and len(labels) == len(masks) >= 1 and masks.sum((1, 2)).min() > 0


def test_augmentation_keeps_boxes_and_masks_aligned(instance_data):
    dataset = load_instances(instance_data / "coco")
    strong = Augment(hflip=0.5, vflip=0.5, rotate=30.0, brightness=0.3, contrast=0.3, scale_min=0.5)
    data = InstanceDataset(dataset, dataset.items, (48, 48), build_transforms((48, 48), strong))
    torch.manual_seed(0)
    for index in range(len(data)):
        image, target = data[index]
        assert image.shape == (3, 48, 48) and image.dtype == torch.uint8
        assert target["masks"].shape[1:] == (48, 48) and len(target["labels"]) == len(target["boxes"])
        for mask, box in zip(target["masks"], target["boxes"]):
            ys, xs = torch.nonzero(mask, as_tuple=True)
            assert box.tolist() == [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]  # tight, pixel edges


def _two_instances(size: int = 64):
    masks = torch.zeros(2, size, size, dtype=torch.bool)
    masks[0, 5:20, 5:30] = True
    masks[1, 30:60, 40:50] = True
    return targets_from_masks(torch.tensor([1, 2]), masks)


def test_map_of_hand_made_cases():
    truth = _two_instances()
    perfect = {**truth, "scores": torch.tensor([0.9, 0.8])}
    report = score_instances([perfect], [truth], ("nerve", "vessel"))
    assert report["segm"]["map"] == pytest.approx(1.0) and report["bbox"]["map"] == pytest.approx(1.0)
    missed = {k: v[:1] for k, v in perfect.items()}  # the vessel is not found: its class AP is 0
    report = score_instances([missed], [truth], ("nerve", "vessel"))
    assert report["per_class"]["vessel"]["segm_ap"] == 0.0 and report["per_class"]["nerve"]["segm_ap"] == 1.0
    assert report["segm"]["map"] == pytest.approx(0.5) and report["bbox"]["map"] == pytest.approx(0.5)
    # the precision-recall points behind AP50: the nerve at precision 1 to recall 1, the vessel never found
    assert report["pr50"]["segm"]["nerve"] == [1.0] * 101 and report["pr50"]["segm"]["vessel"] == [0.0] * 101
    assert report["per_class"]["nerve"]["segm_ap50"] == pytest.approx(1.0)
    assert report["per_class"]["vessel"]["bbox_ap50"] == 0.0
    half = {k: v[1:] for k, v in perfect.items()}  # a vessel, but also a second one where there is none
    half = {k: torch.cat([v, v]) for k, v in half.items()}
    half["masks"][1], half["boxes"][1], half["scores"][1] = truth["masks"][0], truth["boxes"][0], 0.95
    report = score_instances([half], [truth], ("nerve", "vessel"))  # the false vessel scores higher
    vessel = report["pr50"]["segm"]["vessel"]
    assert vessel[0] == vessel[100] == 0.5 and report["per_class"]["vessel"]["segm_ap50"] == pytest.approx(0.5)
    shifted = {**perfect, "masks": perfect["masks"].roll(8, dims=2)}  # masks off by 8 px, boxes right
    report = score_instances([shifted], [truth], ("nerve", "vessel"))
    assert report["bbox"]["map"] == pytest.approx(1.0) and report["segm"]["map"] < 0.5


class _Oracle:
    """An 'engine' answering with the true boxes and the masks a perfect mask head would give:
    the truth sampled into each box exactly as torchvision makes Mask R-CNN's training targets."""

    input_size = (64, 64)

    def __init__(self, truth):
        self.truth = truth

    def run(self, batch, *, region=None):
        from torchvision.ops import roi_align

        t = self.truth
        rois = torch.cat([torch.arange(len(t["boxes"]))[:, None].float(), t["boxes"]], 1)
        masks = roi_align(t["masks"][:, None].float(), rois, (28, 28), 1.0)  # project_masks_on_boxes
        return {"boxes": t["boxes"].numpy(), "labels": t["labels"].numpy(),
                "scores": np.array([0.9, 0.8], np.float32), "masks": masks.numpy()}


def test_evaluate_instance_pastes_box_masks_and_scores_them(tmp_path):
    import cv2

    truth = _two_instances()
    cv2.imwrite(str(tmp_path / "a.png"), np.full((64, 64, 3), 90, np.uint8))
    coco = {"images": [{"id": 1, "file_name": "a.png", "height": 64, "width": 64}],
            "categories": [{"id": 1, "name": "nerve"}, {"id": 2, "name": "vessel"}],
            "annotations": [{"id": k + 1, "image_id": 1, "category_id": k + 1, "iscrowd": 0,
                             "bbox": [0, 0, 1, 1], "area": 1,
                             "segmentation": [[x0, y0, x1, y0, x1, y1, x0, y1]]}
                            for k, (x0, y0, x1, y1) in enumerate(truth["boxes"].tolist())]}
    (tmp_path / "annotations.json").write_text(json.dumps(coco))
    oracle = _Oracle(truth)
    report = evaluate_instance(oracle, tmp_path, ["a.png"])
    assert report["n"] == 1 and report["segm"]["map"] == pytest.approx(1.0) and report["bbox"]["map"] == 1.0
    out = oracle.run(None)
    pasted = paste_masks(out["masks"], out["boxes"], (64, 64))  # the inverse of the projection
    assert np.array_equal(pasted, truth["masks"].numpy().astype(bool))


@pytest.mark.parametrize("name", sorted(INSTANCE))
def test_every_instance_model_builds_to_the_engine_contract(name, tmp_path):
    spec = get_instance_spec(name)
    kwargs = {"width_mult": 0.5} if "width_mult" in spec.defaults else {}
    model = build_instance_model(name, ("background", "a", "b"), 64, **kwargs).eval()
    with torch.inference_mode():
        boxes, labels, scores, masks = model(torch.zeros(1, 64, 64, 3, dtype=torch.uint8))
    k = len(scores)
    assert boxes.shape == (k, 4) and labels.shape == (k,) and masks.shape == (k, 1, 28, 28)
    assert labels.dtype == torch.int64 and scores.dtype == masks.dtype == torch.float32
    heads = [n for n in model.model.state_dict() if n.startswith(spec.head)]
    assert heads and all(spec.pretrained_map(n) is None for n in heads)  # class heads stay random
    with pytest.raises(ModelConfigError, match="maskrcnn_mobilenet_v3"):
        get_instance_spec("maskrcnn_vgg")


def test_pretrained_imagenet_backbone_from_a_local_file(tmp_path):
    from torchvision.models import mobilenet_v3_large

    torch.save(mobilenet_v3_large(weights=None).state_dict(), tmp_path / "mnv3.pth")
    model = build_instance_model("maskrcnn_mobilenet_v3", ("background", "a"), 64, frozen_bn=True)
    count = load_pretrained(model.model, get_instance_spec("maskrcnn_mobilenet_v3"), tmp_path / "mnv3.pth")
    assert count > 200  # every backbone tensor; the FPN and heads stay fresh


def test_tiny_training_run_folder(instance_run):
    history = json.loads((instance_run / "history.json").read_text())
    assert [row["epoch"] for row in history] == [0, 1]
    assert {"train_loss_mask", "val_loss", "val_segm_map", "val_bbox_map_50"} <= history[0].keys()
    assert (instance_run / "best.pt").is_file() and (instance_run / "curves.png").is_file()
    ckpt = torch.load(instance_run / "last.pt", weights_only=True)
    assert ckpt["meta"]["task"] == "instance" and ckpt["meta"]["classes"][0] == "background"
    assert ckpt["arch"] == "maskrcnn_mobilenet_v3" and ckpt["arch_kwargs"]["width_mult"] == 0.5
    assert all((instance_run / "splits" / f"{s}.txt").is_file() for s in ("train", "val", "test"))


def test_resume_extends_the_run(instance_run, instance_data, tmp_path):
    import shutil

    from nerveseg.commands.cli import main

    run = shutil.copytree(instance_run, tmp_path / "run")
    assert main(["train", "instance", str(instance_data / "coco"), "--out", str(run), "--resume", "--epochs", "3",
                 "--threads", "1"]) == 0
    history = json.loads((run / "history.json").read_text())
    assert [row["epoch"] for row in history] == [0, 1, 2]
    assert torch.load(run / "last.pt", weights_only=True)["epoch"] == 2
    assert (run / "splits" / "test.txt").read_text() == (instance_run / "splits" / "test.txt").read_text()


def test_export_parity_and_both_backends(instance_onnx, instance_run, instance_data, tmp_path):
    from nerveseg.commands.cli import main

    ort = load_engine(instance_onnx, backend="onnxruntime", task="instance")
    ref = load_engine(instance_run / "best.pt", backend="torch", task="instance")
    parity = ort.meta.extra["parity"]
    assert parity["frames"] >= 1 and parity["max_abs_diff_boxes"] <= parity["tolerance"]["boxes"]  # real frames
    assert parity["random_frames_agreeing"].endswith("/4")
    assert ort.meta.classes == ("background", "nerve", "vessel", "tendon") and ort.input_size == (SIZE, SIZE)
    dataset = load_instances(instance_data / "coco")
    image, _, _ = read_instances(dataset, dataset.samples[0], (SIZE, SIZE))
    a, b = ort.run(image[None]), ref.run(image[None])
    assert set(a) == {"boxes", "labels", "scores", "masks"} and np.array_equal(a["labels"], b["labels"])
    assert np.abs(a["boxes"] - b["boxes"]).max(initial=0) < 0.05
    with pytest.raises(ValueError, match="one frame"):
        ref.run(np.zeros((2, SIZE, SIZE, 3), np.uint8))
    assert engine_classes(dataset) == ort.meta.classes
    out = tmp_path / "eval"  # `nerveseg eval instance` reaches evaluate_instance through its hook
    assert main(["eval", "instance", str(instance_onnx), "--data", str(instance_data / "coco"),
                 "--splits", str(instance_run / "splits"), "--out", str(out)]) == 0
    report = json.loads((out / "metrics.json").read_text())
    assert report["task"] == "instance" and report["n"] >= 1 and 0.0 <= report["segm"]["map"] <= 1.0
    assert "mask AP50" in (out / "report.txt").read_text()
    for kind in ("mask", "box"):  # the precision-recall plots: real pictures, not empty files
        picture = cv2.imread(str(out / f"pr_{kind}.png"))
        assert picture is not None and picture.shape[0] > 300 and picture.std() > 10
    assert set(report["pr50"]["segm"]) == set(report["per_class"]) and all(
        len(points) == 101 for points in report["pr50"]["segm"].values())


def test_export_with_a_realtime_score_cut(instance_run, tmp_path):
    from nerveseg.training.export import ExportError
    from nerveseg.training.exporters import export

    meta = export(instance_run / "best.pt", tmp_path / "rt.onnx", min_score=0.3)
    assert meta.extra["min_score"] == 0.3
    engine = load_engine(tmp_path / "rt.onnx", task="instance")
    frames = np.random.default_rng(1).integers(0, 256, (3, SIZE, SIZE, 3), dtype=np.uint8)
    assert all((engine.run(f[None])["scores"] >= 0.3).all() for f in frames)
    with pytest.raises(ExportError, match="--min-score 1.5"):
        export(instance_run / "best.pt", tmp_path / "bad.onnx", min_score=1.5)
