"""Labelled test data for the standalone performance section.

Accepted as ``nerveseg synth`` and training write them:

* a classification folder ``DATA/<class>/*.png`` (the gate's classes);
* a Supervisely segmentation project ``DATA/<ds>/img`` + ``DATA/<ds>/masks_machine``;
* a folder holding both as ``classify/`` and ``segment/`` (``nerveseg synth all``);

each optionally restricted to a split list written by training (``splits/test.txt``).

The engines run through the pipeline's own operators: :class:`GateOp` (its
:class:`Preprocessor`, engine and softmax) and :class:`SegmentOp` (logits resized to
view pixels, thresholded as logits). Dataset images are already the runtime's view
(``synth`` cuts them with ``view_box``), so the preprocessor is told to keep the whole
image: what remains is the pipeline's own ``INTER_AREA`` resize into the engine input.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from nerveseg.engines.base import Engine
from nerveseg.training import metrics
from nerveseg.training.data import label_of, list_classification, list_segmentation, mask_path, read_mask, read_rgb
from nerveseg.training.splits import read_split

from nerveseg.engines.errors import UserError
from nerveseg.realtime.frames import Frame, GateResult, now_ns
from nerveseg.engines.preprocess import PreprocessConfig, Preprocessor
from nerveseg.realtime.stages import GateOp, SegmentOp

#: a dataset image is a view already: take all of it (even sides), resize like the pipeline
DATASET_VIEW = PreprocessConfig(eye="full", border="none", square=False)
KINDS = ("classify", "segment")


@dataclass(frozen=True)
class TestSet:
    """``kind``: ``classify`` or ``segment``; ``items``: paths relative to ``root``;
    ``split``: the list they were restricted to, if any."""

    kind: str
    root: Path
    items: tuple[str, ...]
    split: str | None = None


def find_test_sets(paths: list[str | Path], classes: tuple[str, ...], gate_split: str | Path | None = None,
                   seg_split: str | Path | None = None) -> dict[str, TestSet]:
    """At most one set of each kind; every problem is a one-line :class:`UserError`."""
    found: dict[str, TestSet] = {}
    splits = {"classify": gate_split, "segment": seg_split}
    for path in paths:
        for kind, root in _layouts(Path(path), classes):
            if kind in found:
                raise UserError(f"{root}: a second {kind} test set (the first is {found[kind].root}); give one of each")
            found[kind] = _load(kind, root, classes, splits[kind])
    for kind, split in splits.items():
        if split is not None and kind not in found:
            raise UserError(f"{split}: split list for a {kind} test set, but no --test-set holds one")
    return found


def _layouts(path: Path, classes: tuple[str, ...]) -> list[tuple[str, Path]]:
    if not path.is_dir():
        raise UserError(f"{path}: test set folder not found")
    both = [(kind, path / name) for kind, name in zip(KINDS, ("classify", "segment")) if (path / name).is_dir()]
    if both:  # `nerveseg synth all` output
        return both
    if any((path / name).is_dir() for name in classes):
        return [("classify", path)]
    if (path / "img").is_dir() or any(path.glob("*/img")):
        return [("segment", path)]
    raise UserError(f"{path}: not a test set: expected class folders ({', '.join(classes)}) or a "
                    f"Supervisely project (<ds>/img and <ds>/masks_machine)")


def _load(kind: str, root: Path, classes: tuple[str, ...], split: str | Path | None) -> TestSet:
    items = list_classification(root, classes) if kind == "classify" else list_segmentation(root)
    if split is None:
        return TestSet(kind, root, tuple(items))
    listed = read_split_list(split, root)
    unknown = sorted(set(listed) - set(items))
    if unknown:
        raise UserError(f"{split}: {len(unknown)} listed items are not {kind} images of {root} "
                        f"(first: {unknown[0]})")
    return TestSet(kind, root, tuple(listed), str(split))


def read_split_list(split: str | Path, root: Path) -> list[str]:
    """A split list file (``…/test.txt``) or a split folder (its ``test.txt``)."""
    split = Path(split)
    if split.is_dir():
        folder, name = split, "test"
    elif split.suffix == ".txt":
        folder, name = split.parent, split.stem
    else:
        raise UserError(f"{split}: not a split list (a .txt file, or a splits/ folder holding test.txt)")
    items = read_split(folder, name, root)
    if not items:
        raise UserError(f"{folder / (name + '.txt')}: split list is empty")
    return items


def evaluate_classification(test: TestSet, engine: Engine, progress: bool = True) -> dict:
    """:func:`metrics.classification_report` of the gate on ``test``, plus where it came from."""
    gate = GateOp(engine, DATASET_VIEW)
    truth, probs = [], []
    for index, item in enumerate(tqdm(test.items, desc="test set: gate", unit="img", disable=not progress)):
        image = read_rgb(test.root / item)
        truth.append(label_of(item, engine.classes))
        probs.append(gate.process(Frame(index, now_ns(), image)).probs)
    report = metrics.classification_report(np.array(truth), np.stack(probs), engine.classes)
    return {"set": str(test.root), "split": test.split, **report}


def evaluate_segmentation(test: TestSet, engine: Engine, threshold: float, progress: bool = True,
                          keep: int = 3) -> tuple[dict, list[tuple[np.ndarray, np.ndarray, np.ndarray]]]:
    """Per-image IoU/Dice of the segmenter alone on ``test`` at view resolution, and up to
    ``keep`` examples ``(view (h, w, 3) uint8, truth (h, w) bool, prediction (h, w) bool)``."""
    pre, seg = Preprocessor(DATASET_VIEW, engine.input_size), SegmentOp(engine, threshold)
    iou, dice, has_nerve, inter, union, examples = [], [], [], 0, 0, []
    for index, item in enumerate(tqdm(test.items, desc="test set: segmenter", unit="img", disable=not progress)):
        image, truth_path = read_rgb(test.root / item), mask_path(test.root, item)
        truth = read_mask(truth_path)
        if truth.shape != image.shape[:2]:
            raise UserError(f"{truth_path}: mask is {truth.shape[1]}x{truth.shape[0]}, its image "
                            f"{image.shape[1]}x{image.shape[0]}")
        view, engine_input, box = pre(image)
        gate = GateResult(Frame(index, now_ns(), image), view, box, engine_input.copy(), "nerve", 1.0,
                          np.ones(1, np.float32), True, ())
        pred, true = seg.process(gate).mask, box.slice(truth) > 0
        i, d = metrics.iou_dice(pred[None], true[None])
        iou.append(i[0])
        dice.append(d[0])
        has_nerve.append(bool(true.any()))
        inter, union = inter + int((pred & true).sum()), union + int((pred | true).sum())
        if len(examples) < keep and true.any():
            examples.append((view.copy(), true, pred))
    report = metrics.summarize_segmentation(iou, dice, has_nerve, inter, union)
    report["per_image"]["items"] = list(test.items)
    return {"set": str(test.root), "split": test.split, "threshold": threshold, **report}, examples
