"""Deterministic train/val/test splits written as file lists, reusable across model families.

A split folder holds ``train.txt``, ``val.txt`` and ``test.txt``, one dataset-relative
path per line. Items are split per stratum (class for classification, Supervisely
dataset for segmentation) in the ratio 7 : 1.5 : 1.5 after a seeded shuffle of the
sorted items, so the same data and seed always give the same lists. Identical images (by
content hash) and frames of one recording are kept on one side (:mod:`.split_keys`).
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
                fractions: tuple[float, float, float] = FRACTIONS,
                links: dict[str, tuple[str, ...]] | None = None,
                pinned: set[str] | None = None) -> dict[str, list[str]]:
    """Split ``items`` per ``stratum(item)``; each split's list comes back sorted.

    ``links[item]``: keys (content hash, source recording) that tie items together; items
    sharing a key, directly or through others, form one unit that goes to one side whole.
    Units are shuffled per stratum (the stratum of the unit's first item) and fill train,
    then val, then test up to their shares of the stratum's images.

    ``pinned``: items that may only be trained on (images the model a run starts from has
    already seen, :mod:`.seen`): their units go to train first, whatever the shares."""
    pinned = pinned or set()
    out: dict[str, list[str]] = {name: [] for name in SPLITS}
    groups: dict[str, list[list[str]]] = {}
    for unit in units_of(sorted(set(items)), links or {}):
        groups.setdefault(stratum(unit[0]), []).append(unit)
    rng = np.random.default_rng(seed)
    for key in sorted(groups):
        units = groups[key]
        n = sum(len(unit) for unit in units)
        n_val = int(n * fractions[1] + 0.5)
        n_train = n - n_val - int(n * fractions[2] + 0.5)
        filled = {"train": 0, "val": 0}
        held = {i for i, unit in enumerate(units) if pinned.intersection(unit)}
        order = sorted(rng.permutation(len(units)), key=lambda i: i not in held)  # stable: held first
        for i in order:
            side = "train" if filled["train"] < n_train or i in held else (
                "val" if filled["val"] < n_val else "test")
            out[side] += units[i]
            filled[side] = filled.get(side, 0) + len(units[i])
    return {name: sorted(values) for name, values in out.items()}


def units_of(items: list[str], links: dict[str, tuple[str, ...]]) -> list[list[str]]:
    """Connected groups of ``items`` (sorted) that share a link key, each sorted, in the
    order of their first item."""
    parent = {item: item for item in items}

    def find(item: str) -> str:
        while parent[item] != item:
            parent[item] = parent[parent[item]]
            item = parent[item]
        return item

    first: dict[str, str] = {}
    for item in items:
        for key in links.get(item, ()):
            if key in first:
                a, b = sorted((find(first[key]), find(item)))
                parent[b] = a
            else:
                first[key] = item
    units: dict[str, list[str]] = {}
    for item in items:
        units.setdefault(find(item), []).append(item)
    return sorted(units.values(), key=lambda unit: unit[0])


def split_items(root: str | Path, items: list[str], stratum: Callable[[str], str],
                seed: int = 0, aliases: dict[str, str] | None = None,
                pinned: set[str] | None = None) -> dict[str, list[str]]:
    """THE split of every layout and command: :func:`make_splits` with each item linked to
    identical images and to its source recording (:func:`~.split_keys.link_keys`), its
    merged copies' (``aliases``: copy → item) included."""
    return make_splits(items, stratum, seed, links=item_links(root, items, aliases), pinned=pinned)


def item_links(root: str | Path, items: list[str], aliases: dict[str, str] | None = None):
    """``{item: keys}`` of :func:`~.split_keys.link_keys`, with each merged copy's keys
    added to the item it was merged into."""
    from .split_keys import link_keys

    known = set(items)
    aliases = {a: i for a, i in (aliases or {}).items() if i in known}
    keys = link_keys(root, list(items) + list(aliases))
    out = {item: keys[item] for item in items}
    for alias, item in aliases.items():
        out[item] = out[item] + keys[alias]
    return out


def check_leaks(splits: dict[str, list[str]], root: str | Path,
                aliases: dict[str, str] | None = None) -> None:
    """Refuse lists that put the same image (by content) or one recording on two sides."""
    keys = item_links(root, [item for name in SPLITS for item in splits[name]], aliases)
    seen: dict[str, tuple[str, str]] = {}
    for name in SPLITS:
        for item in splits[name]:
            for key in keys[item]:
                other = seen.setdefault(key, (name, item))
                if other[0] != name:
                    what = "the same image" if key.startswith("sha256:") else f"recording {key[7:]!r}"
                    raise UserError(f"{root}: the split lists leak: {other[1]} ({other[0]}) and {item} "
                                    f"({name}) are {what}; write new lists with nerveseg data split")


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
    """All three lists; an item listed in two splits is refused (it would leak), and with
    ``root`` so are two sides sharing an image or a recording (:func:`check_leaks`)."""
    splits = {name: read_split(folder, name, root) for name in SPLITS}
    seen: dict[str, str] = {}
    for name in SPLITS:
        for item in splits[name]:
            if item in seen:
                raise UserError(f"{folder}: {item} is in both {seen[item]}.txt and {name}.txt")
            seen[item] = name
    if root is not None:
        check_leaks(splits, root)
    return splits


def read_scored(folder: str | Path, name: str, root: str | Path) -> list[str]:
    """The list ``name`` an evaluation scores, refused if it shares an image or a recording
    with another list of ``folder`` (the others are optional: a test list may come alone)."""
    lists = {other: read_split(folder, other, root) for other in SPLITS
             if other == name or (Path(folder) / f"{other}.txt").is_file()}
    check_leaks({side: lists.get(side, []) for side in SPLITS}, root)
    return lists[name]


def splits_digest(splits: dict[str, list[str]]) -> str:
    """sha256 over the three lists, part of an engine's recipe hash."""
    digest = hashlib.sha256()
    for name in SPLITS:
        digest.update(f"[{name}]\n".encode())
        digest.update("".join(f"{item}\n" for item in splits[name]).encode())
    return digest.hexdigest()


def resolve_splits(out: str | Path | None, items: list[str], stratum: Callable[[str], str],
                   seed: int = 0, reuse: str | Path | None = None,
                   root: str | Path | None = None,
                   aliases: dict[str, str] | None = None,
                   pinned: set[str] | None = None) -> dict[str, list[str]]:
    """The split a run uses, shared by every model family.

    ``reuse`` (``--splits DIR``) first, else ``out/splits`` when a run folder already
    holds one (resume, retraining), else :func:`split_items` over ``items`` (content and
    source linked when ``root`` is given). Lists read back are checked for leaks, mapped
    through ``aliases`` (a listed copy → the item it was merged into) and restricted to
    ``items`` (the validated dataset: ``--skip-bad`` may have left files out), then
    written to ``out/splits``, so the run folder says what it used. ``pinned`` items
    (seen by the model the run starts from) go to train; lists read back that put one in
    validation or test are refused.
    """
    own = Path(out) / "splits" if out is not None else None
    source = reuse or (own if own is not None and (own / "test.txt").is_file() else None)
    if source:
        splits = restrict(read_splits(source, root), items, source, aliases)
        if root is not None:
            check_leaks(splits, root, aliases)  # copies merged since the lists were written
        check_pinned(splits, pinned or set(), source)
    elif root is not None:
        splits = split_items(root, items, stratum, seed, aliases, pinned)
    else:
        splits = make_splits(items, stratum, seed)
    if own is not None:
        write_splits(own, splits)
    return splits


def check_pinned(splits: dict[str, list[str]], pinned: set[str], source) -> None:
    """Refuse lists that put an image the starting model has seen in validation or test."""
    for name in ("val", "test"):
        hits = sorted(pinned.intersection(splits[name]))
        if hits:
            raise UserError(f"{source}: {len(hits)} {name} images of the lists were seen by the --init model "
                            f"(first: {hits[0]}); they may only be trained on: write new lists (leave out --splits)")


def dataset_splits(out: str | Path | None, dataset, seed: int = 0,
                   reuse: str | Path | None = None,
                   pinned: set[str] | None = None) -> dict[str, list[str]]:
    """:func:`resolve_splits` for an imported dataset (its items, strata and merged copies)."""
    strata = {s.item: s.stratum for s in dataset.samples}
    aliases = {alias: s.item for s in dataset.samples for alias in s.aliases}
    return resolve_splits(out, dataset.items, strata.__getitem__, seed, reuse, dataset.root, aliases, pinned)


def restrict(splits: dict[str, list[str]], items: list[str], source,
             aliases: dict[str, str] | None = None) -> dict[str, list[str]]:
    """Drop listed items that are not in ``items`` (with a warning); an empty train or
    test split is refused, items in no list are reported and not used."""
    aliases = aliases or {}
    splits = {name: sorted({aliases.get(item, item) for item in splits[name]}) for name in SPLITS}
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
