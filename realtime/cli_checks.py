"""Every command-line number checked before a command starts: one table, all commands.

argparse gives each flag its type; this gives it a range. A flag that sets a config
key (``--threshold`` → ``segment.threshold``) takes that key's declared range, so the
YAML and the command line allow the same values. Every other number is looked up by
its argument name in :data:`RANGES`; a number not listed must still be finite and not
negative (no count, size, rate, weight or duration of this CLI is negative).
"""

from __future__ import annotations

import argparse
import math
import sys

from nerveseg.engines.checks import MAX_THREADS, THREADS, UNIT, Range, field_problem, problem

from .config import GateConfig, SegmentConfig, SourceConfig
from .layer import DisplayConfig
from nerveseg.engines.errors import UserError

# Flags that override a config key: checked by that key's own declaration.
CONFIG_FLAGS = {"threshold": (SegmentConfig, "threshold"), "min_confidence": (GateConfig, "min_confidence"),
                "gate_every": (GateConfig, "every"),
                "fade_after_ms": (DisplayConfig, "fade_after_ms"), "hide_after_ms": (DisplayConfig, "hide_after_ms"),
                "inference_nice": (DisplayConfig, "inference_nice"),
                "realtime_priority": (DisplayConfig, "realtime_priority"),
                "max_height": (SourceConfig, "max_height")}

POSITIVE = Range(0, lo_open=True)
AT_LEAST_ONE = Range(1)
# Caps keep a typo from asking for days of work or all the memory: far above real use.
RANGES: dict[str, Range] = {
    "threads": THREADS, "workers": Range(0, MAX_THREADS),
    "min_accuracy": UNIT, "min_iou": UNIT, "min_score": UNIT, "hflip": UNIT, "vflip": UNIT,
    "negatives": UNIT, "scale_min": Range(0, 1, lo_open=True),
    "lr": POSITIVE, "finetune_lr": POSITIVE,
    "batch_size": Range(1, 4096), "rounds": Range(1, 1000), "frames": Range(1, 10_000_000),
    "soak": Range(0, 10_000_000), "uhd_card_frames": Range(1, 100_000), "count": Range(1, 1_000_000), "per_class": Range(1, 1_000_000),
    "size": Range(8, 8192, why="pixels"), "input_size": Range(8, 8192, why="pixels"),
    "detections": Range(1, 10_000), "opset": Range(7, 30), "rotate": Range(0, 180, why="degrees"),
    "width": Range(0, 4, lo_open=True, why="the model's width multiplier"),
    "seed": Range(0, 2**32 - 1), "split_seed": Range(0, 2**32 - 1),
    "duration": POSITIVE, "seconds": POSITIVE, "after": Range(0, 3600),
    "ood_count": Range(1, 100_000), "quantile": Range(0.5, 1, hi_open=True, why="a quantile of the validation scores"),
    "annotation_threshold_ms": POSITIVE, "perturb": Range(0, 1), "video_threshold_ms": POSITIVE,
    "pixel_tolerance": Range(0, 255), "soak_fps": Range(0, 1000, why="frames per second; 0: as fast as possible"),
}
ANY_NUMBER = Range(0, why="not negative")


def flag(dest: str) -> str:
    return "--" + dest.replace("_", "-")


def value_problem(dest: str, value) -> str | None:
    """What is wrong with the parsed value of argument ``dest`` (None: nothing)."""
    if dest in CONFIG_FLAGS:
        return field_problem(*CONFIG_FLAGS[dest], value)
    hint = float if isinstance(value, float) else int
    return problem(hint, value, RANGES.get(dest, ANY_NUMBER))


def check_arguments(args: argparse.Namespace) -> None:
    """Raise :class:`UserError` for the first numeric argument out of its range."""
    for dest, value in vars(args).items():
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, bool) or not isinstance(item, (int, float)):
                continue
            wrong = value_problem(dest, item)
            if wrong:
                shown = item if not isinstance(item, float) or math.isfinite(item) else str(item)
                raise UserError(f"{flag(dest)} {shown}: {wrong}")


class OneLineParser(argparse.ArgumentParser):
    """argparse, with its errors in one line (and no usage block): ``nerveseg replay:
    error: argument --threads: invalid int value: '1.5' (--help for usage)``."""

    def error(self, message: str) -> None:
        print(f"{self.prog}: error: {' '.join(message.split())} (--help for usage)", file=sys.stderr)
        raise SystemExit(2)
