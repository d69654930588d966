"""Which images a model has learned from, carried from run to run and from engine to engine.

A fine-tuned model has learned from its own training images *and* from every image the
model it started from (``--init``) learned from. A split that keeps this run's train and
test apart is not enough: an image the starting engine trained on, drawn again into this
run's test split, would be scored as unseen. So every trained model records, in its
metadata (``extra.seen``, carried into the exported engine), short content digests of

* ``trained``: the images it and its ancestors trained on;
* ``validated``: the images they were selected on (validation splits);

and ``complete``: false when some ancestor did not record its images (engines exported
before this record existed), so that nobody reads a clean check as proof.

Uses: ``nerveseg train --init`` keeps every image the starting engine has seen on the
train side of the new split (:func:`pinned`); ``nerveseg eval`` refuses to score an
engine's test on images it has seen (:func:`check_unseen`).

Digests are the first :data:`PREFIX` hex digits of the file's sha256 (64 bits: no two of a
few million images share one by chance), stored sorted and concatenated.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from nerveseg.engines.errors import UserError

log = logging.getLogger(__name__)
KEY = "seen"
PREFIX = 16


@dataclass(frozen=True)
class Seen:
    trained: frozenset[str]
    validated: frozenset[str]
    complete: bool
    unknown: tuple[str, ...] = ()  # ancestors without a record

    @property
    def any(self) -> frozenset[str]:
        return self.trained | self.validated

    def to_extra(self) -> dict:
        return {"prefix": PREFIX, "complete": self.complete, "unknown": list(self.unknown),
                "trained_count": len(self.trained), "validated_count": len(self.validated),
                "trained": "".join(sorted(self.trained)), "validated": "".join(sorted(self.validated))}


def _chunks(text: str, source) -> frozenset[str]:
    if len(text) % PREFIX or any(c not in "0123456789abcdef" for c in text):
        raise UserError(f"{source}: the record of seen images (extra.seen) is damaged")
    return frozenset(text[i:i + PREFIX] for i in range(0, len(text), PREFIX))


def of_meta(meta, source) -> Seen | None:
    """The record in an engine's or checkpoint's metadata, or ``None`` when it has none."""
    raw = (getattr(meta, "extra", None) or {}).get(KEY)
    if not raw:
        return None
    if raw.get("prefix") != PREFIX:
        raise UserError(f"{source}: the record of seen images uses {raw.get('prefix')}-digit digests; "
                        f"this nerveseg reads {PREFIX}")
    return Seen(_chunks(raw.get("trained", ""), source), _chunks(raw.get("validated", ""), source),
                bool(raw.get("complete")), tuple(raw.get("unknown", ())))


def digests(root: str | Path, items) -> dict[str, str]:
    """``{item: digest}`` of dataset-relative ``items`` under ``root``."""
    from .split_keys import file_digest
    from .threads import parallel

    root = Path(root)
    items = list(items)
    return dict(zip(items, (d[:PREFIX] for d in parallel(lambda item: file_digest(root / item), items))))


def inherited(init_meta, init_path) -> Seen:
    """What a run starting from ``init_meta`` has seen before its first step."""
    if init_meta is None:
        return Seen(frozenset(), frozenset(), True)
    record = of_meta(init_meta, init_path)
    if record is None:
        log.warning("%s does not record the images it was trained on (exported before nerveseg kept that "
                    "record): this run's validation and test images cannot be checked against them",
                    init_path)
        return Seen(frozenset(), frozenset(), False, (str(init_path),))
    return record


def record(before: Seen, parts: list[tuple[str | Path, dict[str, list[str]]]]) -> Seen:
    """``before`` plus the train and val images of each ``(root, splits)`` of this run."""
    trained, validated = set(before.trained), set(before.validated)
    for root, splits in parts:
        trained.update(digests(root, splits["train"]).values())
        validated.update(digests(root, splits["val"]).values())
    return Seen(frozenset(trained), frozenset(validated - trained), before.complete, before.unknown)


def pinned(root: str | Path, items: list[str], before: Seen) -> set[str]:
    """The ``items`` the starting model has seen: they may only go to the train split."""
    if not before.any:
        return set()
    found = {item for item, digest in digests(root, items).items() if digest in before.any}
    if found:
        log.info("%d images of %s were seen by the model this run starts from: they stay in the train "
                 "split (never validation or test)", len(found), root)
    return found


def check_unseen(meta, source, root: str | Path, items: list[str], split: str) -> dict:
    """Refuse to score ``split`` of an engine on images it has seen; the check's summary.

    ``test``/``all``: no image it trained or was selected on; ``val``: none it trained on;
    ``train``: nothing to check."""
    record = of_meta(meta, source)
    if record is None:
        return {"checked": False, "reason": "the engine does not record the images it was trained on"}
    if split == "train":
        return {"checked": False, "reason": "the train split"}
    refuse_seen(record, root, items, split, source)
    return {"checked": True, "complete": record.complete, "unknown": list(record.unknown)}


def refuse_seen(record: Seen, root: str | Path, items: list[str], split: str, source) -> None:
    """UserError when ``items`` of ``split`` hold an image ``record`` has seen (for ``val``:
    trained on; for ``test`` and ``all``: trained or selected on)."""
    forbidden = record.trained if split == "val" else record.any
    hits = sorted(item for item, digest in digests(root, items).items() if digest in forbidden)
    if hits:
        raise UserError(f"{source}: {len(hits)} of the {len(items)} {split} images of {root} are images this "
                        f"model (or one it was fine-tuned from) learned from (first: {hits[0]}); "
                        "scoring them would overstate it: evaluate on images it has not seen")
