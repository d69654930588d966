"""Training for the gate and the segmenter, torchvision-references style.

Flat functions shared by every model family: :func:`get_dataset`,
:func:`train_one_epoch`, :func:`evaluate` and :func:`main`. The model is always the
:class:`~nerveseg.training.models.NormalizedModel` that gets exported, fed
``(N, H, W, 3) uint8`` batches, so training sees the normalisation the engine ships.
"""

from __future__ import annotations

import logging
import math
import random
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader
from tqdm import tqdm

from nerveseg.engines.metadata import IMAGENET_MEAN, IMAGENET_STD, EngineMeta
from nerveseg.realtime.errors import UserError

from . import freeze, runlog
from .checkpoint import read_checkpoint, save_checkpoint
from .data import GATE_CLASSES, SEG_CLASSES, group_of, list_classification, list_segmentation
from .datasets import Augment, ClassificationDataset, SegmentationDataset, build_transforms
from .losses import BCEDiceLoss
from .metrics import iou_dice
from .models import NormalizedModel, build_model, get_spec, load_pretrained
from .plots import curves_png
from .splits import make_splits, read_splits, write_splits

log = logging.getLogger(__name__)
METRIC = {"classify": "accuracy", "segment": "iou"}
# Keys a resumed run takes from the command line; the rest come from the checkpoint.
RESUME_OVERRIDES = ("epochs", "workers", "threads", "data", "out", "resume")
DEFAULT_EPOCHS = 10


def seed_all(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def get_splits(args) -> dict[str, list[str]]:
    """The run's splits: ``--splits DIR``, the run folder's own (resume), or new ones."""
    own = Path(args.out) / "splits"
    source = args.splits or (own if (own / "test.txt").is_file() else None)
    if source:
        splits = read_splits(source, args.data)
    elif args.task == "classify":
        items = list_classification(args.data, tuple(args.classes))
        splits = make_splits(items, lambda item: item.split("/", 1)[0], args.split_seed)
    else:
        splits = make_splits(list_segmentation(args.data), group_of, args.split_seed)
    write_splits(own, splits)
    return splits


def get_dataset(args, split: str, items: list[str]):
    """A :mod:`~nerveseg.training.datasets` dataset; augmentation on ``train`` only."""
    size = (args.size, args.size)
    augment = Augment(args.hflip, args.vflip, args.rotate, args.brightness, args.contrast,
                      args.scale_min) if split == "train" else None
    transforms = build_transforms(size, augment)
    if args.task == "classify":
        return ClassificationDataset(args.data, items, size, tuple(args.classes), transforms)
    return SegmentationDataset(args.data, items, size, transforms)


def create_model(args) -> NormalizedModel:
    """The registry model (ImageNet weights only from ``--pretrained``) in the wrapper."""
    spec = get_spec(args.task, args.model)
    outputs = len(args.classes) if args.task == "classify" else 1
    model = build_model(args.task, args.model, outputs, **args.arch_kwargs)
    if args.pretrained:
        load_pretrained(model, spec, args.pretrained)
    else:
        log.warning("no pretrained weights given: training from scratch")
    return NormalizedModel(model, IMAGENET_MEAN, IMAGENET_STD)


def configure_phase(model: NormalizedModel, args, phase: int) -> torch.optim.Optimizer:
    """Freeze for ``phase`` (1: head only, 2: from ``--unfreeze-from``) and return an
    optimizer over the parameters that train; :func:`lr_at` sets its rate per epoch."""
    if phase == 1:
        count = freeze.freeze_head_only(model.model, get_spec(args.task, args.model).head)
        what = "head only, base frozen"
    else:
        count = freeze.unfreeze_from(model.model, args.unfreeze_from)
        what = f"from {args.unfreeze_from}"
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=lr_at(args, phase, 0), weight_decay=args.weight_decay)
    log.info("phase %d: training %d parameter tensors (%s) at lr %g for %d epochs", phase, count,
             what, lr_at(args, phase, 0), args.head_epochs if phase == 1 else args.epochs)
    return optimizer


def lr_at(args, phase: int, epoch: int) -> float:
    """Learning rate of ``epoch`` (0-based, within ``phase``): ``--lr`` in phase 1,
    ``--finetune-lr`` in phase 2, cosine-annealed to 0 over the phase if asked.

    A closed form instead of a scheduler object: a resumed run gets the same rates
    without scheduler state, even when ``--epochs`` is extended."""
    base, length = (args.lr, args.head_epochs) if phase == 1 else (args.finetune_lr, args.epochs)
    if args.lr_schedule == "constant" or length <= 1:
        return base
    return base * 0.5 * (1 + math.cos(math.pi * epoch / length))


def _criterion(task: str, args) -> nn.Module:
    return nn.CrossEntropyLoss() if task == "classify" else BCEDiceLoss(args.dice_weight)


def _score(task: str, output: torch.Tensor, target: torch.Tensor) -> np.ndarray:
    """Per-sample task metric: correct (0/1) or IoU at logit 0 (= probability 0.5)."""
    if task == "classify":
        return (output.argmax(1) == target).float().numpy()
    return iou_dice((output[:, 0] > 0).numpy(), (target[:, 0] > 0).numpy())[0]


def train_one_epoch(model, criterion, optimizer, loader, epoch: int, args) -> dict[str, float]:
    """One pass over ``loader``; returns ``{"loss", METRIC}`` averaged over samples."""
    model.train()
    freeze.freeze_batchnorm_stats(model.model)
    losses, scores = [], []
    bar = tqdm(loader, desc=f"epoch {epoch + 1} train", leave=False, disable=None)
    for images, targets in bar:
        output = model(images.permute(0, 2, 3, 1))  # (N,3,H,W) → the engine's (N,H,W,3)
        loss = criterion(output, targets.float() if args.task == "segment" else targets)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses += [loss.item()] * len(images)
        scores.append(_score(args.task, output.detach(), targets))
        bar.set_postfix(loss=f"{np.mean(losses):.4f}")
    return {"loss": float(np.mean(losses)), METRIC[args.task]: float(np.mean(np.concatenate(scores)))}


@torch.inference_mode()
def evaluate(model, criterion, loader, args) -> dict[str, float]:
    """Loss and task metric (accuracy, or mean per-image IoU) over ``loader``."""
    model.eval()
    losses, scores = [], []
    for images, targets in tqdm(loader, desc="val", leave=False, disable=None):
        output = model(images.permute(0, 2, 3, 1))
        target = targets.float() if args.task == "segment" else targets
        losses += [criterion(output, target).item()] * len(images)
        scores.append(_score(args.task, output, targets))
    return {"loss": float(np.mean(losses)), METRIC[args.task]: float(np.mean(np.concatenate(scores)))}


def make_meta(args, splits) -> EngineMeta:
    classes = tuple(args.classes) if args.task == "classify" else SEG_CLASSES
    extra = {"arch_kwargs": args.arch_kwargs}
    if args.task == "segment":
        extra["threshold"] = 0.5
    return EngineMeta(model=args.model, task=args.task, classes=classes,
                      input_size=(args.size, args.size), mean=IMAGENET_MEAN, std=IMAGENET_STD,
                      recipe_hash=runlog.recipe_hash(config_of(args), splits),
                      revision=runlog.git_revision(), created=runlog.utc_now(), extra=extra)


def config_of(args) -> dict:
    """The resolved arguments as plain data (what config.yaml and the checkpoint hold)."""
    skip = ("handler", "command", "verbose")
    return {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items() if k not in skip}


def resolve_args(args):
    """Fill the defaults that depend on the task, the model and ``--pretrained``."""
    spec = get_spec(args.task, args.model)
    if args.task == "classify":
        args.classes = list(args.classes or GATE_CLASSES)
    else:
        args.classes = list(SEG_CLASSES)
    if args.width is not None and "width_mult" not in spec.defaults:
        raise UserError(f"--width does not apply to {args.model}")
    args.arch_kwargs = {k: v for k, v in spec.defaults.items()}
    if args.width is not None:
        args.arch_kwargs["width_mult"] = args.width
    if args.head_epochs is None:
        args.head_epochs = 2 if args.pretrained and args.task == "classify" else 0
    if args.unfreeze_from is None:
        # A frozen random base learns nothing: from scratch, phase 2 trains everything.
        args.unfreeze_from = spec.unfreeze_from if args.pretrained else _first_layer(args, spec)
    if args.finetune_lr is None:
        args.finetune_lr = args.lr / 10 if args.head_epochs > 0 else args.lr
    if args.resume:
        return args  # the checkpoint's settings replace these in main(); --epochs may stay None
    args.epochs = DEFAULT_EPOCHS if args.epochs is None else args.epochs
    if args.head_epochs + args.epochs <= 0:
        raise UserError("nothing to train: --head-epochs and --epochs are both 0")
    return args


def _first_layer(args, spec) -> str:
    model = build_model(args.task, args.model, 1, **args.arch_kwargs)
    return next(name for name, _ in model.named_parameters()).rsplit(".", 1)[0]


def _resume(args, out: Path) -> dict:
    """Load ``RUN/last.pt`` and adopt its settings except :data:`RESUME_OVERRIDES`."""
    path = out / "last.pt"
    if not path.is_file():
        raise UserError(f"{path}: nothing to resume (no last.pt in the run folder)")
    ckpt = read_checkpoint(path)
    for key, value in ckpt["args"].items():
        if key not in RESUME_OVERRIDES or getattr(args, key, None) is None:
            setattr(args, key, value)
    log.info("resuming %s after epoch %d (settings from the checkpoint; epochs=%d)",
             path, ckpt["epoch"] + 1, args.epochs)
    return ckpt


def _loaders(args, splits) -> tuple[DataLoader, DataLoader, torch.Generator]:
    train_ds = get_dataset(args, "train", splits["train"])
    val_ds = get_dataset(args, "val", splits["val"])
    generator = torch.Generator()
    # drop_last: a last batch of one breaks BatchNorm at 1×1 feature maps.
    train = DataLoader(train_ds, batch_size=args.batch_size, shuffle=True, num_workers=args.workers,
                       generator=generator, drop_last=len(train_ds) > args.batch_size)
    val = DataLoader(val_ds, batch_size=args.batch_size, num_workers=args.workers)
    log.info("data %s: %d train, %d val, %d test items", args.data, len(train_ds), len(val_ds),
             len(splits["test"]))
    return train, val, generator


def main(args) -> dict:
    """Train per ``args`` (see ``nerveseg train --help``); returns a summary dict."""
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    handler = runlog.log_to_file(out)
    try:
        return _train(args, out)
    finally:
        logging.getLogger().removeHandler(handler)
        handler.close()


def _train(args, out: Path) -> dict:
    ckpt = _resume(args, out) if args.resume else None
    if args.threads:
        torch.set_num_threads(args.threads)
    splits = get_splits(args)
    config = config_of(args)
    runlog.write_config(out, config)
    meta = EngineMeta.from_dict(ckpt["meta"]) if ckpt else make_meta(args, splits)
    seed_all(args.seed)
    model = create_model(args) if not ckpt else _restored(args, ckpt, meta)
    train_loader, val_loader, generator = _loaders(args, splits)
    criterion, metric = _criterion(args.task, args), METRIC[args.task]
    start = ckpt["epoch"] + 1 if ckpt else 0
    history = runlog.read_history(out)[:start] if ckpt else []
    best = ckpt["best"] if ckpt else -float("inf")
    phase = None
    for epoch in range(start, args.head_epochs + args.epochs):
        if phase != (1 if epoch < args.head_epochs else 2):
            phase = 1 if epoch < args.head_epochs else 2
            optimizer = configure_phase(model, args, phase)
            if ckpt and epoch == start and ckpt["phase"] == phase:
                optimizer.load_state_dict(ckpt["optimizer"])  # Adam moments of the phase
        lr = lr_at(args, phase, epoch - (args.head_epochs if phase == 2 else 0))
        for group in optimizer.param_groups:
            group["lr"] = lr
        seed_all(args.seed + epoch)  # per-epoch seeds: a resumed run replays the same batches
        generator.manual_seed(args.seed + epoch)
        row = _epoch(model, criterion, optimizer, train_loader, val_loader, epoch, args)
        history.append({"epoch": epoch, "phase": phase, "lr": lr, **row})
        improved = row[f"val_{metric}"] > best
        best = max(best, row[f"val_{metric}"])
        fields = {"optimizer": optimizer.state_dict(), "epoch": epoch, "phase": phase, "best": best,
                  "args": config, "arch": args.model, "arch_kwargs": args.arch_kwargs,
                  "metrics": history[-1]}
        save_checkpoint(out / "last.pt", model, meta, **fields)
        if improved:
            save_checkpoint(out / "best.pt", model, meta, **fields)
        runlog.write_history(out, history)
        curves_png(history, metric, out / "curves.png", title=f"{args.model} ({out.name})")
        log.info("epoch %d/%d phase %d lr %.2g: train loss %.4f %s %.4f | val loss %.4f %s %.4f%s "
                 "(%.0f s)", epoch + 1, args.head_epochs + args.epochs, phase, lr, row["train_loss"],
                 metric, row[f"train_{metric}"], row["val_loss"], metric, row[f"val_{metric}"],
                 " *best*" if improved else "", row["seconds"])
    return {"out": str(out), "epochs": len(history), f"best_val_{metric}": best}


def _epoch(model, criterion, optimizer, train_loader, val_loader, epoch: int, args) -> dict:
    """Train and validate once; the history row (without epoch/phase/lr)."""
    started = time.perf_counter()
    metric = METRIC[args.task]
    train = train_one_epoch(model, criterion, optimizer, train_loader, epoch, args)
    val = evaluate(model, criterion, val_loader, args)
    return {"train_loss": train["loss"], f"train_{metric}": train[metric], "val_loss": val["loss"],
            f"val_{metric}": val[metric], "seconds": round(time.perf_counter() - started, 2)}


def _restored(args, ckpt, meta: EngineMeta) -> NormalizedModel:
    outputs = len(args.classes) if args.task == "classify" else 1
    model = build_model(args.task, args.model, outputs, **args.arch_kwargs)
    model.load_state_dict(ckpt["model"])
    return NormalizedModel(model, meta.mean, meta.std)
