"""The shared test base: every registered model, in every registry, passes the same checks.

Builds; forward shape at 64 px through ``NormalizedModel`` (the engine contract); ONNX
export + ONNX Runtime parity; a few training steps on a tiny fixed set reduce the loss.
A new model in ``REGISTRIES`` is picked up here without a line of test code. Tiny
settings (width 0.25 where a model has a width, 64 px, batch 4) keep it quick on a CPU.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from nerveseg.engines.metadata import IMAGENET_MEAN, IMAGENET_STD, OUTPUT_NAMES, EngineMeta
from nerveseg.training import export, models
from nerveseg.training.losses import BCEDiceLoss
from nerveseg.training.region import export as region_export

ALL = [(task, name) for task, registry in models.REGISTRIES.items() for name in registry]
CLASSES = ("nerve", "opening_wound", "tendon")


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def tiny(task: str, name: str) -> models.NormalizedModel:
    """``name`` at width 0.25 (if it has a width) inside the engine wrapper, seeded."""
    spec = models.get_spec(task, name)
    kwargs = {"width_mult": 0.25} if "width_mult" in spec.defaults else {}
    torch.manual_seed(0)
    net = models.build_model(task, name, len(CLASSES) if task in ("classify", "gate_segment") else 1, **kwargs)
    return models.NormalizedModel(net, IMAGENET_MEAN, IMAGENET_STD)


def inputs(task: str, n: int, size: int, seed: int = 0) -> tuple[torch.Tensor, ...]:
    """Engine inputs: ``(N, S, S, 3) uint8`` noise, plus ``(N, S, S, 1) uint8`` regions
    (whole field, none, boxes) for a region model."""
    image = torch.from_numpy(np.random.default_rng(seed).integers(0, 256, (n, size, size, 3), dtype=np.uint8))
    if task != "region_segment":
        return (image,)
    return image, torch.from_numpy(region_export.random_regions(n, (size, size), seed))


def tiny_set(task: str, n: int = 4, size: int = 64):
    """A fixed batch with a learnable answer: a bright band on noise (its mask, or inside
    a box region for a region model), or class-dependent brightness for a gate."""
    rng = np.random.default_rng(1)
    yy, xx = np.mgrid[:size, :size]
    bands = np.stack([np.abs(xx - yy - rng.integers(-8, 9)) < 3 for _ in range(n)])
    labels = np.arange(n) % len(CLASSES)
    level = 60 + 70 * labels[:, None, None] if task == "classify" else 90
    grey = np.clip(level + 15 * rng.standard_normal((n, size, size)) + 130 * bands, 0, 255).astype(np.uint8)
    image = torch.from_numpy(np.repeat(grey[..., None], 3, axis=3))
    if task == "classify":
        return (image,), torch.from_numpy(labels)
    if task == "gate_segment":
        return (image,), (torch.from_numpy(labels), torch.from_numpy(bands[:, None].astype(np.float32)))
    if task == "segment":
        return (image,), torch.from_numpy(bands[:, None].astype(np.float32))
    region = np.zeros((n, size, size, 1), np.uint8)
    region[:, size // 8:size * 5 // 8, size // 5:size * 7 // 8] = 1
    inside = bands & (region[..., 0] > 0)
    return (image, torch.from_numpy(region)), torch.from_numpy(inside[:, None].astype(np.float32))


def _gate_segment_loss(outputs, targets):
    (logits, masks), (labels, truth) = outputs, targets
    return torch.nn.functional.cross_entropy(logits, labels) + BCEDiceLoss()(masks, truth)


@pytest.mark.parametrize("task, name", ALL)
def test_forward_shape_at_64px(task, name):
    model = tiny(task, name).eval()
    with torch.inference_mode():
        out = model(*inputs(task, 2, 64))
    if task == "gate_segment":  # one forward, both answers
        (logits, out) = out
        assert logits.shape == (2, len(CLASSES)) and torch.isfinite(logits).all()
    assert out.shape == ((2, len(CLASSES)) if task == "classify" else (2, 1, 64, 64))
    assert out.dtype == torch.float32 and torch.isfinite(out).all()


@pytest.mark.parametrize("task, name", ALL)
def test_onnx_export_and_runtime_parity(task, name):
    """The export chain's own steps: trace, ``onnx.checker``, ORT vs torch within tolerance
    (and mask IoU >= 0.99), at a batch size other than the traced one (dynamic N)."""
    model = tiny(task, name).eval()
    classes = CLASSES if task in ("classify", "gate_segment") else ("background", "nerve")
    meta = EngineMeta(model=name, task=task, classes=classes, input_size=(64, 64))
    feeds = [t.numpy() for t in inputs(task, 3, 64, seed=2)]
    if task == "region_segment":
        proto = region_export.to_onnx(model, meta)
        export.check_onnx(proto)
        parity, got = region_export.check_parity(model, proto, meta, *feeds)
    else:
        proto = export.to_onnx(model, meta, "legacy", 17)
        export.check_onnx(proto)
        parity, got = export.check_parity(model, proto, meta, *feeds)
    assert parity["frames"] == 3 and parity["max_abs_diff"] <= parity["tolerance"]
    assert [i.name for i in proto.graph.input] == (["image", "region"] if task == "region_segment" else ["image"])
    assert [o.name for o in proto.graph.output] == list(OUTPUT_NAMES[task])


@pytest.mark.parametrize("task, name", ALL)
def test_a_few_training_steps_reduce_the_loss(task, name):
    model = tiny(task, name).train()
    feeds, target = tiny_set(task)
    criterion = {"classify": torch.nn.CrossEntropyLoss(), "gate_segment": _gate_segment_loss}.get(task, BCEDiceLoss())
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    losses = []
    for _ in range(6):
        loss = criterion(model(*feeds), target)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0], losses


def test_double_unet_deep_supervision_trains_the_first_mask_too():
    """``--aux-weight``: in training DoubleUNet answers both masks and the shared step adds
    the first one's loss; evaluation and export keep the one-tensor contract."""
    from argparse import Namespace

    from nerveseg.training.loop import set_aux_outputs, supervised_step

    model = tiny("segment", "double_unet").train()
    (image,), mask = tiny_set("segment")
    assert set_aux_outputs(model, True) and not set_aux_outputs(tiny("segment", "unet_mobilenet_v2"), True)
    final, first = model(image)
    assert final.shape == first.shape == (4, 1, 64, 64) and not torch.equal(final, first)
    assert isinstance(model.eval()(image), torch.Tensor)  # evaluation and export: one tensor
    model.train()
    criterion, batch = BCEDiceLoss(), (image.permute(0, 3, 1, 2), mask.to(torch.uint8))
    grads = {}
    for weight in (0.0, 1.0):
        model.zero_grad(set_to_none=True)
        torch.manual_seed(1)  # the same dropout masks in the ASPP for the step and the check
        loss, count, scores = supervised_step(model, batch, criterion, Namespace(task="segment", aux_weight=weight))
        loss.backward()
        grads[weight] = model.model.head1.weight.grad.clone()
        torch.manual_seed(1)
        final, first = model(image)  # loss = criterion(final) + w * criterion(first)
        expected = criterion(final, mask) + weight * criterion(first, mask)
        assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    assert count == 4 and scores.shape == (4,)
    assert not torch.allclose(grads[0.0], grads[1.0]), "the first mask's own loss reaches its head"
    set_aux_outputs(model, False)
    assert isinstance(model(image), torch.Tensor)


@pytest.mark.parametrize("name, source, probe", [
    ("deeplabv3plus_mobilenet_v2", "mobilenet_v2",
     ("features.3.conv.1.0.weight", "backbone.features.3.conv.1.0.weight")),
    ("deeplabv3plus_resnet50", "resnet50", ("layer2.0.conv2.weight", "backbone.layer2.0.conv2.weight")),
    ("double_unet", "mobilenet_v2", ("features.5.conv.0.0.weight", "encoder1.5.conv.0.0.weight")),
])
def test_new_segmenters_take_local_imagenet_weights(name, source, probe, tmp_path):
    """Pretrained only from a file the user names; the backbone loads, the head stays random."""
    import torchvision

    state = getattr(torchvision.models, source)(weights=None).state_dict()
    torch.save(state, tmp_path / "imagenet.pth")
    net = models.build_model("segment", name, 1)
    loaded = models.load_pretrained(net, models.get_spec("segment", name), tmp_path / "imagenet.pth")
    assert loaded > 100 and torch.equal(net.state_dict()[probe[1]], state[probe[0]])


def test_deeplab_backbones_run_at_output_stride_16():
    """Dilated, not strided: the deepest map of a 64 px input is 4×4, the low-level one 16×16."""
    for name in ("deeplabv3plus_mobilenet_v2", "deeplabv3plus_resnet50"):
        net = tiny("segment", name).model.eval()
        with torch.inference_mode():
            low, high = net.backbone(torch.zeros(1, 3, 64, 64))
        assert low.shape[-2:] == (16, 16) and high.shape[-2:] == (4, 4), name


@pytest.mark.parametrize("name", ["deeplabv3plus_mobilenet_v2", "double_unet"])
def test_new_segmenters_train_with_nerveseg_train_seg(name, training_seg_data, tmp_path):
    """`nerveseg train seg --model NAME`: the shared CLI and loop, nothing model-specific."""
    import json

    from conftest import _training_cli

    _training_cli("train", "seg", str(training_seg_data), "--out", str(tmp_path), "--model", name, "--epochs", "1",
                  "--size", "32", "--width", "0.25", "--batch-size", "8", "--threads", "1")
    history = json.loads((tmp_path / "history.json").read_text())
    assert len(history) == 1 and 0 <= history[0]["val_iou"] <= 1
    checkpoint = torch.load(tmp_path / "best.pt", weights_only=True)
    assert checkpoint["arch"] == name and checkpoint["args"]["aux_weight"] == 1.0
