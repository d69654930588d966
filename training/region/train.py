"""``nerveseg train region``: train a region-conditioned segmenter, then test it.

The shared flat functions of :mod:`nerveseg.training.train` do the work: ``resolve_args``,
``create_model``, ``configure_phase``, ``lr_at``, ``train_one_epoch`` and ``evaluate``
(with :func:`.dataset.region_step`), ``save_run_state``; the run folder is the same
(``config.yaml``, ``splits/``, ``history``, ``curves.png``, ``best.pt``/``last.pt``,
``train.log``). One process (CPU or one GPU, mixed precision on CUDA); at the end the
best checkpoint is evaluated on the test split into ``RUN/test/``.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from nerveseg.engines.metadata import IMAGENET_MEAN, IMAGENET_STD, EngineMeta
from nerveseg.engines.errors import UserError
from nerveseg.training import distributed, runlog, train
from nerveseg.training.losses import BCEDiceLoss
from nerveseg.training.splits import read_splits, split_items, write_splits

from .data import list_images, read_index, samples_of
from .dataset import RegionDataset, region_step

log = logging.getLogger(__name__)
TASK = "region_segment"


def get_splits(args, index: dict) -> dict[str, list[str]]:
    """Image-level splits: ``--splits DIR``, or new ones written to ``RUN/splits``."""
    if args.splits:
        splits = read_splits(args.splits, args.data)
    else:
        splits = split_items(args.data, list_images(index), lambda _: "", args.split_seed)
    write_splits(Path(args.out) / "splits", splits)
    return splits


def engine_classes(index: dict, name: str | None) -> list[str]:
    """The engine's classes: the set's, its one foreground class renamed ``name`` if given
    (``--class-name nerve``: what the pipeline's segmenter must segment)."""
    classes = list(index["classes"])
    if name:
        if len(classes) != 2:
            raise UserError(f"--class-name {name}: the set has {len(classes) - 1} foreground classes "
                            f"({', '.join(classes[1:])}); it renames the one foreground class")
        classes[1] = name
    return classes


def make_meta(args, index: dict, splits) -> EngineMeta:
    extra = {"arch_kwargs": args.arch_kwargs, "threshold": 0.5,
             "region_input": "region (N, H, W, 1) uint8, > 0 inside",
             "instances": "8-connected components of the thresholded mask, >= 4 px"}
    return EngineMeta(model=args.model, task=TASK, classes=tuple(args.classes),
                      input_size=(args.size, args.size), mean=IMAGENET_MEAN, std=IMAGENET_STD,
                      recipe_hash=runlog.recipe_hash(train.config_of(args), splits),
                      revision=runlog.git_revision(), created=runlog.utc_now(), extra=extra)


def _loaders(args, index: dict, splits) -> tuple[DataLoader, DataLoader, torch.Generator]:
    size = (args.size, args.size)
    train_ds = RegionDataset(args.data, samples_of(index, splits["train"]), size, augment=args.augment)
    val_ds = RegionDataset(args.data, samples_of(index, splits["val"]), size)
    generator = torch.Generator()
    train_loader = DataLoader(train_ds, batch_size=args.batch_size, shuffle=True, num_workers=args.workers,
                              generator=generator, drop_last=len(train_ds) > args.batch_size)
    log.info("data %s: %d train, %d val regions (%d/%d/%d images)", args.data, len(train_ds), len(val_ds),
             *(len(splits[k]) for k in ("train", "val", "test")))
    return train_loader, DataLoader(val_ds, batch_size=args.batch_size, num_workers=args.workers), generator


def main(args) -> dict:
    """Train per ``args`` (see ``nerveseg train region --help``); returns a summary dict."""
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    handler = runlog.log_to_file(out)
    try:
        return _train(args, out)
    finally:
        logging.getLogger().removeHandler(handler)
        handler.close()


def _train(args, out: Path) -> dict:
    index = read_index(args.data)
    args.classes = engine_classes(index, getattr(args, "class_name", None))
    if args.threads:
        torch.set_num_threads(args.threads)
    device = distributed.pick_device(args.device)
    splits = get_splits(args, index)
    runlog.write_config(out, train.config_of(args))
    meta = make_meta(args, index, splits)
    train.seed_all(args.seed)
    model = train.create_model(args).to(device)
    train_loader, val_loader, generator = _loaders(args, index, splits)
    criterion = BCEDiceLoss(args.dice_weight)
    scaler = distributed.grad_scaler(device, distributed.use_amp(args, device))
    history, best, phase = [], -float("inf"), None
    for epoch in range(args.head_epochs + args.epochs):
        if phase != (1 if epoch < args.head_epochs else 2):
            phase = 1 if epoch < args.head_epochs else 2
            optimizer = train.configure_phase(model, args, phase)
        lr = train.lr_at(args, phase, epoch - (args.head_epochs if phase == 2 else 0))
        for group in optimizer.param_groups:
            group["lr"] = lr
        train.seed_all(args.seed + epoch)
        generator.manual_seed(args.seed + epoch)
        row = _epoch(model, criterion, optimizer, scaler, train_loader, val_loader, epoch, args)
        history.append({"epoch": epoch, "phase": phase, "lr": lr, **row})
        improved, best = row["val_iou"] > best, max(best, row["val_iou"])
        fields = {"optimizer": optimizer.state_dict(), "epoch": epoch, "phase": phase, "best": best,
                  "args": train.config_of(args), "arch": args.model, "arch_kwargs": args.arch_kwargs,
                  "metrics": history[-1]}
        train.save_run_state(out, model, meta, history, improved, fields, "iou", args.model)
        _log_epoch(args, history[-1], improved)
    test = test_best(args, index, splits, out)
    return {"out": str(out), "epochs": len(history), "best_val_iou": best, "test_iou": test}


def _log_epoch(args, row: dict, improved: bool) -> None:
    log.info("epoch %d/%d lr %.2g: train loss %.4f iou %.4f | val loss %.4f iou %.4f%s (%.0f s)",
             row["epoch"] + 1, args.head_epochs + args.epochs, row["lr"], row["train_loss"], row["train_iou"],
             row["val_loss"], row["val_iou"], " *best*" if improved else "", row["seconds"])


def _epoch(model, criterion, optimizer, scaler, train_loader, val_loader, epoch: int, args) -> dict:
    """One epoch through the shared loops; their metric (``score``) is the per-region IoU."""
    started = time.perf_counter()
    fit = train.train_one_epoch(model, criterion, optimizer, train_loader, epoch, args, scaler=scaler,
                                step=region_step)
    val = train.evaluate(model, criterion, val_loader, args, step=region_step)
    return {"train_loss": fit["loss"], "train_iou": fit["score"], "val_loss": val["loss"],
            "val_iou": val["score"], "seconds": round(time.perf_counter() - started, 2)}


def test_best(args, index: dict, splits, out: Path) -> float:
    """Evaluate ``RUN/best.pt`` on the test split into ``RUN/test``; returns its mean IoU."""
    from nerveseg.engines.loader import load_engine

    from .evaluate import run_region_eval

    samples = samples_of(index, splits["test"])
    if not samples:
        log.warning("the test split is empty: no test report")
        return float("nan")
    # No best.pt when every validation IoU was nan (an empty val split of a tiny set).
    best = out / "best.pt" if (out / "best.pt").is_file() else out / "last.pt"
    with load_engine(best, backend="torch", task=TASK) as engine:
        report = run_region_eval(engine, args.data, samples, out / "test", batch_size=args.batch_size)
    s = report["summary"]
    log.info("test (%d regions): IoU %.4f [%.4f, %.4f], nested %.4f, non-nested %.4f, leak %.4f, "
             "instance F1 %.4f; %s", s["n"], s["iou_mean"], *s["iou_ci95"], s.get("iou_nested", float("nan")),
             s.get("iou_non_nested", float("nan")), s["leak_fraction"], s["instance_f1"],
             out / "test" / "report.txt")
    return s["iou_mean"]
