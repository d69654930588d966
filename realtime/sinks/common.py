"""What every sink shares: the one start-up writability check and the one-line error."""

from __future__ import annotations

from pathlib import Path

from nerveseg.engines import outputs
from nerveseg.engines.errors import UserError


def check_writable(path: Path) -> None:
    """Fail at start-up, not after an hour of video, when ``path`` cannot be written, is an
    input of the run, or exists (without ``--exist-ok``): see :mod:`nerveseg.engines.outputs`."""
    outputs.claim(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        existed = path.exists()
        with open(path, "ab"):
            pass
        if not existed:  # a run refused later at start-up must not leave an empty "recording"
            path.unlink()
    except OSError as exc:
        raise UserError(f"{path}: cannot write output ({exc.strerror or exc})") from None


def error_line(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.filename is not None:
        return f"{exc.filename}: {exc.strerror or exc}"
    return " ".join(str(exc).split())
