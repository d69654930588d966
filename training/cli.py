"""``nerveseg train gate|seg [DATA] [--config EXP.yaml] [--set K=V] --out RUN``.

Settings come from the experiment (:mod:`nerveseg.training.experiment`): defaults <
``--config`` < plain flags < ``--set section.key=value``. Every flag here defaults to
``None`` ("not given") so that a config file's value is only replaced when a flag is
typed. Other model families add their own subcommand through :data:`FAMILY_PARSERS`.
torch is imported only inside :func:`run`, so ``nerveseg --help`` stays light.
"""

from __future__ import annotations

import argparse
import importlib
import shlex
import sys
from pathlib import Path

# Modules with ``add_parser(subparsers)`` adding `nerveseg train <family>` with its own handler.
FAMILY_PARSERS = ("nerveseg.training.region.cli", "nerveseg.training.instance.cli",
                  "nerveseg.training.gate_segment")
HELP = {"gate": ("classifier gate (nerve / opening_wound / tendon) from class folders",
                 "Train the classifier gate from DATA/<class>/*.png."),
        "seg": ("nerve segmenter from Supervisely (img/ + masks_machine/) or images/ + masks/",
                "Train the segmenter from DATA/<ds>/img + DATA/<ds>/masks_machine, or DATA/images + DATA/masks.")}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from .experiment import FAMILIES

    sub = parser.add_subparsers(dest="train_task", metavar="FAMILY", required=True)
    for name in FAMILIES:
        command = sub.add_parser(name, help=HELP[name][0], description=HELP[name][1])
        _common(command, name)
    sub.choices["gate"].add_argument("--classes", nargs="+", default=None, metavar="NAME",
                                     help="class folders in logit order (default: nerve opening_wound tendon)")
    seg = sub.choices["seg"]
    seg.add_argument("--classes", nargs="+", default=None, metavar="NAME",
                     help="mask classes by pixel value, background first (default: the data's own)")
    seg.add_argument("--target", default=None, metavar="CLASS",
                     help="the class segmented when masks hold several (default: the only one, or nerve)")
    seg.add_argument("--dice-weight", type=float, default=None, help="loss = BCE + w * (1 - Dice) (default 1)")
    seg.add_argument("--aux-weight", type=float, default=None,
                     help="deep supervision: + w * the loss on a model's auxiliary output, DoubleUNet's first "
                          "mask (default 1; 0: off)")
    for module_name in FAMILY_PARSERS:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if not exc.name or not exc.name.startswith("nerveseg"):
                raise
            continue  # that family is not part of this checkout
        module.add_parser(sub)


def _common(p: argparse.ArgumentParser, name: str) -> None:
    from .experiment import FAMILIES, Augment, DataSection, RunSection, ScheduleSection

    d, s, a, r = DataSection(), ScheduleSection(), Augment(), RunSection()
    task, model, lr = FAMILIES[name]
    p.set_defaults(task=task, family=name)
    p.add_argument("data", nargs="?", default=None, help="dataset folder (or data.root in --config)")
    p.add_argument("--config", default=None, metavar="YAML", help="experiment file (docs/TRAINING.md)")
    p.add_argument("--set", action="append", default=None, metavar="SECTION.KEY=VALUE",
                   help="override one experiment key, e.g. schedule.lr=1e-3 (repeatable; wins over flags)")
    p.add_argument("--out", default=None, help="run folder: checkpoints, config, splits, curves (or run.out)")
    g = p.add_argument_group("model")
    g.add_argument("--model", default=None, help=f"registry name (default {model})")
    g.add_argument("--width", type=float, default=None, help="MobileNetV2 width multiplier (default 1.0)")
    g.add_argument("--pretrained", default=None, metavar="PATH",
                   help="torchvision ImageNet state dict (local file; nothing is downloaded)")
    g.add_argument("--init", default=None, metavar="ENGINE_OR_CHECKPOINT",
                   help="fine-tune from a trained model: a checkpoint (.pt) or an engine with its .pt beside it "
                        "(same architecture and classes; its width unless --width)")
    g = p.add_argument_group("data")
    g.add_argument("--layout", default=None, help=f"importer (default {d.layout}; nerveseg data check --help)")
    g.add_argument("--annotations", default=None, metavar="FILE", help="COCO JSON if not found in DATA")
    g.add_argument("--size", type=int, default=None, help=f"square input size in pixels (default {d.size})")
    g.add_argument("--splits", default=None, metavar="DIR", help="reuse train/val/test.txt from DIR")
    g.add_argument("--split-seed", type=int, default=None, help=f"seed of a new split (default {d.split_seed})")
    g.add_argument("--skip-bad", action="store_true", default=None,
                   help="train without the files validation refuses; RUN/skipped.txt lists them")
    g.add_argument("--workers", type=int, default=None, help="DataLoader worker processes (default 0)")
    _schedule(p, s, lr)
    g = p.add_argument_group("augmentation (0 switches a step off)")
    g.add_argument("--hflip", type=float, default=None, help=f"horizontal flip probability (default {a.hflip})")
    g.add_argument("--vflip", type=float, default=None, help=f"vertical flip probability (default {a.vflip})")
    g.add_argument("--rotate", type=float, default=None, help=f"max rotation in degrees (default {a.rotate})")
    g.add_argument("--brightness", type=float, default=None, help=f"brightness jitter, ± fraction (default {a.brightness})")
    g.add_argument("--contrast", type=float, default=None, help=f"contrast jitter, ± fraction (default {a.contrast})")
    g.add_argument("--scale-min", type=float, default=None,
                   help=f"smallest area fraction of the random resized crop, 1 = off (default {a.scale_min})")
    g = p.add_argument_group("run")
    g.add_argument("--device", default=None, help=f"auto, cpu, cuda or cuda:N (default {r.device})")
    g.add_argument("--amp", action=argparse.BooleanOptionalAction, default=None,
                   help="mixed precision on CUDA (default on; never on the CPU)")
    g.add_argument("--deterministic", action="store_true", default=None, help="deterministic kernels")
    g.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    g.add_argument("--resume", action="store_true", help="continue RUN/last.pt with its settings (--epochs extends it)")


def _schedule(p: argparse.ArgumentParser, s, lr: float) -> None:
    g = p.add_argument_group("schedule")
    g.add_argument("--epochs", type=int, default=None,
                   help="epochs of the main (fine-tune) phase (default 10; with --resume: the checkpoint's)")
    g.add_argument("--head-epochs", type=int, default=None,
                   help="phase-1 epochs training only the new head, base frozen (default: 2 for the "
                        "gate with --pretrained, else 0)")
    g.add_argument("--unfreeze-from", default=None, metavar="LAYER",
                   help="first layer trained in phase 2, e.g. features.14 (default: the model's choice "
                        "with --pretrained, else every layer)")
    g.add_argument("--lr", type=float, default=None, help=f"learning rate of the first phase (default {lr:g})")
    g.add_argument("--finetune-lr", type=float, default=None,
                   help="phase-2 learning rate (default: lr/10 after a head phase, else lr)")
    g.add_argument("--lr-schedule", choices=("cosine", "constant"), default=None,
                   help=f"per-phase schedule (default {s.lr_schedule})")
    g.add_argument("--weight-decay", type=float, default=None, help=f"AdamW weight decay (default {s.weight_decay:g})")
    g.add_argument("--batch-size", type=int, default=None, help=f"per process (default {s.batch_size})")
    g.add_argument("--seed", type=int, default=None, help="seed for init, shuffling and augmentation (default 0)")


def run(args: argparse.Namespace) -> int:
    from nerveseg.engines.errors import UserError

    from .experiment import namespace_from_cli
    from .models import ModelConfigError
    from .train import main, resolve_args

    flat = namespace_from_cli(args)
    # The typed command, when there is one (not when main() is called from Python).
    typed = Path(sys.argv[0]).name in ("nerveseg", "cli.py")
    flat.command_line = shlex.join(["nerveseg", *sys.argv[1:]]) if typed else ""
    try:
        summary = main(resolve_args(flat))
    except ModelConfigError as exc:  # registry names, layer names, pretrained files
        raise UserError(str(exc)) from None
    rank, world = summary.pop("rank"), summary.pop("world_size")
    if rank == 0:
        print(" ".join(f"{k}={v}" for k, v in summary.items()))
    if world > 1:
        print(f"rank {rank}/{world} done")
    return 0
