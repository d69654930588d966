"""Experiment files for the families with their own parser (``train region``, ``train instance``).

The same YAML sections as ``nerveseg train gate|seg`` (:mod:`.experiment`: ``model``,
``data``, ``schedule``, ``augment``, ``run``), holding the keys this family's parser has;
keys only this family has go in a section named after it (``region:``, ``instance:``).
Precedence: the parser's defaults < ``--config FILE`` < the flags typed. To tell a typed
flag from a default, :func:`layer` moves every default out of the parser (a flag left
out then reads ``None``) and :func:`resolve` puts back, per key, the file's value or the
default. An unknown key fails in one line naming the file and the closest valid key.
The resolved settings go to ``RUN/experiment.yaml`` with the git revision, as for the
other families, and the file given is copied beside it. No torch here.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import yaml

from nerveseg.engines.errors import UserError

from .experiment import FLAT, PROVENANCE, did_you_mean, load_yaml

DEFAULTS = "_layer_defaults"
REQUIRED = "_layer_required"
CHECKS = "_layer_checks"


def layer(parser: argparse.ArgumentParser, family: str, cli_only: tuple[str, ...] = ()) -> None:
    """Add ``--config`` to ``parser`` and move its defaults aside (see the module doc).
    ``cli_only``: options that do not belong in an experiment (``--eval``, ``--resume``)."""
    parser.add_argument("--config", default=None, metavar="YAML",
                        help=f"experiment file: sections model, data, schedule, augment, run, {family} "
                             "(flags typed win over it; docs/TRAINING.md)")
    defaults, required, checks = {}, [], {}
    for action in parser._actions:
        if action.dest in ("help", "config", *cli_only) or action.default is argparse.SUPPRESS:
            continue
        if action.help and "%(default)s" in action.help:
            action.help = action.help.replace("%(default)s", str(action.default))
        defaults[action.dest] = action.default
        checks[action.dest] = (action.type, action.choices)
        action.default = None
        if action.required or (not action.option_strings and action.nargs is None):
            required.append(action.dest)  # given by the file instead, so checked after merging
            action.required = False
            if not action.option_strings:
                action.nargs = "?"
    parser.set_defaults(**{DEFAULTS: defaults, REQUIRED: tuple(required), CHECKS: checks, "family": family})


def _checked(value, dest: str, checks: dict, where: str):
    """A file's value as the flag would take it: typed (``lr: 1e-3`` is a string to YAML)
    and within the flag's choices."""
    kind, choices = checks.get(dest, (None, None))
    if isinstance(value, str) and callable(kind):
        try:
            value = kind(value)
        except (TypeError, ValueError):
            raise UserError(f"{where}: {value!r} is not a valid {getattr(kind, '__name__', 'value')}") from None
    if choices is not None and value not in choices:
        raise UserError(f"{where}: {value!r} is not one of {', '.join(map(str, choices))}")
    return value


def section_of(dest: str, family: str) -> tuple[str, str]:
    """The ``(section, key)`` of a flat option name."""
    return FLAT.get(dest, (family, dest))


def resolve(args: argparse.Namespace) -> dict:
    """Fill ``args`` from the file and the defaults; returns the sectioned settings."""
    defaults: dict = vars(args).pop(DEFAULTS)
    required: tuple = vars(args).pop(REQUIRED)
    checks: dict = vars(args).pop(CHECKS)
    family = args.family
    keys = {section_of(dest, family): dest for dest in defaults}
    from_file: dict = {}
    if args.config:
        loaded = load_yaml(args.config)
        if not isinstance(loaded, dict):
            raise UserError(f"{args.config}: expected sections (model:, data:, schedule:, ...), not "
                            f"{type(loaded).__name__}")
        if loaded.get("family", family) != family:
            raise UserError(f"{args.config}: family {loaded['family']!r}, but this is `nerveseg train {family}`")
        valid = sorted(f"{s}.{k}" for s, k in keys)
        for section, values in loaded.items():
            if section in ("family", PROVENANCE):
                continue
            if not isinstance(values, dict):
                raise UserError(f"{args.config}: section {section!r} must map keys to values")
            for key, value in values.items():
                dest = keys.get((section, key))
                if dest is None:
                    raise UserError(f"{args.config}: unknown key {section}.{key} for `nerveseg train {family}`"
                                    f"{did_you_mean(f'{section}.{key}', valid)}")
                from_file[dest] = _checked(value, dest, checks, f"{args.config}: {section}.{key}")
    for dest, default in defaults.items():
        if getattr(args, dest, None) is None:
            setattr(args, dest, from_file.get(dest, default))
    for dest in required:
        if getattr(args, dest) in (None, ""):
            section, key = section_of(dest, family)
            flag = dest if dest == "data" else "--" + dest.replace("_", "-")
            raise UserError(f"give {flag} (or {section}.{key} in the experiment file)")
    sections: dict = {"family": family}
    for (section, key), dest in sorted(keys.items()):
        sections.setdefault(section, {})[key] = getattr(args, dest)
    return sections


def write(out: Path, sections: dict, source: str | None, revision: str, created: str, command: str = "") -> Path:
    """``RUN/experiment.yaml`` (rerunnable with ``--config``) and a copy of the file given."""
    out.mkdir(parents=True, exist_ok=True)
    body = {**sections, PROVENANCE: {"revision": revision, "created": created, "source": str(source or ""),
                                     "command": command}}
    path = out / "experiment.yaml"
    path.write_text(yaml.safe_dump(body, sort_keys=False))
    if source:
        (out / "experiment.source.yaml").write_text(Path(source).read_text())
    return path
