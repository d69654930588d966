"""The JSON summary: written whole or not at all (a temporary file beside it, then a
rename), so a full disk or a kill never leaves a half-written summary."""

from __future__ import annotations

import json
from pathlib import Path

from nerveseg.engines.outputs import write_text_atomic


def write_summary(path: Path, summary: dict) -> None:
    """Write ``summary`` as JSON to ``path`` atomically; an ``OSError`` leaves no file
    behind (and any earlier ``path`` as it was)."""
    write_text_atomic(path, json.dumps(summary, indent=2, default=str))
