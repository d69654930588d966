"""Outputs never cost the user data: one guard for every file a command writes.

Policy (docs/RELIABILITY.md, "Outputs and inputs"):

* An output that **is** an input of the run is refused, always: compared by resolved
  path (symbolic links, ``..``) and by file identity (``st_dev`` + ``st_ino``: hard
  links, bind mounts). ``--exist-ok`` does not lift this.
* An output file that already exists is refused with one line, unless the command was
  given ``--exist-ok``. An output *folder* (a report, a dataset) that holds files is
  refused the same way. A folder that only collects new, time-stamped files (the live
  view's recordings) claims each file, not the folder.
* Two outputs of one run that are the same file are refused (a CSV named like the AVI).
* JSON and YAML summaries are written whole or not at all: :func:`write_text_atomic`.

The command line opens one :func:`session` per command (``nerveseg.commands.cli``) with
the inputs it was given; loaders add inputs they open (:func:`protect`). Every writer
calls :func:`claim` (files) or :func:`claim_folder` before writing. Outside a session
(library use, unit tests) the guard checks nothing.
"""

from __future__ import annotations

import contextlib
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator

# Moves with UserError when it moves to the engines layer (issue 12).
from nerveseg.engines.errors import UserError


def _identity(path: Path) -> tuple[int, int] | None:
    """``(st_dev, st_ino)`` of what ``path`` names (links followed), or None if absent."""
    try:
        st = os.stat(path)
    except (OSError, ValueError):
        return None
    return st.st_dev, st.st_ino


def _resolved(path: Path) -> Path:
    try:
        return Path(path).resolve()
    except (OSError, RuntimeError):  # a symlink loop: its text is all there is
        return Path(os.path.abspath(path))


def same_file(a: str | Path, b: str | Path) -> bool:
    """True when ``a`` and ``b`` name one file or folder: the same resolved path, or (for
    files that exist) the same device and inode, as hard links do."""
    if _resolved(Path(a)) == _resolved(Path(b)):
        return True
    ida, idb = _identity(Path(a)), _identity(Path(b))
    return ida is not None and ida == idb


@dataclass
class _Session:
    exist_ok: bool = False
    inputs: list[Path] = field(default_factory=list)
    claimed: list[Path] = field(default_factory=list)


_lock = threading.Lock()
# One command runs per process; its writers live on several threads (the recorder's),
# so this is a module variable, not a context variable.
_current: _Session | None = None


@contextlib.contextmanager
def session(inputs: Iterable[str | Path] = (), exist_ok: bool = False) -> Iterator[None]:
    """Guard every :func:`claim` inside: ``inputs`` (files or folders; missing ones are
    ignored) must never be written; existing outputs need ``exist_ok``."""
    global _current
    with _lock:
        previous, _current = _current, _Session(exist_ok=exist_ok)
    try:
        for path in inputs:
            protect(path)
        yield
    finally:
        with _lock:
            _current = previous


def protect(path: str | Path | None) -> None:
    """Add an input of the running command (a no-op outside a session or for paths that
    do not exist, such as a camera index)."""
    if path is None or _current is None:
        return
    try:
        path = Path(path)
        exists = path.exists()
    except (OSError, ValueError, TypeError):
        return
    if exists:
        with _lock:
            _current.inputs.append(path)


def _input_clash(path: Path, inputs: list[Path]) -> Path | None:
    for source in inputs:
        if same_file(path, source):
            return source
    return None


def _check_name(path: Path) -> None:
    """A name the file system cannot hold is refused now, not when the file is opened."""
    if "\x00" in str(path):
        raise UserError(f"{str(path)!r}: a file name cannot hold a NUL character")
    folder = next((p for p in path.absolute().parents if p.is_dir()), Path("/"))
    try:
        limit = os.pathconf(folder, "PC_NAME_MAX")
    except (OSError, ValueError):
        limit = 255
    for part in path.parts:
        size = len(os.fsencode(part))
        if size > limit:
            raise UserError(f"{path}: file name too long ({size} bytes; this file system allows {limit})")


def claim(path: str | Path, what: str = "output") -> Path:
    """Check that ``path`` may be written by this command (see the module's policy) and
    note it as one of its outputs. Raises :class:`UserError` in one line."""
    path = Path(path)
    current = _current
    if current is None:
        return path
    _check_name(path)
    with _lock:
        source = _input_clash(path, current.inputs)
        if source is not None:
            also = "" if _resolved(path) == _resolved(source) else " (the same file by another name)"
            raise UserError(f"{path}: the {what} would overwrite the input {source}{also}; "
                            f"choose another name")
        if any(_resolved(path) == _resolved(c) or same_file(path, c) for c in current.claimed):
            return path  # claimed before by this run (checked again where it is opened)
        if path.is_dir():
            raise UserError(f"{path}: the {what} names an existing folder; give a file name")
        if (path.exists() or path.is_symlink()) and not current.exist_ok:
            raise UserError(f"{path}: exists; choose another name, or pass --exist-ok to replace it")
        current.claimed.append(path)
    return path


def claim_folder(path: str | Path, what: str = "output folder", collects: bool = False) -> Path:
    """Like :func:`claim` for a folder the command fills with files of fixed names: an
    input folder, or one holding files already, is refused (the latter unless ``--exist-ok``).
    ``collects``: a folder that gathers new, uniquely named files (each claimed itself),
    so files already there are no reason to refuse it."""
    path = Path(path)
    current = _current
    if current is None:
        return path
    _check_name(path)
    with _lock:
        source = _input_clash(path, current.inputs)
        if source is not None:
            raise UserError(f"{path}: the {what} is the input {source}; choose another folder")
        if path.exists() and not path.is_dir():
            raise UserError(f"{path}: the {what} exists and is not a folder")
        if path.is_dir() and not collects and not current.exist_ok and any(path.iterdir()):
            raise UserError(f"{path}: the {what} holds files already; choose another, "
                            f"or pass --exist-ok to write into it")
        current.claimed.append(path)
    return path


def claimed_by_this_run(path: str | Path) -> bool:
    """True when the running command claimed ``path`` (its own output, free to write)."""
    current = _current
    return current is not None and any(same_file(path, c) for c in current.claimed)


def write_text_atomic(path: str | Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` whole or not at all
    (:func:`nerveseg.engines.interrupts.write_atomic`: one way to do it everywhere)."""
    from .interrupts import write_atomic

    write_atomic(path, text)
