"""From parsed arguments to a run's settings: task defaults, resume, config, metadata.

:func:`resolve_args` fills what depends on the task, the model and ``--pretrained``
(head phase, unfreeze layer, fine-tune rate, classes); every model family calls it on its
flat ``args``. :func:`config_of` is what ``config.yaml`` and the checkpoint hold.
"""

from __future__ import annotations

import logging
from pathlib import Path

from nerveseg.engines.metadata import IMAGENET_MEAN, IMAGENET_STD, EngineMeta
from nerveseg.engines.errors import UserError

from . import init_from, runlog
from .checkpoint import read_checkpoint
from .data import GATE_CLASSES, SEG_CLASSES
from .experiment import FLAT, Experiment, to_flat
from .models import build_model, get_spec

log = logging.getLogger(__name__)
# Keys a resumed run takes from the command line; the rest come from the checkpoint.
RESUME_OVERRIDES = ("epochs", "workers", "threads", "data", "out", "resume", "device")
DEFAULT_EPOCHS = 10
NOT_CONFIG = ("handler", "command", "verbose", "train_task", "set", "config", "seen")


def config_of(args) -> dict:
    """The resolved arguments as plain data (what config.yaml and the checkpoint hold)."""
    return {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items() if k not in NOT_CONFIG}


def fill_defaults(args):
    """Give ``args`` every experiment key it lacks (a family with its own parser)."""
    for name, value in to_flat(Experiment()).items():
        if not hasattr(args, name):
            setattr(args, name, value)
    return args


def resolve_args(args):
    """Fill the defaults that depend on the task, the model and ``--pretrained``."""
    fill_defaults(args)
    init_from.load(args)  # the checkpoint's width, and a wrong task or architecture refused now
    spec = get_spec(args.task, args.model)
    if args.task == "classify":
        args.classes = list(args.classes or GATE_CLASSES)
    elif args.task != "segment":
        args.classes = list(SEG_CLASSES)  # a segment run takes its classes from the data
    if args.width is not None and "width_mult" not in spec.defaults:
        raise UserError(f"--width does not apply to {args.model}")
    args.arch_kwargs = {k: v for k, v in spec.defaults.items()}
    if args.width is not None:
        args.arch_kwargs["width_mult"] = args.width
    if args.head_epochs is None:
        args.head_epochs = 2 if args.pretrained and args.task == "classify" else 0
    if args.unfreeze_from is None:
        # A frozen random base learns nothing: from scratch, phase 2 trains everything.
        args.unfreeze_from = spec.unfreeze_from if args.pretrained else first_layer(args)
    if args.finetune_lr is None:
        args.finetune_lr = args.lr / 10 if args.head_epochs > 0 else args.lr
    if args.resume:
        return args  # the checkpoint's settings replace these in main(); --epochs may stay None
    args.epochs = DEFAULT_EPOCHS if args.epochs is None else args.epochs
    if args.head_epochs + args.epochs <= 0:
        raise UserError("nothing to train: --head-epochs and --epochs are both 0")
    return args


def first_layer(args) -> str:
    """The model's first parameterised layer (phase 2 from there trains everything)."""
    model = build_model(args.task, args.model, 1, **args.arch_kwargs)
    return next(name for name, _ in model.named_parameters()).rsplit(".", 1)[0]


def resume(args, out: Path, overrides: tuple[str, ...] = RESUME_OVERRIDES) -> dict:
    """Load ``RUN/last.pt`` and adopt its settings except ``overrides`` given now."""
    path = out / "last.pt"
    if not path.is_file():
        raise UserError(f"{path}: nothing to resume (no last.pt in the run folder)")
    ckpt = read_checkpoint(path)
    for key, value in ckpt["args"].items():
        if key not in overrides or getattr(args, key, None) is None:
            setattr(args, key, value)
    log.info("resuming %s after epoch %d (settings from the checkpoint; epochs=%d)",
             path, ckpt["epoch"] + 1, args.epochs)
    return ckpt


def make_meta(args, splits) -> EngineMeta:
    """The engine metadata of this run (classes: the gate's, or background + the target)."""
    if args.task == "classify":
        classes = tuple(args.classes)
    else:
        classes = ("background", getattr(args, "target", None) or SEG_CLASSES[1])
    extra = {"arch_kwargs": args.arch_kwargs}
    if getattr(args, "init_from", None):
        extra["init"] = args.init_from  # fine-tuned from: the checkpoint, its revision and recipe
    if args.task == "segment":
        extra["threshold"] = 0.5
    if getattr(args, "seen", None) is not None:
        extra["seen"] = args.seen.to_extra()  # the images it learned from (training.seen)
    return EngineMeta(model=args.model, task=args.task, classes=classes,
                      input_size=(args.size, args.size), mean=IMAGENET_MEAN, std=IMAGENET_STD,
                      recipe_hash=runlog.recipe_hash(config_of(args), splits),
                      revision=runlog.git_revision(), created=runlog.utc_now(), extra=extra)


def experiment_of(args) -> Experiment:
    """The flat ``args`` as the nested :class:`Experiment`, for ``RUN/experiment.yaml``."""
    from .experiment import from_dict, from_flat

    family = getattr(args, "family", None) or ("gate" if args.task == "classify" else "seg")
    return from_dict(from_flat({k: getattr(args, k) for k in FLAT if hasattr(args, k)}, family),
                     "resolved arguments")
