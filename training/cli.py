"""``nerveseg train gate|seg DATA --out RUN``: train the classifier gate or the segmenter.

torch is imported only inside :func:`run`, so ``nerveseg --help`` stays light.
"""

from __future__ import annotations

import argparse

TASKS = {"gate": ("classify", "mobilenet_v2", 1e-3), "seg": ("segment", "unet_mobilenet_v2", 1e-3)}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="train_task", metavar="TASK", required=True)
    gate = sub.add_parser("gate", help="classifier gate (nerve / opening_wound / tendon) from class folders",
                          description="Train the classifier gate from DATA/<class>/*.png.")
    seg = sub.add_parser("seg", help="nerve segmenter from a Supervisely folder (img/ + masks_machine/)",
                         description="Train the segmenter from DATA/<ds>/img + DATA/<ds>/masks_machine.")
    for name, command in (("gate", gate), ("seg", seg)):
        _common(command, name)
    gate.add_argument("--classes", nargs="+", default=None, metavar="NAME",
                      help="class folders in logit order (default: nerve opening_wound tendon)")
    seg.add_argument("--dice-weight", type=float, default=1.0, help="loss = BCE + w * (1 - Dice) (default 1)")


def _common(p: argparse.ArgumentParser, name: str) -> None:
    task, model, lr = TASKS[name]
    p.set_defaults(task=task)
    p.add_argument("data", help="dataset folder")
    p.add_argument("--out", required=True, help="run folder (checkpoints, config, splits, curves)")
    p.add_argument("--model", default=model, help=f"registry name (default {model})")
    p.add_argument("--width", type=float, default=None, help="MobileNetV2 width multiplier (default 1.0)")
    p.add_argument("--size", type=int, default=224, help="square input size in pixels (default 224)")
    p.add_argument("--pretrained", default=None, metavar="PATH",
                   help="torchvision ImageNet state dict (local file; nothing is downloaded)")
    p.add_argument("--epochs", type=int, default=None,
                   help="epochs of the main (fine-tune) phase (default 10; with --resume: the checkpoint's)")
    p.add_argument("--head-epochs", type=int, default=None,
                   help="phase-1 epochs training only the new head with the base frozen "
                        "(default: 2 for the gate with --pretrained, else 0)")
    p.add_argument("--unfreeze-from", default=None, metavar="LAYER",
                   help="first layer trained in phase 2, e.g. features.14 (default: the model's "
                        "choice with --pretrained, else every layer)")
    p.add_argument("--lr", type=float, default=lr, help=f"learning rate of the first phase (default {lr:g})")
    p.add_argument("--finetune-lr", type=float, default=None,
                   help="phase-2 learning rate (default: lr/10 after a head phase, else lr)")
    p.add_argument("--lr-schedule", choices=("cosine", "constant"), default="cosine",
                   help="per-phase schedule (default cosine)")
    p.add_argument("--weight-decay", type=float, default=1e-4)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--workers", type=int, default=0, help="DataLoader worker processes (default 0)")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--seed", type=int, default=0, help="seed for init, shuffling and augmentation")
    p.add_argument("--split-seed", type=int, default=0, help="seed of a new train/val/test split")
    p.add_argument("--splits", default=None, metavar="DIR", help="reuse train/val/test.txt from DIR")
    p.add_argument("--resume", action="store_true",
                   help="continue RUN/last.pt with its settings (--epochs extends it)")
    aug = p.add_argument_group("augmentation (0 switches a step off)")
    aug.add_argument("--hflip", type=float, default=0.5, help="horizontal flip probability")
    aug.add_argument("--vflip", type=float, default=0.5, help="vertical flip probability")
    aug.add_argument("--rotate", type=float, default=10.0, help="max rotation in degrees")
    aug.add_argument("--brightness", type=float, default=0.2, help="brightness jitter (± fraction)")
    aug.add_argument("--contrast", type=float, default=0.2, help="contrast jitter (± fraction)")
    aug.add_argument("--scale-min", type=float, default=0.8,
                     help="smallest area fraction of the random resized crop (1 = off)")


def run(args: argparse.Namespace) -> int:
    from nerveseg.realtime.errors import UserError

    from .models import ModelConfigError
    from .train import main, resolve_args

    if args.task == "segment":
        args.classes = None
    else:
        args.dice_weight = None
    del args.train_task
    try:
        summary = main(resolve_args(args))
    except ModelConfigError as exc:  # registry names, layer names, pretrained files
        raise UserError(str(exc)) from None
    print(" ".join(f"{k}={v}" for k, v in summary.items()))
    return 0
