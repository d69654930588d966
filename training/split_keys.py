"""What ties images together for a split: identical content, and the same source.

Two images that must never be on different sides of a split:

* **the same picture**: keyed by the sha256 of the file's bytes (:func:`file_digest`),
  so a copy or hard link under another name or class folder is caught;
* **frames of one recording / images of one subject**: keyed by a *source*, taken from
  ``DATA/groups.csv`` when the dataset has one (a path column ``item``, ``image``,
  ``file`` or ``path`` relative to ``DATA``, and a ``group``, ``source``, ``video``,
  ``recording`` or ``subject`` column), else from the file name when it names a frame of
  a recording: ``<recording>_frame<N>``, ``<recording>-frame_<N>``, ``<recording>_f<N>``
  (the part before the frame token is the source; see :data:`FRAME_NAME`).

Torch-free; used by :mod:`nerveseg.training.splits` and the importers.
"""

from __future__ import annotations

import csv
import hashlib
import os
import re
from functools import lru_cache
from pathlib import Path

from nerveseg.engines.errors import UserError

from .threads import parallel

GROUPS_FILE = "groups.csv"
PATH_COLUMNS = ("item", "image", "file", "path")
GROUP_COLUMNS = ("group", "source", "video", "recording", "subject")
# A frame of a recording: the token "frame"/"frm"/"f" then its number ends the stem.
# A bare trailing number ("img_0012") is not enough: most datasets number unrelated images.
FRAME_NAME = re.compile(r"^(?P<source>.+?)(?:[ ._-]+(?:frame|frm|f)|frame)[ ._-]?\d+$", re.IGNORECASE)


def file_digest(path: str | Path) -> str:
    """sha256 hex of the file's bytes (cached per path, size and modification time)."""
    stat = os.stat(path)
    return _digest(str(Path(path).resolve()), stat.st_size, stat.st_mtime_ns)


@lru_cache(maxsize=65536)
def _digest(path: str, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def source_from_name(item: str) -> str | None:
    """The recording a frame's file name names (``"vid3_frame0012.png"`` → ``"vid3"``), or ``None``."""
    stem = Path(item).stem
    match = FRAME_NAME.match(stem)
    if not match or not match.group("source"):
        return None
    # The folder is not part of it: frames of one video sorted into class folders (nerve /
    # no nerve) are still one recording.
    return match.group("source")


def read_groups(root: str | Path) -> dict[str, str]:
    """``{item: group}`` from ``root/groups.csv`` (empty if there is none); one-line error if
    the file lacks a path or group column."""
    path = Path(root) / GROUPS_FILE
    if not path.is_file():
        return {}
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    header = [name.strip().lower() for name in (rows[0].keys() if rows else [])]
    item_col = next((c for c in PATH_COLUMNS if c in header), None)
    group_col = next((c for c in GROUP_COLUMNS if c in header), None)
    if item_col is None or group_col is None:
        raise UserError(f"{path}: needs a path column ({'/'.join(PATH_COLUMNS)}) and a group column "
                        f"({'/'.join(GROUP_COLUMNS)}); header is {header}")
    out = {}
    for row in rows:
        row = {k.strip().lower(): (v or "").strip() for k, v in row.items() if k}
        if row.get(item_col) and row.get(group_col):
            out[Path(row[item_col]).as_posix()] = row[group_col]
    return out


def link_keys(root: str | Path, items: list[str]) -> dict[str, tuple[str, ...]]:
    """Per item, the keys that must keep it on one side with every other item sharing one:
    ``"sha256:<hex>"`` of its file, and ``"source:<name>"`` when a source is known."""
    root = Path(root)
    groups = read_groups(root)
    digests = parallel(lambda item: file_digest(root / item), items)
    out = {}
    for item, digest in zip(items, digests):
        source = groups.get(item) or source_from_name(item)
        out[item] = (f"sha256:{digest}",) + ((f"source:{source}",) if source else ())
    return out
