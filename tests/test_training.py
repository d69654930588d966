"""Training: registries, the two-phase freeze schedule, splits, augmentation, a tiny run, resume."""

from __future__ import annotations

import argparse
import subprocess
import sys

import numpy as np
import pytest
import torch
import yaml
from conftest import TRAINING_TINY, _training_cli

from nerveseg.training import freeze, models, splits, train
from nerveseg.training.data import list_classification
from nerveseg.training.datasets import Augment, build_transforms
from nerveseg.training.importers import import_dataset


def _args(task="classify", *argv, **overrides) -> argparse.Namespace:
    """Resolved training arguments as the CLI would produce them (tiny model)."""
    from nerveseg.training import cli, experiment

    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    name = "gate" if task == "classify" else "seg"
    args = experiment.namespace_from_cli(parser.parse_args(
        [name, "DATA", "--out", "OUT", "--size", "32", *argv]))
    for key, value in {"width": 0.25, **overrides}.items():
        setattr(args, key, value)
    return train.resolve_args(args)


def test_registry_wrong_name_lists_valid_names():
    with pytest.raises(models.ModelConfigError, match="mobilenet_v2.*resnet50"):
        models.get_spec("classify", "mobilenet_v3")
    with pytest.raises(models.ModelConfigError, match="unet_mobilenet_v2"):
        models.get_spec("segment", "unet_resnet")


@pytest.mark.parametrize("task, name", [(t, n) for t, r in models.REGISTRIES.items() for n in r])
def test_every_registered_model_builds_and_maps_imagenet_keys(task, name):
    spec = models.get_spec(task, name)
    kwargs = {"width_mult": 0.25} if "width_mult" in spec.defaults else {}
    classes = 3 if task in ("classify", "gate_segment") else 1
    model = models.build_model(task, name, classes, **kwargs).eval()
    with torch.no_grad():
        out = model(torch.zeros(1, 3, 64, 64))
    if task == "gate_segment":  # one forward answers both: class logits and the nerve mask logits
        logits, mask = out
        assert logits.shape == (1, 3) and mask.shape == (1, 1, 64, 64)
    else:
        assert out.shape == ((1, 3) if task == "classify" else (1, 1, 64, 64))
    heads = [n for n, _ in model.named_parameters() if freeze._under(n, spec.head)]
    assert heads and all(spec.pretrained_map(n) is None for n in heads)  # new head stays random
    freeze.unfreeze_from(model, spec.unfreeze_from)  # the default layer exists


def test_models_have_contract_shapes():
    gate = models.build_model("classify", "mobilenet_v2", 3, width_mult=0.25)
    seg = models.build_model("segment", "unet_mobilenet_v2", 1, width_mult=0.25)
    x = torch.zeros(2, 3, 40, 48)  # not a multiple of 32: the decoder must still fit
    assert gate.eval()(x).shape == (2, 3)
    assert seg.eval()(x).shape == (2, 1, 40, 48)


def test_normalized_model_is_the_manual_normalisation():
    inner = torch.nn.Identity()
    wrapped = models.NormalizedModel(inner, (0.5, 0.25, 0.0), (0.5, 0.25, 1.0))
    image = torch.randint(0, 256, (1, 4, 5, 3), dtype=torch.uint8)
    expected = (image.permute(0, 3, 1, 2).float() / 255 - torch.tensor([0.5, 0.25, 0.0]).view(1, 3, 1, 1)) \
        / torch.tensor([0.5, 0.25, 1.0]).view(1, 3, 1, 1)
    assert torch.allclose(wrapped(image), expected, atol=1e-6)


def test_pretrained_from_local_state_dict(tmp_path):
    from torchvision.models import mobilenet_v2

    source = mobilenet_v2(weights=None)  # stands in for ImageNet weights (same keys/shapes)
    torch.save(source.state_dict(), tmp_path / "imagenet.pth")
    seg = models.build_model("segment", "unet_mobilenet_v2", 1)
    loaded = models.load_pretrained(seg, models.get_spec("segment", "unet_mobilenet_v2"),
                                    tmp_path / "imagenet.pth")
    assert loaded > 100
    assert torch.equal(seg.encoder[3].conv[0][0].weight, source.features[3].conv[0][0].weight)
    narrow = models.build_model("classify", "mobilenet_v2", 3, width_mult=0.5)
    with pytest.raises(models.ModelConfigError, match="imagenet.pth.*do not fit"):
        models.load_pretrained(narrow, models.get_spec("classify", "mobilenet_v2"), tmp_path / "imagenet.pth")


def test_phase_one_freezes_base_and_phase_two_runs_at_a_tenth(training_gate_data, tmp_path):
    args = _args(data=str(training_gate_data), out=str(tmp_path), head_epochs=1, epochs=1, batch_size=6)
    assert args.finetune_lr == pytest.approx(args.lr / 10)
    model = train.create_model(args)
    optimizer = train.configure_phase(model, args, 1)
    base = {k: v.clone() for k, v in model.model.state_dict().items() if not k.startswith("classifier")}
    assert not any(p.requires_grad for n, p in model.model.named_parameters() if n.startswith("features"))
    imported = import_dataset(training_gate_data, classes=args.classes)
    data = train.get_dataset(args, "train", imported.items[:12], imported)
    loader = torch.utils.data.DataLoader(data, batch_size=6, shuffle=True)
    head = model.model.classifier[1].weight.clone()
    train.train_one_epoch(model, torch.nn.CrossEntropyLoss(), optimizer, loader, 0, args)
    after = model.model.state_dict()
    assert all(torch.equal(value, after[key]) for key, value in base.items())  # incl. BN stats
    assert not torch.equal(head, model.model.classifier[1].weight)
    optimizer = train.configure_phase(model, args, 2)
    assert optimizer.param_groups[0]["lr"] == pytest.approx(args.lr / 10)
    trainable = {n for n, p in model.model.named_parameters() if p.requires_grad}
    assert "features.0.0.weight" in trainable  # from scratch: phase 2 trains everything


def test_unfreeze_from_a_named_layer_and_a_wrong_one():
    model = models.build_model("classify", "mobilenet_v2", 3, width_mult=0.25)
    freeze.unfreeze_from(model, "features.14")
    grads = {n: p.requires_grad for n, p in model.named_parameters()}
    assert not grads["features.13.conv.0.0.weight"] and grads["features.14.conv.0.0.weight"]
    assert grads["classifier.1.weight"]
    with pytest.raises(models.ModelConfigError, match="features.14"):
        freeze.unfreeze_from(model, "features.99")


def test_splits_are_deterministic_stratified_and_reusable(training_gate_data, tmp_path):
    items = list_classification(training_gate_data)
    first = splits.make_splits(items, lambda i: i.split("/")[0], seed=3)
    assert first == splits.make_splits(list(reversed(items)), lambda i: i.split("/")[0], seed=3)
    assert first != splits.make_splits(items, lambda i: i.split("/")[0], seed=4)
    for name in ("nerve", "opening_wound", "tendon"):  # 12 per class → 8 / 2 / 2
        assert [sum(i.startswith(name + "/") for i in first[s]) for s in splits.SPLITS] == [8, 2, 2]
    splits.write_splits(tmp_path, first)
    assert splits.read_splits(tmp_path, training_gate_data) == first
    (tmp_path / "val.txt").write_text(first["test"][0] + "\n")
    with pytest.raises(Exception, match="both val.txt and test.txt|both test.txt"):
        splits.read_splits(tmp_path, training_gate_data)


def test_augmentation_keeps_masks_aligned():
    from torchvision import tv_tensors

    mask = torch.zeros(1, 64, 64, dtype=torch.uint8)
    mask[:, 8:24, 6:30] = 1  # off-centre: a flip or crop applied to one side only misses it
    image = tv_tensors.Image((mask * 255).repeat(3, 1, 1))
    flips = build_transforms((64, 64), Augment(1, 1, 0, 0, 0, 1.0))
    out_image, out_mask = flips(image, tv_tensors.Mask(mask))
    assert torch.equal(out_image[0] > 127, out_mask[0] > 0) and out_mask[0, 45, 50] == 1
    everything = build_transforms((64, 64), Augment(0.5, 0.5, 10, 0.2, 0.2, 0.7))
    torch.manual_seed(0)
    for _ in range(5):
        out_image, out_mask = everything(image, tv_tensors.Mask(mask))
        a, b = out_image.float().mean(0) > 100, out_mask[0] > 0
        assert (a & b).sum() / (a | b).sum() > 0.85  # only the interpolated edges differ


def test_training_run_folder(training_gate_run):
    for name in ("best.pt", "last.pt", "config.yaml", "curves.png", "history.csv", "history.json",
                 "train.log", "splits/train.txt", "splits/val.txt", "splits/test.txt"):
        assert (training_gate_run / name).is_file(), name
    config = yaml.safe_load((training_gate_run / "config.yaml").read_text())
    assert config["model"] == "mobilenet_v2" and config["arch_kwargs"] == {"width_mult": 0.25}
    ckpt = torch.load(training_gate_run / "last.pt", weights_only=True)
    assert {"model", "optimizer", "epoch", "args", "meta", "arch", "arch_kwargs", "metrics"} <= set(ckpt)
    assert ckpt["epoch"] == 1 and ckpt["meta"]["task"] == "classify" and len(ckpt["meta"]["recipe_hash"]) == 64
    assert "from scratch" in (training_gate_run / "train.log").read_text()


def test_resume_continues_to_the_same_weights(training_gate_data, training_gate_run, tmp_path):
    common = ["train", "gate", str(training_gate_data), "--out", str(tmp_path), *TRAINING_TINY]
    _training_cli(*common, "--epochs", "1")
    _training_cli(*common, "--resume")  # the checkpoint's epochs (1): nothing left to do
    assert torch.load(tmp_path / "last.pt", weights_only=True)["epoch"] == 0
    _training_cli(*common, "--epochs", "2", "--resume")
    resumed = torch.load(tmp_path / "last.pt", weights_only=True)
    straight = torch.load(training_gate_run / "last.pt", weights_only=True)
    assert resumed["epoch"] == 1
    assert len(yaml.safe_load((tmp_path / "history.json").read_text())) == 2
    for key, value in straight["model"].items():
        assert torch.allclose(value.float(), resumed["model"][key].float(), atol=1e-5), key
    assert (tmp_path / "splits" / "test.txt").read_text() == (training_gate_run / "splits" / "test.txt").read_text()


def test_seg_training_tracks_iou(training_seg_run):
    history = yaml.safe_load((training_seg_run / "history.json").read_text())
    assert len(history) == 2 and all(0 <= row["val_iou"] <= 1 for row in history)


def test_cli_errors_are_one_line(training_gate_data, tmp_path, capsys):
    from nerveseg.commands.cli import main

    assert main(["train", "gate", str(training_gate_data), "--out", str(tmp_path),
                 "--model", "nope"]) == 2
    assert main(["train", "gate", str(tmp_path / "missing"), "--out", str(tmp_path)]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 2 and "resnet50" in lines[0] and "missing" in lines[1]


def test_help_does_not_import_torch():
    code = ("import sys; from nerveseg.commands.cli import build_parser; build_parser(); "
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def _instances() -> tuple:
    """An image with two off-centre rectangles as ``(Image, Mask (2, 64, 64), boxes, labels)``."""
    from torchvision import tv_tensors
    from torchvision.ops import masks_to_boxes

    masks = torch.zeros(2, 64, 64, dtype=torch.uint8)
    masks[0, 6:20, 4:30] = 1
    masks[1, 40:60, 44:52] = 1
    image = tv_tensors.Image((masks.amax(0, keepdim=True) * 255).repeat(3, 1, 1))
    boxes = tv_tensors.BoundingBoxes(masks_to_boxes(masks) + torch.tensor([0, 0, 1, 1]), format="XYXY",
                                     canvas_size=(64, 64))
    return image, tv_tensors.Mask(masks), boxes, torch.tensor([1, 2])


def test_augmentation_moves_boxes_with_masks():
    """Flips and crops: each box is its moved mask's box (within a pixel at the crop's
    resampling). Rotation: the box holds the rotated mask. Boxes pushed out go, with
    their masks and labels."""
    from torchvision.ops import masks_to_boxes

    image, masks, boxes, labels = _instances()
    torch.manual_seed(0)
    for augment, exact in ((Augment(1, 1, 0, 0, 0, 1.0), 0.0), (Augment(0.5, 0.5, 0, 0.2, 0.2, 0.5), 1.5),
                           (Augment(0.5, 0.5, 25, 0, 0, 1.0), None)):
        pipeline = build_transforms((64, 64), augment, boxes=True)
        for _ in range(6):
            out_image, target = pipeline(image, {"boxes": boxes, "masks": masks, "labels": labels})
            kept = target["masks"].flatten(1).any(1)
            assert len(target["boxes"]) == len(target["masks"]) == len(target["labels"])
            assert kept.all() and target["labels"].tolist() in ([1, 2], [1], [2])
            tight = masks_to_boxes(target["masks"]) + torch.tensor([0, 0, 1, 1])
            moved = target["boxes"].as_subclass(torch.Tensor)
            if exact is not None:
                assert torch.allclose(moved, tight, atol=exact), (augment, moved, tight)
            else:
                assert (moved[:, :2] <= tight[:, :2] + 1).all() and (moved[:, 2:] >= tight[:, 2:] - 1).all()
            if augment.brightness == 0:  # geometry only: the image moved with the masks
                assert torch.equal(out_image[0] > 127, target["masks"].amax(0) > 0) or exact is None


GATES = ["mobilenet_v2", "resnet50", "resnet101", "densenet169", "densenet201"]


def _torchvision_state(name: str) -> dict:
    """A torchvision ImageNet-shaped state dict (weights=None: nothing is downloaded); the
    DenseNets in the old ``norm.1`` key style of their published files (which predate
    BatchNorm's ``num_batches_tracked``)."""
    import re

    import torchvision

    state = getattr(torchvision.models, name)(weights=None).state_dict()
    if name.startswith("densenet"):
        old = re.compile(r"(denselayer\d+\.(?:norm|relu|conv))([12])\.")
        state = {old.sub(r"\1.\2.", k): v for k, v in state.items() if "num_batches" not in k}
    return state


@pytest.mark.parametrize("name", GATES)
def test_gate_backbone_freeze_schedule_and_local_weights(name, tmp_path):
    spec = models.get_spec("classify", name)
    source = _torchvision_state(name)
    torch.save(source, tmp_path / "imagenet.pth")
    args = _args("classify", "--model", name, width=None, pretrained=str(tmp_path / "imagenet.pth"))
    assert (args.head_epochs, args.unfreeze_from) == (2, spec.unfreeze_from)
    assert args.finetune_lr == pytest.approx(args.lr / 10)
    model = train.create_model(args)
    own = model.model.state_dict()
    base = [k for k in source if spec.pretrained_map(k) is not None]
    assert base and all(torch.equal(own[spec.pretrained_map(k)], source[k]) for k in base)
    names = [n for n, _ in model.model.named_parameters()]
    optimizer = train.configure_phase(model, args, 1)
    trainable = [n for n, p in model.model.named_parameters() if p.requires_grad]
    assert trainable == [n for n in names if freeze._under(n, spec.head)] and trainable
    assert optimizer.param_groups[0]["lr"] == pytest.approx(args.lr)
    optimizer = train.configure_phase(model, args, 2)
    first = next(i for i, n in enumerate(names) if freeze._under(n, (spec.unfreeze_from,)))
    grads = [p.requires_grad for _, p in model.model.named_parameters()]
    assert not any(grads[:first]) and all(grads[first:]) and first > 0
    assert optimizer.param_groups[0]["lr"] == pytest.approx(args.lr / 10)
    assert sum(p.numel() for g in optimizer.param_groups for p in g["params"]) == \
        sum(p.numel() for p in model.parameters() if p.requires_grad)
