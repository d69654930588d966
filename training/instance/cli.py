"""``nerveseg train instance DATA --out RUN``: Mask R-CNN from COCO JSON or per-class folders.

Registered under ``nerveseg train`` by one line in :mod:`nerveseg.training.cli`; this
subcommand carries its own handler. torch is imported only inside :func:`run`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

DEFAULT_MODEL = "maskrcnn_mobilenet_v3"


def add_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser("instance", help="instance segmenter (Mask R-CNN) from COCO JSON or per-class folders",
                       description="Train a Mask R-CNN instance segmenter from DATA (COCO annotations.json + "
                                   "images, or image/<Class>/ + mask/<Class>/ folders). See docs/INSTANCE.md.")
    p.set_defaults(handler=run, task="instance")
    p.add_argument("data", help="dataset folder")
    p.add_argument("--out", required=True, help="run folder (checkpoints, config, splits, curves)")
    p.add_argument("--model", default=DEFAULT_MODEL,
                   help=f"maskrcnn_mobilenet_v3 (CPU-fast) or maskrcnn_resnet50 (default {DEFAULT_MODEL})")
    p.add_argument("--layout", default="auto", help="data layout: auto, coco, class_masks, supervisely")
    p.add_argument("--annotations", default=None, metavar="JSON", help="COCO file (default: found in DATA)")
    p.add_argument("--skip-bad", action="store_true", help="leave out files that fail validation")
    p.add_argument("--size", type=int, default=256, help="square input size in pixels (default 256)")
    p.add_argument("--width", type=float, default=None, help="MobileNetV3 width multiplier (default 1.0)")
    p.add_argument("--detections", type=int, default=None, help="most instances per image (default 50)")
    p.add_argument("--pretrained", default=None, metavar="PATH",
                   help="local torchvision state dict: Mask R-CNN (COCO) or ImageNet backbone; "
                        "nothing is downloaded")
    p.add_argument("--epochs", type=int, default=None, help="epochs (default 12; with --resume: the checkpoint's)")
    p.add_argument("--lr", type=float, default=1e-3, help="AdamW learning rate (default 1e-3)")
    p.add_argument("--warmup", type=int, default=100, help="linear warm-up iterations (default 100)")
    p.add_argument("--weight-decay", type=float, default=1e-4, help="AdamW weight decay")
    p.add_argument("--batch-size", type=int, default=4, help="images per batch")
    p.add_argument("--workers", type=int, default=0, help="DataLoader worker processes (default 0)")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--seed", type=int, default=0, help="seed for init, shuffling and augmentation")
    p.add_argument("--split-seed", type=int, default=0, help="seed of a new train/val/test split")
    p.add_argument("--splits", default=None, metavar="DIR", help="reuse train/val/test.txt from DIR")
    p.add_argument("--max-iters", type=int, default=0, help="stop each epoch after N batches (0: all; for smoke tests)")
    p.add_argument("--resume", action="store_true", help="continue RUN/last.pt (--epochs extends it)")
    aug = p.add_argument_group("augmentation (0 switches a step off; masks and boxes move together)")
    aug.add_argument("--hflip", type=float, default=0.5, help="horizontal flip probability")
    aug.add_argument("--vflip", type=float, default=0.5, help="vertical flip probability")
    aug.add_argument("--rotate", type=float, default=10.0, help="max rotation in degrees")
    aug.add_argument("--brightness", type=float, default=0.2, help="brightness jitter (± fraction)")
    aug.add_argument("--contrast", type=float, default=0.2, help="contrast jitter (± fraction)")
    aug.add_argument("--scale-min", type=float, default=0.8,
                     help="smallest area fraction of the random resized crop (1 = off)")
    from ..family_config import layer

    layer(p, "instance", cli_only=("resume",))
    return p


def run(args: argparse.Namespace) -> int:
    from nerveseg.engines.errors import UserError

    from .. import runlog
    from ..family_config import resolve, write
    from ..models import ModelConfigError
    from .train import main

    args.__dict__.pop("train_task", None)
    sections = resolve(args)
    if not args.resume:  # a resumed run keeps the experiment.yaml it started with
        write(Path(args.out), sections, args.config, runlog.git_revision(), runlog.utc_now())
    try:
        summary = main(args)
    except ModelConfigError as exc:  # registry names, pretrained files
        raise UserError(str(exc)) from None
    print(" ".join(f"{k}={v}" for k, v in summary.items()))
    return 0
