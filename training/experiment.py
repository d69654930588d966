"""One YAML file per experiment: sections, defaults, overrides, did-you-mean, run copy.

An experiment (see ``docs/TRAINING.md``) is::

    family: gate                 # gate | seg
    model:    {name: mobilenet_v2, width: 0.5, pretrained: null, init: null}
    data:     {root: data/cls, layout: auto, size: 224, splits: null, skip_bad: false, ...}
    schedule: {epochs: 12, head_epochs: null, lr: 2.0e-3, batch_size: 8, seed: 0, ...}
    augment:  {hflip: 0.5, vflip: 0.5, rotate: 10, brightness: 0.2, contrast: 0.2, scale_min: 0.8}
    run:      {out: runs/gate, device: auto, amp: true, deterministic: false, threads: 0}

Precedence: defaults < ``--config FILE`` < plain flags (``--lr 1e-3``) < ``--set
schedule.lr=1e-3``. An unknown key fails in one line with the closest valid one. The
training loop reads the flat names of :func:`flat_name` (``args.lr``, ``args.size``), as
torchvision's references do. No torch here.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import yaml

from nerveseg.engines.errors import UserError

class Family(NamedTuple):
    task: str    # the EngineMeta task
    model: str   # default registry name
    lr: float    # default learning rate


FAMILIES = {"gate": Family("classify", "mobilenet_v2", 1e-3), "seg": Family("segment", "unet_mobilenet_v2", 1e-3)}
# Section keys whose flat (argparse) name differs from the key.
RENAMED = {"model.name": "model", "data.root": "data", "run.out": "out"}
PROVENANCE = "provenance"  # written into RUN/experiment.yaml; ignored when the file is read back


@dataclass(frozen=True)
class ModelSection:
    name: str | None = None          # registry name; None: the family's default
    width: float | None = None       # MobileNetV2 width multiplier; None: the architecture's
    pretrained: str | None = None    # local torchvision state dict (never downloaded)
    init: str | None = None          # fine-tune from this checkpoint (or the .pt beside an engine)


@dataclass(frozen=True)
class DataSection:
    root: str | None = None
    layout: str = "auto"             # an importer name (nerveseg data check --help)
    annotations: str | None = None   # COCO JSON, if not found in root
    classes: list | None = None      # names in order (gate: logit order; seg: mask value order)
    target: str | None = None        # seg: the class segmented (default: the only one, or nerve)
    size: int = 224
    splits: str | None = None        # reuse train/val/test.txt from this folder
    split_seed: int = 0
    skip_bad: bool = False
    workers: int = 0


@dataclass(frozen=True)
class ScheduleSection:
    epochs: int | None = None        # phase 2; None: 10 (resume: the checkpoint's)
    head_epochs: int | None = None   # phase 1, head only; None: 2 with pretrained gate, else 0
    unfreeze_from: str | None = None
    lr: float | None = None          # None: the family's default
    finetune_lr: float | None = None
    lr_schedule: str = "cosine"
    weight_decay: float = 1e-4
    batch_size: int = 16
    seed: int = 0
    dice_weight: float = 1.0         # seg: loss = BCE + w (1 - Dice)
    aux_weight: float = 1.0          # seg: + w x the same loss on auxiliary outputs (DoubleUNet's first mask); 0: off


@dataclass(frozen=True)
class Augment:
    """Training augmentation; a zero switches a step off. Rotation in degrees, the
    rest are probabilities (flips) or ± fractions (brightness, contrast), and
    ``scale_min`` the smallest crop area fraction for the random resized crop."""

    hflip: float = 0.5
    vflip: float = 0.5
    rotate: float = 10.0
    brightness: float = 0.2
    contrast: float = 0.2
    scale_min: float = 0.8


@dataclass(frozen=True)
class RunSection:
    out: str | None = None
    device: str = "auto"             # auto (cuda if present) | cpu | cuda | cuda:N
    amp: bool = True                 # mixed precision, on CUDA only
    deterministic: bool = False      # deterministic kernels (slower on GPU)
    threads: int = 0


@dataclass(frozen=True)
class Experiment:
    family: str = "gate"
    model: ModelSection = field(default_factory=ModelSection)
    data: DataSection = field(default_factory=DataSection)
    schedule: ScheduleSection = field(default_factory=ScheduleSection)
    augment: Augment = field(default_factory=Augment)
    run: RunSection = field(default_factory=RunSection)


SECTIONS: dict[str, type] = {name: hint for name, hint in typing.get_type_hints(Experiment).items()
                             if name != "family"}


def flat_name(section: str, key: str) -> str:
    return RENAMED.get(f"{section}.{key}", key)


FLAT: dict[str, tuple[str, str]] = {flat_name(s, f.name): (s, f.name)
                                    for s, cls in SECTIONS.items() for f in dataclasses.fields(cls)}


def did_you_mean(name: str, choices) -> str:
    close = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.5)
    return f" (did you mean {close[0]!r}?)" if close else ""


def load_yaml(path: str | Path) -> dict:
    """The mapping in ``path``; one-line error naming the file otherwise."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise UserError(f"{path}: cannot read experiment file ({exc.strerror or exc})") from None
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        line = f" at line {where.line + 1}" if where else ""
        raise UserError(f"{path}: not valid YAML{line} ({getattr(exc, 'problem', exc)})") from None
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise UserError(f"{path}: an experiment file is a mapping of sections, not {type(raw).__name__}")
    return raw


def parse_set(items: list[str] | None) -> dict:
    """``["schedule.lr=1e-3", "data.classes=[a, b]"]`` → nested dict (values parsed as YAML)."""
    out: dict = {}
    for text in items or ():
        key, sep, value = text.partition("=")
        if not sep or not key.strip():
            raise UserError(f"--set {text!r}: expected SECTION.KEY=VALUE, e.g. schedule.lr=1e-3")
        parts = key.strip().split(".")
        node = out
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise UserError(f"--set {text!r}: {part} is a value, not a section")
        node[parts[-1]] = yaml.safe_load(value) if value.strip() else None
    return out


def merge(base: dict, override: dict) -> dict:
    """Deep merge: sections merge key by key, values replace."""
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def from_dict(raw: dict, source: str = "experiment") -> Experiment:
    """Check and type every key of ``raw``; unknown keys fail with a did-you-mean."""
    raw = {k: v for k, v in raw.items() if k != PROVENANCE}
    for key in raw:
        if key != "family" and key not in SECTIONS:
            raise UserError(f"{source}: unknown section {key!r}{did_you_mean(key, ['family', *SECTIONS])}; "
                            f"sections are family, {', '.join(SECTIONS)}")
    family = raw.get("family", "gate")
    if family not in FAMILIES:
        raise UserError(f"{source}: family {family!r}{did_you_mean(str(family), FAMILIES)}; choose "
                        f"one of {', '.join(FAMILIES)}")
    sections = {name: _section(name, cls, raw.get(name) or {}, source) for name, cls in SECTIONS.items()}
    return Experiment(family=family, **sections)


def _section(name: str, cls: type, values: Any, source: str):
    if not isinstance(values, dict):
        raise UserError(f"{source}: section {name!r} must be a mapping of keys, not {values!r}")
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for key, value in values.items():
        if key not in hints:
            raise UserError(f"{source}: unknown key {name}.{key}{did_you_mean(key, hints)}; "
                            f"{name} keys are {', '.join(hints)}")
        kwargs[key] = _coerce(value, hints[key], f"{source}: {name}.{key}")
    return cls(**kwargs)


def _coerce(value: Any, hint: Any, where: str) -> Any:
    """``value`` as ``hint`` (int, float, bool, str, list, each optionally ``| None``)."""
    args = typing.get_args(hint)
    if value is None:
        if type(None) in args:
            return None
        raise UserError(f"{where} cannot be empty")
    kind = next((a for a in args if a is not type(None)), hint) if args else hint
    kind = typing.get_origin(kind) or kind
    if kind is bool and isinstance(value, bool) or kind is str and isinstance(value, str):
        return value
    if kind in (int, float) and not isinstance(value, bool):
        try:
            number = float(value)  # YAML reads 1e-3 (no dot) as a string
            if kind is float or number == int(number):
                return kind(number)
        except (TypeError, ValueError):
            pass
    if kind is list:
        return list(value) if isinstance(value, (list, tuple)) else [value]
    raise UserError(f"{where} = {value!r}: expected {getattr(kind, '__name__', kind)}")


def to_dict(experiment: Experiment) -> dict:
    return dataclasses.asdict(experiment)


def to_flat(experiment: Experiment) -> dict[str, Any]:
    """``{flat name: value}`` for every section key (see :data:`FLAT`)."""
    nested = to_dict(experiment)
    return {flat: nested[section][key] for flat, (section, key) in FLAT.items()}


def from_flat(flat: dict[str, Any], family: str) -> dict:
    """The nested mapping of the flat names present in ``flat`` (others left out)."""
    nested: dict = {"family": family}
    for name, (section, key) in FLAT.items():
        if name in flat:
            nested.setdefault(section, {})[key] = flat[name]
    return nested


def write_run_config(out: Path, experiment: Experiment, revision: str, created: str,
                     source: str | Path | None = None, command: str = "") -> Path:
    """``RUN/experiment.yaml``: the resolved experiment (rerunnable with ``--config``) plus
    a ``provenance`` section (git revision, time, source file, command); the source file
    is copied verbatim beside it as ``experiment.source.yaml``. (``RUN/config.yaml`` stays
    the flat resolved arguments every family writes.)"""
    body = to_dict(experiment)
    body[PROVENANCE] = {"revision": revision, "created": created, "source": str(source or ""),
                        "command": command}
    path = out / "experiment.yaml"
    path.write_text(yaml.safe_dump(body, sort_keys=False))
    if source:
        (out / "experiment.source.yaml").write_text(Path(source).read_text())
    return path


def namespace_from_cli(cli: argparse.Namespace) -> argparse.Namespace:
    """The flat training arguments from ``nerveseg train FAMILY``: defaults, then
    ``--config``, then the flags typed (not ``None``), then ``--set``; each layer is
    checked on its own so an error names the file or ``--set``."""
    family = cli.family
    raw: dict = {"family": family}
    if cli.config:
        loaded = load_yaml(cli.config)
        from_dict(loaded, str(cli.config))
        if loaded.get("family", family) != family:
            raise UserError(f"{cli.config}: family {loaded['family']!r}, but this is `nerveseg train {family}`")
        raw = merge(raw, loaded)
    given = {name: getattr(cli, name) for name in FLAT if getattr(cli, name, None) is not None}
    raw = merge(raw, from_flat(given, family))
    sets = parse_set(cli.set)
    from_dict(merge({"family": family}, sets), "--set")
    flat = to_flat(from_dict(merge(raw, sets), str(cli.config or "command line")))
    defaults = FAMILIES[family]
    flat["model"] = flat["model"] or defaults.model
    flat["lr"] = defaults.lr if flat["lr"] is None else flat["lr"]
    if not flat["out"]:
        raise UserError("give the run folder: --out RUN (or run.out in the experiment file)")
    if not flat["data"] and not cli.resume:
        raise UserError("give the dataset: DATA (or data.root in the experiment file)")
    return argparse.Namespace(**flat, task=defaults.task, family=family, resume=cli.resume,
                              config=cli.config)
