"""Deterministic train/val/test splits written as file lists, reusable across model families.

A split folder holds ``train.txt``, ``val.txt`` and ``test.txt``, one dataset-relative
path per line. Items are split per stratum (class for classification, Supervisely
dataset for segmentation) in the ratio 7 : 1.5 : 1.5 after a seeded shuffle of the
sorted items, so the same data and seed always give the same lists.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np

from nerveseg.engines.errors import UserError

log = logging.getLogger(__name__)
SPLITS = ("train", "val", "test")
FRACTIONS = (0.7, 0.15, 0.15)


def make_splits(items: list[str], stratum: Callable[[str], str], seed: int = 0,
                fractions: tuple[float, float, float] = FRACTIONS) -> dict[str, list[str]]:
    """Split ``items`` per ``stratum(item)``; each split's list comes back sorted."""
    out: dict[str, list[str]] = {name: [] for name in SPLITS}
    groups: dict[str, list[str]] = {}
    for item in sorted(items):
        groups.setdefault(stratum(item), []).append(item)
    rng = np.random.default_rng(seed)
    for key in sorted(groups):
        members = groups[key]
        order = rng.permutation(len(members))
        n = len(members)
        n_val = int(n * fractions[1] + 0.5)
        n_test = int(n * fractions[2] + 0.5)
        n_train = n - n_val - n_test
        picked = [members[i] for i in order]
        out["train"] += picked[:n_train]
        out["val"] += picked[n_train:n_train + n_val]
        out["test"] += picked[n_train + n_val:]
    return {name: sorted(values) for name, values in out.items()}


def write_splits(folder: str | Path, splits: dict[str, list[str]]) -> Path:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for name in SPLITS:
        (folder / f"{name}.txt").write_text("".join(f"{item}\n" for item in splits[name]))
    return folder


def read_split(folder: str | Path, name: str, root: str | Path | None = None) -> list[str]:
    """One list; with ``root``, every item must exist there (one-line error otherwise)."""
    path = Path(folder) / f"{name}.txt"
    if not path.is_file():
        raise UserError(f"{path}: split list not found")
    items = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    if root is not None:
        missing = [item for item in items if not (Path(root) / item).is_file()]
        if missing:
            raise UserError(f"{path}: {len(missing)} listed files are not in {root} "
                            f"(first: {missing[0]})")
    return items


def read_splits(folder: str | Path, root: str | Path | None = None) -> dict[str, list[str]]:
    """All three lists; an item listed in two splits is refused (it would leak)."""
    splits = {name: read_split(folder, name, root) for name in SPLITS}
    seen: dict[str, str] = {}
    for name in SPLITS:
        for item in splits[name]:
            if item in seen:
                raise UserError(f"{folder}: {item} is in both {seen[item]}.txt and {name}.txt")
            seen[item] = name
    return splits


def splits_digest(splits: dict[str, list[str]]) -> str:
    """sha256 over the three lists, part of an engine's recipe hash."""
    digest = hashlib.sha256()
    for name in SPLITS:
        digest.update(f"[{name}]\n".encode())
        digest.update("".join(f"{item}\n" for item in splits[name]).encode())
    return digest.hexdigest()


def resolve_splits(out: str | Path | None, items: list[str], stratum: Callable[[str], str],
                   seed: int = 0, reuse: str | Path | None = None,
                   root: str | Path | None = None) -> dict[str, list[str]]:
    """The split a run uses, shared by every model family.

    ``reuse`` (``--splits DIR``) first, else ``out/splits`` when a run folder already
    holds one (resume, retraining), else :func:`make_splits` over ``items``. Lists read
    back are restricted to ``items`` (the validated dataset: ``--skip-bad`` may have left
    files out) and written to ``out/splits``, so the run folder says what it used.
    """
    own = Path(out) / "splits" if out is not None else None
    source = reuse or (own if own is not None and (own / "test.txt").is_file() else None)
    if source:
        splits = restrict(read_splits(source, root), items, source)
    else:
        splits = make_splits(items, stratum, seed)
    if own is not None:
        write_splits(own, splits)
    return splits


def restrict(splits: dict[str, list[str]], items: list[str], source) -> dict[str, list[str]]:
    """Drop listed items that are not in ``items`` (with a warning); an empty train or
    test split is refused, items in no list are reported and not used."""
    known = set(items)
    dropped = [item for name in SPLITS for item in splits[name] if item not in known]
    if dropped:
        log.warning("%s: %d listed files are not in the validated dataset and are left out (first: %s)",
                    source, len(dropped), dropped[0])
    kept = {name: [item for item in splits[name] if item in known] for name in SPLITS}
    unlisted = len(known - {item for name in SPLITS for item in kept[name]})
    if unlisted:
        log.warning("%s: %d images of the dataset are in no split list and are not used", source, unlisted)
    for name in ("train", "test"):
        if not kept[name]:
            raise UserError(f"{source}: no {name} image of the list is in the dataset")
    return kept


def splits_folder(model: Path, given: str | None) -> Path:
    """``--splits`` or the run folder's ``splits/`` beside a checkpoint."""
    if given:
        return Path(given)
    beside = model.parent / "splits"
    if model.suffix in (".pt", ".pth") and (beside / "test.txt").is_file():
        return beside
    raise UserError(f"{model}: give --splits DIR (no splits/ folder beside the model)")
