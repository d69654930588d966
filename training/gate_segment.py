"""``nerveseg train gate-seg``: the gate and the segmenter as one network (task ``gate_segment``).

Starts from a trained U-Net checkpoint (encoder, decoder and mask head are kept) and adds
a classification head on the encoder's deepest features (:mod:`.models.unet_gate`):

1. ``--head-epochs``: the new head alone, on the gate's class folders; everything else
   frozen (BatchNorm statistics too), so the mask stays exactly as good;
2. ``--epochs``: every layer at ``--lr / 10``, each step one gate batch (cross-entropy)
   and one segmentation batch (BCE + Dice), so the encoder learns the classes without
   forgetting the nerve.

It reuses the gate's and the U-Net's split lists (``--gate-splits``, ``--seg-splits``), so
its test figures are on the very images the two-engine pair was tested on. Flat
functions in the torchvision-references style; the shared loops of :mod:`.loop` with a
step per phase.
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import types
from pathlib import Path

log = logging.getLogger(__name__)
ARCH = "unet_gate_mobilenet_v2"


def add_parser(sub) -> None:
    p = sub.add_parser("gate-seg", help="gate and segmenter in one network, from a trained U-Net",
                       description=__doc__.splitlines()[0].replace("``", ""))
    p.set_defaults(handler=run, task="gate_segment")
    p.add_argument("--gate-data", required=True, help="class folders (nerve/, opening_wound/, tendon/)")
    p.add_argument("--seg-data", required=True, help="segmentation set (Supervisely img/ + masks_machine/)")
    p.add_argument("--gate-splits", required=True, help="split lists of the gate's data (its run's splits/)")
    p.add_argument("--seg-splits", required=True, help="split lists of the segmentation data")
    p.add_argument("--init-seg", required=True, help="trained U-Net checkpoint (unet_mobilenet_v2) to start from")
    p.add_argument("--out", required=True, type=Path, help="run folder")
    p.add_argument("--head-epochs", type=int, default=4, help="epochs training only the new class head first")
    p.add_argument("--epochs", type=int, default=4, help="joint epochs after the head phase")
    p.add_argument("--lr", type=float, default=2e-3, help="head rate; the joint phase runs at a tenth")
    p.add_argument("--batch-size", type=int, default=8, help="images per batch (gate and mask batches alike)")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's choice)")
    p.add_argument("--seed", type=int, default=0, help="seed for init, shuffling and augmentation")


def run(args: argparse.Namespace) -> int:
    summary = main(args)
    print(" ".join(f"{k}={v}" for k, v in summary.items()))
    return 0


def get_data(args) -> dict:
    """``{"gate": {split: dataset}, "seg": {split: dataset}}``; augmentation on train only."""
    from .datasets import ClassificationDataset, SegmentationDataset, build_transforms
    from .experiment import Augment
    from .importers import import_dataset
    from .splits import read_splits

    size = tuple(args.input_size)
    out = {}
    for part, root, folder, task in (("gate", args.gate_data, args.gate_splits, "classify"),
                                     ("seg", args.seg_data, args.seg_splits, "segment")):
        data = import_dataset(root, task=task)
        by_item, splits = data.by_item(), read_splits(folder, root)
        out[part] = {}
        for split, items in splits.items():
            samples = [by_item[item] for item in items]
            transforms = build_transforms(size, Augment()) if split == "train" else None
            out[part][split] = (ClassificationDataset(samples, size, args.classes, transforms) if part == "gate"
                                else SegmentationDataset(samples, size, transforms))
        out[part]["items"] = splits
    return out


def create_model(args):
    """The U-Net's weights in a :class:`UNetGate` with a fresh classification head."""
    from .checkpoint import read_checkpoint
    from .models import NormalizedModel, build_model

    ckpt = read_checkpoint(args.init_seg)
    if ckpt["arch"] != "unet_mobilenet_v2":
        raise ValueError(f"{args.init_seg}: a gate-seg network starts from a unet_mobilenet_v2 checkpoint, "
                         f"not {ckpt['arch']!r}")
    args.arch_kwargs = dict(ckpt["arch_kwargs"])
    args.input_size = tuple(ckpt["meta"]["input_size"])
    net = build_model("gate_segment", ARCH, len(args.classes), **args.arch_kwargs)
    missing, unexpected = net.load_state_dict(ckpt["model"], strict=False)
    if unexpected or any(not key.startswith("classifier.") for key in missing):
        raise ValueError(f"{args.init_seg}: weights do not fit {ARCH} (missing {missing}, unexpected {unexpected})")
    return NormalizedModel(net, ckpt["meta"]["mean"], ckpt["meta"]["std"])


def _normalised(model, images):
    """``images`` ``(N, 3, H, W) uint8`` → the network's normalised float input (as the wrapper does)."""
    return images.float() * model.scale - model.shift


def gate_step(model, batch, criterion, args):
    """Cross-entropy of the class head alone (no decoder: cheaper)."""
    import torch

    images, labels = batch
    logits = model.model.classify(_normalised(model, images))
    loss = torch.nn.functional.cross_entropy(logits, labels)
    return loss, len(images), (logits.argmax(1) == labels).float().numpy()


def seg_step(model, batch, criterion, args):
    """BCE + Dice of the mask head; per-image IoU as the score."""
    from .losses import BCEDiceLoss
    from .metrics import iou_dice

    images, masks = batch
    mask_logits = model.model(_normalised(model, images))[1]
    loss = BCEDiceLoss()(mask_logits, masks.float())
    iou = iou_dice((mask_logits.detach()[:, 0] > 0).numpy(), (masks[:, 0] > 0).numpy())[0]
    return loss, len(images), iou


def joint_step(model, batch, criterion, args):
    """One gate batch and one segmentation batch, losses summed; the gate's accuracy as score."""
    gate_batch, seg_batch = batch
    gate_loss, n, scores = gate_step(model, gate_batch, criterion, args)
    seg_loss, _, _ = seg_step(model, seg_batch, criterion, args)
    return gate_loss + seg_loss, n, scores


def loaders(data: dict, args) -> dict:
    from torch.utils.data import DataLoader

    def make(dataset, shuffle):
        return DataLoader(dataset, batch_size=args.batch_size, shuffle=shuffle)

    return {"gate_train": make(data["gate"]["train"], True), "seg_train": make(data["seg"]["train"], True),
            "gate_val": make(data["gate"]["val"], False), "seg_val": make(data["seg"]["val"], False)}


def configure_phase(model, args, phase: int):
    import torch

    from .freeze import freeze_head_only

    if phase == 1:
        freeze_head_only(model.model, ("classifier",))
        lr = args.lr
    else:
        for parameter in model.parameters():
            parameter.requires_grad_(True)
        lr = args.lr / 10
    return torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr, weight_decay=1e-4)


def train_epoch(model, optimizer, batches, phase: int, epoch: int, args) -> dict:
    """One epoch of ``phase``; validation of both heads; the history row."""
    from .loop import evaluate, train_one_epoch

    step = gate_step if phase == 1 else joint_step
    fit = train_one_epoch(model, None, optimizer, _phase_loader(batches, phase), epoch, _task("classify"),
                          step=step)
    gate = evaluate(model, None, batches["gate_val"], _task("classify"), step=gate_step)
    seg = evaluate(model, None, batches["seg_val"], _task("segment"), step=seg_step)
    return {"epoch": epoch, "phase": phase, "train_loss": fit["loss"], "train_accuracy": fit["accuracy"],
            "val_accuracy": gate["accuracy"], "val_iou": seg["iou"], "val_loss": gate["loss"] + seg["loss"]}


def _task(task: str):
    return types.SimpleNamespace(task=task, amp=False)


def _phase_loader(batches: dict, phase: int):
    if phase == 1:
        return batches["gate_train"]
    # Every gate batch paired with a segmentation batch, cycling the shorter set.
    return zip(batches["gate_train"], itertools.cycle(batches["seg_train"]))


def seen_record(args, data: dict):
    """The images this network has seen: the U-Net's (``--init-seg``) and both parts' train and
    val splits; refused when a part's validation or test split holds one the U-Net has seen."""
    from . import seen
    from .checkpoint import read_checkpoint
    from nerveseg.engines.metadata import EngineMeta

    before = seen.inherited(EngineMeta.from_dict(read_checkpoint(args.init_seg)["meta"], args.init_seg),
                            args.init_seg)
    parts = ((args.gate_data, data["gate"]["items"]), (args.seg_data, data["seg"]["items"]))
    for root, splits in parts:
        for split in ("val", "test"):
            seen.refuse_seen(before, root, splits[split], split, args.init_seg)
    return seen.record(before, list(parts))


def make_meta(args, data: dict):
    """``(EngineMeta, resolved config)``: the recipe hash covers the config and both splits."""
    from nerveseg.engines.metadata import EngineMeta

    from . import runlog
    from .splits import splits_digest

    def plain(value):
        return str(value) if isinstance(value, Path) else list(value) if isinstance(value, tuple) else value

    config = {k: plain(v) for k, v in vars(args).items() if k != "handler"}
    config["gate_splits_sha256"] = splits_digest(data["gate"]["items"])
    recipe = runlog.recipe_hash(config, data["seg"]["items"])
    return EngineMeta(model=ARCH, task="gate_segment", classes=tuple(args.classes), input_size=args.input_size,
                      recipe_hash=recipe, revision=runlog.git_revision(),
                      created=runlog.utc_now(),
                      extra={"mask_class": "nerve", "threshold": 0.5, "arch_kwargs": args.arch_kwargs,
                             "seen": seen_record(args, data).to_extra()}), config


def main(args) -> dict:
    """Train, keep the best epoch by the mean of val accuracy and val IoU, test both heads."""
    import shutil

    import torch

    from . import runlog
    from .distributed import seed_all
    from .train import save_run_state

    if args.threads:
        torch.set_num_threads(args.threads)
    seed_all(args.seed)
    args.classes = ("nerve", "opening_wound", "tendon")
    args.out.mkdir(parents=True, exist_ok=True)
    model = create_model(args)
    data = get_data(args)
    meta, config = make_meta(args, data)
    runlog.write_config(args.out, config)
    shutil.copytree(args.seg_splits, args.out / "splits", dirs_exist_ok=True)  # export's parity frames
    batches, history, best = loaders(data, args), [], -1.0
    for phase, epochs in ((1, args.head_epochs), (2, args.epochs)):
        optimizer = configure_phase(model, args, phase)
        for _ in range(epochs):
            row = train_epoch(model, optimizer, batches, phase, len(history), args)
            history.append(row)
            score = (row["val_accuracy"] + row["val_iou"]) / 2
            improved, best = score > best, max(best, score)
            log.info("epoch %d phase %d: val accuracy %.4f val IoU %.4f%s", row["epoch"] + 1, phase,
                     row["val_accuracy"], row["val_iou"], " *best*" if improved else "")
            fields = {"arch": ARCH, "arch_kwargs": args.arch_kwargs, "epoch": row["epoch"], "metrics": row,
                      "args": {**config, "data": str(args.seg_data)}}
            save_run_state(args.out, model, meta, history, improved, fields, "accuracy", "gate-seg")
    return test(args, data)


def test(args, data: dict) -> dict:
    """Both heads of ``best.pt`` on both test splits, through the engine interface;
    ``RUN/eval_test/metrics.json`` (task ``gate_segment``, embeddable by ``nerveseg export``)."""
    from nerveseg.engines.loader import load_engine

    from .evaluation import evaluate_gate, evaluate_seg, summary

    engine = load_engine(args.out / "best.pt", backend="torch", task="gate_segment")
    gate = evaluate_gate(engine, args.gate_data, data["gate"]["items"]["test"])
    seg = evaluate_seg(engine, args.seg_data, data["seg"]["items"]["test"])
    result = {"gate_accuracy": round(gate["accuracy"], 4), "gate_mcc": round(gate["mcc"], 4),
              "nerve_iou": round(seg["iou"]["mean"], 4), "dice": round(seg["dice"]["mean"], 4)}
    folder = args.out / "eval_test"
    folder.mkdir(exist_ok=True)
    report = {"task": "gate_segment", "split": "test", "summary": {**summary(gate, "classify"),
                                                                   **{f"seg_{k}": v for k, v in summary(seg, "segment").items()}}}
    (folder / "metrics.json").write_text(json.dumps(report, indent=2, default=float))
    return result
