"""Training for the gate and the segmenter, torchvision-references style.

Flat functions shared by every model family: :func:`get_data`, :func:`get_dataset`,
:func:`create_model`, :func:`configure_phase`, :func:`lr_at`, :func:`train_one_epoch`,
:func:`evaluate` (from :mod:`.loop`) and :func:`main`. The model is always the
:class:`~nerveseg.training.models.NormalizedModel` that gets exported, fed
``(N, H, W, 3) uint8`` batches, so training sees the normalisation the engine ships.
Under ``torchrun`` every process runs :func:`main`; rank 0 alone writes the run folder.
"""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler

from nerveseg.engines.metadata import IMAGENET_MEAN, IMAGENET_STD, EngineMeta
from nerveseg.engines.errors import UserError

from . import distributed, freeze, init_from, runlog, seen
from .checkpoint import save_checkpoint
from .datasets import Augment, ClassificationDataset, SegmentationDataset, build_transforms
from .distributed import Dist, seed_all
from .experiment import did_you_mean, write_run_config
from .importers import ImportedDataset, format_report, import_dataset, write_skipped
from .losses import BCEDiceLoss
from .loop import METRIC, evaluate, set_aux_outputs, train_one_epoch
from .models import NormalizedModel, build_model, get_spec, load_pretrained
from .plots import curves_png
from .resolve import DEFAULT_EPOCHS, config_of, experiment_of, make_meta, resolve_args, resume
from .splits import dataset_splits

log = logging.getLogger(__name__)
__all__ = ["DEFAULT_EPOCHS", "METRIC", "config_of", "configure_phase", "create_model", "evaluate",
           "get_data", "get_dataset", "lr_at", "main", "make_meta", "resolve_args", "seed_all",
           "train_one_epoch"]


def get_data(args, out: Path | None, where: Dist = Dist()) -> tuple[ImportedDataset, dict[str, list[str]]]:
    """Import and validate ``args.data`` (refusing bad files unless ``--skip-bad``), then the
    split: ``--splits DIR``, the run folder's own, or a new one (:func:`.splits.dataset_splits`).
    Rank 0 writes ``RUN/splits``, ``import_report.json`` and ``skipped.txt``."""
    dataset = import_dataset(args.data, args.layout, task=args.task, classes=args.classes,
                             skip_bad=args.skip_bad, annotations=args.annotations)
    if args.task == "segment":
        resolve_target(args, dataset)
    splits: dict | UserError | None = None
    if where.main:
        skipped = write_skipped(out / "skipped.txt", dataset) if out else None
        log.info("data check:\n%s", format_report(dataset, skipped))
        try:
            before = seen.inherited(*init_from.meta_of(args))
            pinned = seen.pinned(dataset.root, dataset.items, before)
            splits = dataset_splits(out, dataset, args.split_seed, args.splits, pinned)
            if pinned and not (splits["val"] and splits["test"]):
                log.warning("%s: with the %d images the --init model has seen kept in train, the %s split is "
                            "empty: add images it has not seen to score this run", args.data, len(pinned),
                            "validation" if not splits["val"] else "test")
            args.seen = seen.record(before, [(dataset.root, splits)])  # into the engine's metadata
        except UserError as exc:
            splits = exc  # sent on, so that no process waits for lists that never come
    splits = distributed.broadcast(splits)  # every process trains on rank 0's lists
    if isinstance(splits, UserError):
        raise splits
    return dataset, splits


def resolve_target(args, dataset: ImportedDataset) -> None:
    """``args.classes``: the mask classes; ``args.target``: the one segmented (the only
    foreground class, else ``nerve``, else it must be given)."""
    args.classes = list(dataset.classes)
    foreground = args.classes[1:]
    if args.target is None:
        if len(foreground) != 1 and "nerve" not in foreground:
            raise UserError(f"{args.data}: {len(foreground)} mask classes ({', '.join(foreground)}); "
                            "give data.target (--target NAME)")
        args.target = foreground[0] if len(foreground) == 1 else "nerve"
    if args.target not in foreground:
        raise UserError(f"--target {args.target!r}{did_you_mean(args.target, foreground)}: not a mask "
                        f"class of {args.data} ({', '.join(foreground)})")


def get_dataset(args, split: str, items: list[str], data: ImportedDataset):
    """A :mod:`~nerveseg.training.datasets` dataset of ``items``; augmentation on ``train`` only."""
    size = (args.size, args.size)
    augment = Augment(args.hflip, args.vflip, args.rotate, args.brightness, args.contrast,
                      args.scale_min) if split == "train" else None
    transforms = build_transforms(size, augment)
    by_item = data.by_item()
    samples = [by_item[item] for item in items]
    if args.task == "classify":
        return ClassificationDataset(samples, size, tuple(args.classes), transforms)
    # Binary masks: any non-zero pixel; with more classes only the target's id.
    foreground = args.classes.index(args.target) if len(args.classes) > 2 else None
    return SegmentationDataset(samples, size, transforms, foreground)


def create_model(args) -> NormalizedModel:
    """The registry model in the wrapper: weights of a trained model (``--init``), ImageNet
    weights (``--pretrained``; only from a local file) or none."""
    spec = get_spec(args.task, args.model)
    outputs = len(args.classes) if args.task == "classify" else 1
    model = build_model(args.task, args.model, outputs, **args.arch_kwargs)
    init = init_from.load(args)
    if init:
        init_from.check_fit(args, init)
        init_from.load_weights(model, init)
    elif args.pretrained:
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


def criterion_of(args) -> nn.Module:
    return nn.CrossEntropyLoss() if args.task == "classify" else BCEDiceLoss(args.dice_weight)


def loaders(args, splits, data: ImportedDataset, where: Dist = Dist()):
    """``(train, val, generator, train sampler or None)``; under torchrun each process
    reads its :class:`DistributedSampler` shard (val padded to equal shards)."""
    train_ds = get_dataset(args, "train", splits["train"], data)
    val_ds = get_dataset(args, "val", splits["val"], data)
    generator = torch.Generator()
    sampler = DistributedSampler(train_ds, seed=args.seed, drop_last=True) if where.enabled else None
    val_sampler = DistributedSampler(val_ds, shuffle=False) if where.enabled else None
    common = {"num_workers": args.workers, "worker_init_fn": distributed.seed_worker,
              "pin_memory": where.device.type == "cuda"}
    # drop_last: a last batch of one breaks BatchNorm at 1×1 feature maps.
    train = DataLoader(train_ds, batch_size=args.batch_size, shuffle=sampler is None, sampler=sampler,
                       generator=generator, drop_last=len(train_ds) > args.batch_size * where.world, **common)
    val = DataLoader(val_ds, batch_size=args.batch_size, sampler=val_sampler, **common)
    log.info("data %s: %d train, %d val, %d test items", args.data, len(train_ds), len(val_ds),
             len(splits["test"]))
    return train, val, generator, sampler


def main(args) -> dict:
    """Train per ``args`` (see ``nerveseg train --help``); returns a summary dict."""
    where = distributed.setup(args.device, args.deterministic)
    out = Path(args.out)
    handler = None
    if where.main:
        out.mkdir(parents=True, exist_ok=True)
        handler = runlog.log_to_file(out)
    else:  # rank-0 logging: the other processes report warnings only
        logging.getLogger("nerveseg").setLevel(logging.WARNING)
    try:
        return {**_train(args, out, where), "rank": where.rank, "world_size": where.world}
    finally:
        if handler is not None:
            logging.getLogger().removeHandler(handler)
            handler.close()
        distributed.cleanup()


def _prepare(args, out: Path, where: Dist):
    """Resume, validate the data, split, write the configs: ``(ckpt, data, splits, config, meta)``."""
    ckpt = resume(args, out) if args.resume else None
    if args.threads:
        torch.set_num_threads(args.threads)
    data, splits = get_data(args, out, where)
    config = config_of(args)
    if where.main:
        runlog.write_config(out, config)
        write_run_config(out, experiment_of(args), runlog.git_revision(), runlog.utc_now(),
                         getattr(args, "config", None), getattr(args, "command_line", ""))
    meta = EngineMeta.from_dict(ckpt["meta"]) if ckpt else make_meta(args, splits)
    return ckpt, data, splits, config, meta


def _train(args, out: Path, where: Dist) -> dict:
    ckpt, data, splits, config, meta = _prepare(args, out, where)
    seed_all(args.seed)
    model = (_restored(args, ckpt, meta) if ckpt else create_model(args)).to(where.device)
    deep_supervision = args.aux_weight > 0
    if set_aux_outputs(model, deep_supervision) and deep_supervision:
        log.info("deep supervision: %s's auxiliary mask is trained too (loss weight %g)", args.model, args.aux_weight)
    train_loader, val_loader, generator, sampler = loaders(args, splits, data, where)
    criterion, metric = criterion_of(args), METRIC[args.task]
    scaler = distributed.grad_scaler(where.device, distributed.use_amp(args, where.device))
    start = ckpt["epoch"] + 1 if ckpt else 0
    history = runlog.read_history(out)[:start] if ckpt else []
    best, phase = (ckpt["best"] if ckpt else -float("inf")), None
    for epoch in range(start, args.head_epochs + args.epochs):
        if phase != (1 if epoch < args.head_epochs else 2):
            phase = 1 if epoch < args.head_epochs else 2
            resumed = ckpt if ckpt and epoch == start and ckpt["phase"] == phase else None
            optimizer, wrapped = _enter_phase(model, args, phase, where, scaler, resumed)
        lr = lr_at(args, phase, epoch - (args.head_epochs if phase == 2 else 0))
        for group in optimizer.param_groups:
            group["lr"] = lr
        # Per-epoch seeds: a resumed run replays the same batches; ranks augment apart.
        seed_all(args.seed + epoch + 7919 * where.rank)
        generator.manual_seed(args.seed + epoch)
        if sampler is not None:
            sampler.set_epoch(epoch)
        row = _epoch(wrapped, criterion, optimizer, scaler, train_loader, val_loader, epoch, args)
        history.append({"epoch": epoch, "phase": phase, "lr": lr, **row})
        improved, best = row[f"val_{metric}"] > best, max(best, row[f"val_{metric}"])
        if where.main:
            fields = {"optimizer": optimizer.state_dict(), "scaler": scaler.state_dict(), "epoch": epoch,
                      "phase": phase, "best": best, "args": config, "arch": args.model,
                      "arch_kwargs": args.arch_kwargs, "metrics": history[-1]}
            save_run_state(out, model, meta, history, improved, fields, metric, args.model)
        _log_epoch(args, history[-1], metric, improved)
    distributed.barrier()  # no process leaves (and tears down the group) before rank 0 saved
    return {"out": str(out), "epochs": len(history), f"best_val_{metric}": best}


def _enter_phase(model, args, phase: int, where: Dist, scaler, resumed: dict | None):
    """Freeze for ``phase``, a new optimizer (with the checkpoint's moments when resuming
    inside that phase), and the model wrapped for DDP after the (un)freezing."""
    optimizer = configure_phase(model, args, phase)
    if resumed is not None:
        optimizer.load_state_dict(resumed["optimizer"])  # Adam moments of the phase
        if resumed.get("scaler"):
            scaler.load_state_dict(resumed["scaler"])
    return optimizer, distributed.wrap(model, where)


def _log_epoch(args, row: dict, metric: str, improved: bool) -> None:
    log.info("epoch %d/%d phase %d lr %.2g: train loss %.4f %s %.4f | val loss %.4f %s %.4f%s (%.0f s)",
             row["epoch"] + 1, args.head_epochs + args.epochs, row["phase"], row["lr"], row["train_loss"],
             metric, row[f"train_{metric}"], row["val_loss"], metric, row[f"val_{metric}"],
             " *best*" if improved else "", row["seconds"])


def save_run_state(out: Path, model: NormalizedModel, meta: EngineMeta, history: list[dict],
                   improved: bool, fields: dict, metric: str, title: str) -> None:
    """``last.pt`` (and ``best.pt`` if ``improved``), ``history.*`` and ``curves.png``:
    the run folder after one epoch, for any family whose model is a NormalizedModel."""
    save_checkpoint(out / "last.pt", model, meta, **fields)
    if improved:
        save_checkpoint(out / "best.pt", model, meta, **fields)
    runlog.write_history(out, history)
    curves_png(history, metric, out / "curves.png", title=f"{title} ({out.name})")


def _epoch(model, criterion, optimizer, scaler, train_loader, val_loader, epoch: int, args) -> dict:
    """Train and validate once; the history row (without epoch/phase/lr)."""
    started = time.perf_counter()
    metric = METRIC[args.task]
    fit = train_one_epoch(model, criterion, optimizer, train_loader, epoch, args, scaler=scaler)
    val = evaluate(model, criterion, val_loader, args)
    return {"train_loss": fit["loss"], f"train_{metric}": fit[metric], "val_loss": val["loss"],
            f"val_{metric}": val[metric], "seconds": round(time.perf_counter() - started, 2)}


def _restored(args, ckpt, meta: EngineMeta) -> NormalizedModel:
    outputs = len(args.classes) if args.task == "classify" else 1
    model = build_model(args.task, args.model, outputs, **args.arch_kwargs)
    model.load_state_dict(ckpt["model"])
    return NormalizedModel(model, meta.mean, meta.std)
