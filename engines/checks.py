"""Every value checked at start-up: a type and a range for each configuration key.

A frozen config dataclass declares what its fields allow with :func:`bounded` (a range,
or a set of choices, and why); :func:`problem` checks one value against the field's
type hint and that declaration and returns what is wrong in words, or None. The config
loader (``nerveseg.realtime.config``) and the command line (``nerveseg.realtime.cli_checks``) both use it, so a
bad value reads the same wherever it came from: the key, the value, what is allowed.
"""

from __future__ import annotations

import dataclasses
import math
import os
import types
import typing
from dataclasses import dataclass
from typing import Any

# More inference threads than four per core only add contention, and each one costs a
# stack and a spinning worker (ONNX Runtime's pool): --threads 100000 grew memory by
# ~60 MB/s and made the process deaf to SIGTERM. Eight at least, for small machines.
MAX_THREADS = max(8, 4 * (os.cpu_count() or 1))


@dataclass(frozen=True)
class Range:
    """``lo``..``hi`` (None: unbounded), each end closed unless ``*_open``."""

    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False
    hi_open: bool = False
    why: str = ""

    def allows(self, value: float) -> bool:
        if self.lo is not None and (value <= self.lo if self.lo_open else value < self.lo):
            return False
        return self.hi is None or (value < self.hi if self.hi_open else value <= self.hi)

    def text(self) -> str:
        if self.lo is not None and self.hi is not None:
            return (f"within {'(' if self.lo_open else '['}{_num(self.lo)}, {_num(self.hi)}"
                    f"{')' if self.hi_open else ']'}")
        if self.lo is not None:
            return f"{'>' if self.lo_open else '≥'} {_num(self.lo)}"
        return f"{'<' if self.hi_open else '≤'} {_num(self.hi)}" if self.hi is not None else ""


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


UNIT = Range(0.0, 1.0)  # probabilities, thresholds, fractions
THREADS = Range(0, MAX_THREADS, why="0: the runtime's choice")


def bounded(default: Any, allowed: Range | tuple = (), why: str = "") -> Any:
    """A dataclass field with ``default`` that allows ``allowed``: a :class:`Range` for
    numbers, or a tuple of choices."""
    return dataclasses.field(default=default, metadata={"allowed": allowed, "why": why})


def describe(hint: Any, allowed: Range | tuple = ()) -> str:
    """What a field of type ``hint`` allows, in words: ``a whole number within [1, 100]``."""
    if isinstance(allowed, tuple) and allowed:
        return "one of " + ", ".join(repr(c) for c in allowed)
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is typing.Literal:
        return "one of " + ", ".join(repr(a) for a in args)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(describe(a, allowed if isinstance(allowed, Range) else ()) for a in args)
    if origin is tuple:
        return f"a list of {len(args)} {describe(args[0]).removeprefix('a ')}s"
    span = f" {allowed.text()}" if isinstance(allowed, Range) and allowed.text() else ""
    return {bool: "true or false", int: f"a whole number{span}", float: f"a number{span}",
            str: "text (no NUL character)", type(None): "nothing (null)"}.get(hint, getattr(hint, "__name__", str(hint)))


def _fits(hint: Any, value: Any) -> bool:
    """True when ``value`` (as YAML or the command line gives it) is of type ``hint``."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is typing.Literal:
        return any(value == a and type(value) is type(a) for a in args)
    if origin in (typing.Union, types.UnionType):
        return any(_fits(a, value) for a in args)
    if origin is tuple:
        return isinstance(value, (list, tuple)) and len(value) == len(args) and all(
            _fits(a, v) for a, v in zip(args, value))
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is str:  # a NUL can name no file and ends C strings early
        return isinstance(value, str) and "\x00" not in value
    if hint is type(None):
        return value is None
    return isinstance(value, hint) if isinstance(hint, type) else True


def problem(hint: Any, value: Any, allowed: Range | tuple = (), why: str = "") -> str | None:
    """What is wrong with ``value`` for a field of type ``hint`` allowing ``allowed``, as
    ``must be …`` (None: nothing)."""
    wrong = not _fits(hint, value)
    if not wrong and isinstance(allowed, tuple) and allowed:
        wrong = value not in allowed
    if not wrong and isinstance(allowed, Range) and isinstance(value, (int, float)) and not isinstance(value, bool):
        wrong = not allowed.allows(value)
    if not wrong:
        return None
    reason = why or (allowed.why if isinstance(allowed, Range) else "")
    return f"must be {describe(hint, allowed)}" + (f" ({reason})" if reason else "")


def field_problem(cls: type, name: str, value: Any) -> str | None:
    """:func:`problem` for field ``name`` of dataclass ``cls``."""
    spec = {f.name: f for f in dataclasses.fields(cls)}[name]
    hint = typing.get_type_hints(cls)[name]
    return problem(hint, value, spec.metadata.get("allowed", ()), spec.metadata.get("why", ""))


def shown(value: Any) -> str:
    """A value as the message shows it: short, on one line."""
    text = " ".join(repr(value).split())
    return text if len(text) <= 60 else text[:57] + "..."
