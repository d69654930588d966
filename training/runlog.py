"""The run folder: resolved config, split lists, metrics history, curves, provenance.

``RUN/config.yaml``   resolved arguments
``RUN/splits/*.txt``  the train/val/test lists used
``RUN/history.csv``, ``RUN/history.json``  one row per epoch
``RUN/curves.png``    loss and the task metric per epoch
``RUN/train.log``     the log of every run and resume
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import subprocess
from datetime import datetime, timezone
from pathlib import Path

import yaml

from .splits import splits_digest

# Arguments that say where and how fast, not what: left out of the recipe hash.
NOT_RECIPE = ("out", "resume", "workers", "threads", "splits", "data")


def git_revision(where: str | Path | None = None) -> str:
    """Short commit of the nerveseg checkout (``+dirty`` with local changes), or ``unknown``."""
    where = Path(where or Path(__file__).resolve().parent)
    try:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=where, text=True,
                             capture_output=True, timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=where,
                               text=True, capture_output=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return rev + ("+dirty" if dirty else "")


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def recipe_hash(config: dict, splits: dict[str, list[str]]) -> str:
    """sha256 of the resolved training config (minus paths and speed knobs) and the split lists."""
    recipe = {k: v for k, v in sorted(config.items()) if k not in NOT_RECIPE}
    digest = hashlib.sha256(yaml.safe_dump(recipe, sort_keys=True).encode())
    digest.update(splits_digest(splits).encode())
    return digest.hexdigest()


def write_config(out: Path, config: dict) -> Path:
    path = out / "config.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=True))
    return path


def write_history(out: Path, history: list[dict]) -> None:
    """``history.json`` (exact) and ``history.csv`` (for spreadsheets)."""
    (out / "history.json").write_text(json.dumps(history, indent=1))
    keys = list(dict.fromkeys(k for row in history for k in row))
    with open(out / "history.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=keys)
        writer.writeheader()
        writer.writerows(history)


def read_history(out: Path) -> list[dict]:
    path = out / "history.json"
    return json.loads(path.read_text()) if path.is_file() else []


def log_to_file(out: Path) -> logging.Handler:
    """Append this process's log to ``RUN/train.log``; remove the handler when done."""
    handler = logging.FileHandler(out / "train.log")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.getLogger().addHandler(handler)
    if logging.getLogger().level > logging.INFO:
        logging.getLogger().setLevel(logging.INFO)
    return handler
