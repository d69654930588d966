"""``nerveseg train region DATA --out RUN``: the region-conditioned segmenter.

Added to ``nerveseg train`` by :func:`add_parser`; torch is imported only in :func:`run`.
``--eval MODEL`` skips training and evaluates any engine file (``.pt``, ``.onnx``) on a
split of DATA into ``--out``, with the split lists of ``--splits`` (default:
``splits/`` beside a ``.pt``).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from nerveseg.engines.loader import BACKEND_CHOICES


# What resolve_args adds that this family uses; it also fills gate/seg experiment keys, dropped.
RESOLVED = ("arch_kwargs", "head_epochs", "unfreeze_from", "finetune_lr", "epochs")


def add_parser(sub) -> None:
    """The ``region`` subcommand of ``nerveseg train``."""
    p = sub.add_parser("region", help="region-conditioned segmenter from a region set (regions.json)",
                       description="Train a segmenter that takes an image and a region and segments "
                                   "only inside it, from DATA/regions.json (`nerveseg synth regions`).")
    p.set_defaults(task="region_segment", handler=run)
    p.add_argument("data", help="region set folder (regions.json, images/, regions/, masks/, instances/)")
    p.add_argument("--out", required=True, help="run folder (or the report folder with --eval)")
    p.add_argument("--model", default="region_unet_mobilenet_v2", help="registry name (default %(default)s)")
    p.add_argument("--width", type=float, default=None, help="MobileNetV2 width multiplier (default 1.0)")
    p.add_argument("--size", type=int, default=128, help="square input size in pixels (default 128)")
    p.add_argument("--pretrained", default=None, metavar="PATH",
                   help="torchvision ImageNet state dict (local file; nothing is downloaded)")
    p.add_argument("--epochs", type=int, default=None, help="epochs of the main phase (default 10)")
    p.add_argument("--head-epochs", type=int, default=None, help="epochs training only the new parts first")
    p.add_argument("--unfreeze-from", default=None, metavar="LAYER", help="first layer trained in phase 2")
    p.add_argument("--lr", type=float, default=1e-3, help="learning rate (default 1e-3)")
    p.add_argument("--finetune-lr", type=float, default=None, 
                   help="phase-2 rate (default lr/10 after a head phase)")
    p.add_argument("--lr-schedule", choices=("cosine", "constant"), default="cosine",
                   help="learning-rate schedule after warm-up")
    p.add_argument("--weight-decay", type=float, default=1e-4, help="AdamW weight decay")
    p.add_argument("--dice-weight", type=float, default=1.0, help="loss = BCE + w * (1 - Dice) (default 1)")
    p.add_argument("--batch-size", type=int, default=16, help="regions per batch")
    p.add_argument("--workers", type=int, default=0, help="DataLoader worker processes (default 0)")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--device", default="auto", help="auto (CUDA if present), cpu, cuda or cuda:N")
    p.add_argument("--no-amp", dest="amp", action="store_false", help="no mixed precision on CUDA")
    p.add_argument("--seed", type=int, default=0, help="seed for init, shuffling and augmentation")
    p.add_argument("--split-seed", type=int, default=0, help="seed of a new image-level split")
    p.add_argument("--splits", default=None, metavar="DIR", help="reuse train/val/test.txt (image lists) from DIR")
    p.add_argument("--no-augment", dest="augment", action="store_false",
                   help="no quarter turns, flips or brightness/contrast jitter")
    p.add_argument("--class-name", default=None, metavar="NAME",
                   help="name the engine's foreground class NAME (default: the set's, e.g. structure); "
                        "'nerve' makes the engine a segmenter replay/run/view accept")
    p.add_argument("--eval", default=None, metavar="MODEL", help="evaluate MODEL instead of training")
    p.add_argument("--split", choices=("test", "val", "train"), default="test", help="split for --eval")
    p.add_argument("--backend", default="auto", choices=BACKEND_CHOICES, help="engine backend for --eval (default auto)")
    from ..family_config import layer

    layer(p, "region", cli_only=("eval", "split", "backend"))


def run(args: argparse.Namespace) -> int:
    from nerveseg.engines.errors import UserError
    from nerveseg.training.models import ModelConfigError

    from .. import runlog
    from ..family_config import resolve, write

    args.__dict__.pop("train_task", None)
    sections = resolve(args)
    if args.eval:
        return _evaluate(args)
    from nerveseg.training.train import resolve_args

    from .data import read_index
    from .train import main

    read_index(args.data)  # a wrong folder fails here, before torch builds anything
    args.classes, args.resume = None, False
    given = set(vars(args)) | set(RESOLVED)
    try:
        resolve_args(args)
    except ModelConfigError as exc:  # registry names, layer names, pretrained files
        raise UserError(str(exc)) from None
    for key in set(vars(args)) - given:  # the gate/seg experiment keys this family does not use
        delattr(args, key)
    write(Path(args.out), sections, args.config, runlog.git_revision(), runlog.utc_now())
    summary = main(args)
    print(" ".join(f"{k}={v}" for k, v in summary.items()))
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from nerveseg.engines.loader import load_engine
    from nerveseg.training.region.evaluate import region_eval
    from nerveseg.training.splits import read_split, splits_folder

    model = Path(args.eval)
    images = read_split(splits_folder(model, args.splits), args.split, args.data)
    with load_engine(model, backend=args.backend, task="region_segment", threads=args.threads) as engine:
        threshold = float(engine.meta.extra.get("threshold", 0.5))
        report = region_eval(engine, args.data, images, args.out, args.split, args.batch_size, threshold)
    print((Path(args.out) / "report.txt").read_text(), end="")
    print(f"wrote {args.out}/metrics.json, report.txt and iou_hist.png ({report['n']} regions)")
    return 0
