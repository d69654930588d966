"""``nerveseg train gate|seg ... --init ENGINE_OR_CHECKPOINT``: fine-tune a trained model.

The weights come from a nerveseg checkpoint (``best.pt``, ``last.pt``) or from the
weights-only reference beside a shipped engine (``samples/models/gate.onnx`` →
``samples/models/gate.pt``, written by ``nerveseg export --reference-pt``): an engine file
holds the network, not its trainable form. The run keeps the checkpoint's architecture
(its width is adopted when ``--width`` is not given) and must train the same task with
the same classes, else it is refused in one line before any data is read or trained:
a head of another size, or classes in another order, would silently learn nonsense.
"""

from __future__ import annotations

import logging
from pathlib import Path

from nerveseg.engines.errors import UserError
from nerveseg.engines.metadata import EngineMeta

from .checkpoint import read_checkpoint

log = logging.getLogger(__name__)
ENGINE_SUFFIXES = (".onnx", ".engine", ".plan")
TASKS = ("classify", "segment")  # the families whose weights --init loads (gate, seg)


def checkpoint_path(given: str | Path) -> Path:
    """The checkpoint for ``given``: itself, or the ``.pt`` beside an engine file."""
    path = Path(given)
    if path.suffix.lower() not in ENGINE_SUFFIXES:
        return path
    beside = path.with_suffix(".pt")
    if not beside.is_file():
        raise UserError(f"{path}: an engine holds no trainable weights and there is no {beside.name} beside it; "
                        f"--init needs the checkpoint it was exported from (nerveseg export --reference-pt)")
    return beside


def load(args) -> dict | None:
    """Read ``args.init`` (None: no --init), adopt its width, check task and architecture."""
    if not getattr(args, "init", None):
        return None
    if args.task not in TASKS:
        raise UserError(f"--init: fine-tuning is for the gate and seg families, not {args.task!r}")
    path = checkpoint_path(args.init)
    ckpt = read_checkpoint(path)
    meta = EngineMeta.from_dict(ckpt["meta"], path)
    kwargs = dict(ckpt["arch_kwargs"])
    if args.width is None and "width_mult" in kwargs:
        args.width = kwargs["width_mult"]  # the checkpoint's own width, unless one is asked for
    if meta.task != args.task or ckpt["arch"] != args.model:
        raise UserError(f"{path}: --init is a {meta.task} {ckpt['arch']} checkpoint; this run trains a "
                        f"{args.task} {args.model} (give --model {ckpt['arch']}, or a {args.task} checkpoint)")
    args.init_from = {"checkpoint": str(path), "revision": meta.revision, "recipe_hash": meta.recipe_hash}
    return {"ckpt": ckpt, "meta": meta, "path": path}


def meta_of(args) -> tuple[EngineMeta | None, Path | None]:
    """``(metadata, checkpoint path)`` of ``--init`` (``(None, None)`` without one), read
    before the split: the images it has seen may only be trained on (:mod:`.seen`)."""
    if not getattr(args, "init", None):
        return None, None
    path = checkpoint_path(args.init)
    return EngineMeta.from_dict(read_checkpoint(path)["meta"], path), path


def check_fit(args, init: dict) -> None:
    """Refuse another width (or other architecture settings) or other classes, in one line."""
    path, ckpt, meta = init["path"], init["ckpt"], init["meta"]
    if dict(ckpt["arch_kwargs"]) != dict(args.arch_kwargs):
        raise UserError(f"{path}: --init was trained with {ckpt['arch']} {dict(ckpt['arch_kwargs'])}; this run "
                        f"asks for {dict(args.arch_kwargs)} (leave out --width to keep the checkpoint's)")
    if args.task == "classify":
        have, want = tuple(meta.classes), tuple(args.classes)
    else:
        have, want = tuple(meta.classes[1:]), (args.target,)
    if have != want:
        raise UserError(f"{path}: --init was trained on classes {list(have)}; this run's are {list(want)} "
                        f"(the head would not fit: train on the same classes, in the same order)")


def load_weights(model, init: dict) -> None:
    """Put the checkpoint's weights into the registry ``model`` (strict: every tensor)."""
    try:
        model.load_state_dict(init["ckpt"]["model"])
    except RuntimeError as exc:
        detail = " ".join(str(exc).split())[:200]
        raise UserError(f"{init['path']}: --init weights do not fit the model ({detail})") from None
    log.info("fine-tuning from %s (revision %s)", init["path"], init["meta"].revision)
