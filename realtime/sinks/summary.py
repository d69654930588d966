"""The JSON summary: written whole or not at all (a temporary file beside it, then a
rename), so a full disk or a kill never leaves a half-written summary."""

from __future__ import annotations

import json
import os
from pathlib import Path


def write_summary(path: Path, summary: dict) -> None:
    """Write ``summary`` as JSON to ``path`` atomically; an ``OSError`` leaves no file
    behind (and any earlier ``path`` as it was)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with open(tmp, "w") as f:
            f.write(json.dumps(summary, indent=2, default=str))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
