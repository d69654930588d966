"""Mask R-CNN training, torchvision-references style: :func:`get_dataset`,
:func:`train_one_epoch` (Mask R-CNN's loss dict), :func:`evaluate` (mask/box mAP), :func:`main`.

Shares the rest of training's run folder (:mod:`..runlog`: config.yaml, history, train.log),
split lists (:mod:`..splits`), checkpoint dict (:func:`..checkpoint.save_checkpoint`: the
bare detector's state dict, ``meta``, ``arch``, ``arch_kwargs``, ``optimizer``, ``epoch``,
``best``, ``args``, ``metrics``) and seeds (:func:`..train.seed_all`). The best checkpoint
is the one with the highest validation mask mAP.
"""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from nerveseg.engines.metadata import IMAGENET_MEAN, IMAGENET_STD, EngineMeta
from nerveseg.engines.errors import UserError

from .. import runlog
from ..checkpoint import save_checkpoint
from ..datasets import Augment, build_transforms
from ..models import load_pretrained
from ..plots import curves_png
from ..resolve import resume
from ..splits import dataset_splits
from ..train import config_of, seed_all
from .data import engine_classes, load_instances
from .dataset import InstanceDataset, collate
from .evaluate import evaluate_instance
from .model import build_instance_model, get_instance_spec

log = logging.getLogger(__name__)
METRIC = "segm_map"
DEFAULT_EPOCHS = 12
RESUME_OVERRIDES = ("epochs", "workers", "threads", "data", "out", "resume")
CLIP_NORM = 10.0  # Mask R-CNN from scratch can spike early; clipping keeps AdamW on track


def resolve_args(args):
    """Fill ``arch_kwargs`` (the registry defaults, ``--size``, ``--width``, ``--detections``;
    frozen BatchNorm statistics with ``--pretrained``) and the default epochs."""
    spec = get_instance_spec(args.model)
    if args.width is not None and "width_mult" not in spec.defaults:
        raise UserError(f"--width does not apply to {args.model}")
    kwargs = dict(spec.defaults)
    kwargs.update({k: v for k, v in (("width_mult", args.width), ("detections", args.detections)) if v is not None})
    kwargs["frozen_bn"] = bool(args.pretrained)
    args.arch_kwargs = kwargs
    if not args.resume:
        args.epochs = DEFAULT_EPOCHS if args.epochs is None else args.epochs
        if args.epochs <= 0:
            raise UserError("nothing to train: --epochs is 0")
    return args


def get_splits(args, dataset) -> dict[str, list[str]]:
    """The shared split (:func:`..splits.resolve_splits`): ``--splits DIR``, the run folder's
    own (resume), or a new one stratified by each sample's group (its class folder)."""
    splits = dataset_splits(args.out, dataset, args.split_seed, args.splits)
    if not splits["train"] or not splits["val"]:
        raise UserError(f"{args.data}: too few images for a train and a val split ({len(dataset.items)})")
    return splits


def get_dataset(args, dataset, split: str, items: list[str]) -> InstanceDataset:
    """The split's :class:`InstanceDataset`; augmentation on ``train`` only."""
    size = (args.size, args.size)
    augment = Augment(args.hflip, args.vflip, args.rotate, args.brightness, args.contrast,
                      args.scale_min) if split == "train" else None
    return InstanceDataset(dataset, items, size, build_transforms(size, augment))


def create_model(args, classes: tuple[str, ...]):
    """The registry detector in the engine wrapper; weights only from ``--pretrained``."""
    model = build_instance_model(args.model, classes, args.size, **args.arch_kwargs)
    if args.pretrained:
        load_pretrained(model.model, get_instance_spec(args.model), args.pretrained)
    else:
        log.warning("no pretrained weights given: training from scratch")
    return model


def lr_at(args, step: int, total: int) -> float:
    """Linear warm-up over ``--warmup`` iterations, then cosine to 0 at ``total`` (closed
    form: a resumed run gets the same rates without scheduler state)."""
    warm = min(1.0, (step + 1) / max(args.warmup, 1))
    return args.lr * warm * 0.5 * (1 + math.cos(math.pi * min(step / max(total, 1), 1.0)))


def train_one_epoch(model, optimizer, loader, epoch: int, args, step: int, total: int) -> dict[str, float]:
    """One pass; returns the mean of each Mask R-CNN loss and their sum (``loss``)."""
    model.train()
    sums: dict[str, float] = {}
    count = 0
    bar = tqdm(loader, desc=f"epoch {epoch + 1} train", leave=False, disable=None)
    for index, (images, targets) in enumerate(bar):
        if args.max_iters and index >= args.max_iters:
            break
        for group in optimizer.param_groups:
            group["lr"] = lr_at(args, step, total)
        losses = model.losses(images, targets)
        loss = sum(losses.values())
        if not torch.isfinite(loss):
            raise UserError(f"{args.out}: loss is {loss.item()} at epoch {epoch + 1}; lower --lr")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), CLIP_NORM)
        optimizer.step()
        step, count = step + 1, count + 1
        for name, value in {"loss": loss, **losses}.items():
            sums[name] = sums.get(name, 0.0) + value.item()
        bar.set_postfix(loss=f"{sums['loss'] / count:.3f}")
    return {name: value / max(count, 1) for name, value in sums.items()}


@torch.no_grad()
def validation_loss(model, loader, args) -> float:
    """The summed Mask R-CNN loss on ``loader`` (train-mode heads, BatchNorm statistics frozen)."""
    model.train()
    for module in model.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            module.eval()
    losses = [sum(model.losses(images, targets).values()).item()
              for index, (images, targets) in enumerate(loader) if not args.max_iters or index < args.max_iters]
    model.eval()
    return float(np.mean(losses)) if losses else float("nan")


def evaluate(model, dataset, items: list[str]) -> dict:
    """Mask and box mAP of ``model`` on ``items`` (see :mod:`.evaluate`)."""
    return evaluate_instance(model.eval(), dataset, items)


def make_meta(args, classes: tuple[str, ...], splits) -> EngineMeta:
    extra = {"arch_kwargs": args.arch_kwargs, "score_threshold": 0.5, "mask_threshold": 0.5}
    return EngineMeta(model=args.model, task="instance", classes=classes, input_size=(args.size, args.size),
                      mean=IMAGENET_MEAN, std=IMAGENET_STD,
                      recipe_hash=runlog.recipe_hash(config_of(args), splits),
                      revision=runlog.git_revision(), created=runlog.utc_now(), extra=extra)


def main(args) -> dict:
    """Train per ``args`` (see ``nerveseg train instance --help``); returns a summary dict."""
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    handler = runlog.log_to_file(out)
    try:
        return _train(resolve_args(args), out)
    finally:
        logging.getLogger().removeHandler(handler)
        handler.close()


def _setup(args, out: Path):
    """Data, splits, model, optimizer and the checkpoint to resume from (or None)."""
    ckpt = resume(args, out, RESUME_OVERRIDES) if args.resume else None
    if args.threads:
        torch.set_num_threads(args.threads)
    dataset = load_instances(args.data, args.layout, args.skip_bad, args.annotations)
    splits = get_splits(args, dataset)
    runlog.write_config(out, config_of(args))
    classes = engine_classes(dataset)
    meta = EngineMeta.from_dict(ckpt["meta"]) if ckpt else make_meta(args, classes, splits)
    if ckpt and tuple(meta.classes) != classes:
        raise UserError(f"{args.data}: classes {list(classes)} differ from the checkpoint's {list(meta.classes)}")
    seed_all(args.seed)
    model = create_model(args, classes) if not ckpt else build_instance_model(
        args.model, classes, args.size, **args.arch_kwargs)
    if ckpt:
        model.model.load_state_dict(ckpt["model"])
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=args.lr, weight_decay=args.weight_decay)
    if ckpt:
        optimizer.load_state_dict(ckpt["optimizer"])
    log.info("data %s (%s): %d train, %d val, %d test images; classes %s", args.data, dataset.layout,
             len(splits["train"]), len(splits["val"]), len(splits["test"]), list(classes[1:]))
    return dataset, splits, meta, model, optimizer, ckpt


def _train(args, out: Path) -> dict:
    dataset, splits, meta, model, optimizer, ckpt = _setup(args, out)
    generator = torch.Generator()
    train_loader = DataLoader(get_dataset(args, dataset, "train", splits["train"]), args.batch_size,
                              shuffle=True, num_workers=args.workers, collate_fn=collate, generator=generator)
    val_loader = DataLoader(get_dataset(args, dataset, "val", splits["val"]), args.batch_size,
                            num_workers=args.workers, collate_fn=collate)
    per_epoch = min(len(train_loader), args.max_iters or len(train_loader))
    start = ckpt["epoch"] + 1 if ckpt else 0
    history = runlog.read_history(out)[:start] if ckpt else []
    best = ckpt["best"] if ckpt else -float("inf")
    for epoch in range(start, args.epochs):
        seed_all(args.seed + epoch)  # per-epoch seeds: a resumed run replays the same batches
        generator.manual_seed(args.seed + epoch)
        began = time.perf_counter()
        train = train_one_epoch(model, optimizer, train_loader, epoch, args, epoch * per_epoch,
                                args.epochs * per_epoch)
        row = _row(epoch, args, train, validation_loss(model, val_loader, args),
                   evaluate(model, dataset, splits["val"]), began)
        history.append(row)
        improved, best = row[f"val_{METRIC}"] > best, max(best, row[f"val_{METRIC}"])
        fields = {"optimizer": optimizer.state_dict(), "epoch": epoch, "phase": 2, "best": best,
                  "args": config_of(args), "arch": args.model, "arch_kwargs": args.arch_kwargs, "metrics": row}
        save_checkpoint(out / "last.pt", model, meta, **fields)
        if improved:
            save_checkpoint(out / "best.pt", model, meta, **fields)
        runlog.write_history(out, history)
        curves_png(history, METRIC, out / "curves.png", title=f"{args.model} ({out.name})")
        log.info("epoch %d/%d: train loss %.3f | val loss %.3f mask mAP %.3f (AP50 %.3f) box mAP %.3f%s (%.0f s)",
                 epoch + 1, args.epochs, row["train_loss"], row["val_loss"], row["val_segm_map"],
                 row["val_segm_map_50"], row["val_bbox_map"], " *best*" if improved else "", row["seconds"])
    return {"out": str(out), "epochs": len(history), f"best_val_{METRIC}": round(best, 4)}


def _row(epoch: int, args, train: dict, val_loss: float, report: dict, began: float) -> dict:
    """One history row: lr, train losses, val loss and the val mAP figures."""
    row = {"epoch": epoch, "phase": 2, "lr": args.lr, "train_loss": train.get("loss", float("nan")),
           **{f"train_{k}": v for k, v in train.items() if k != "loss"}, "val_loss": val_loss}
    for kind in ("segm", "bbox"):
        for key in ("map", "map_50", "map_75"):
            row[f"val_{kind}_{key}"] = report[kind][key]
    row["seconds"] = round(time.perf_counter() - began, 2)
    return row
