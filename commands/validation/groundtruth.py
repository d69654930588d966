"""Ground truth beside a video, as ``nerveseg synth video`` writes it, and the in-pipeline
score against it.

``<stem>.gt/labels.csv`` (``frame,class``) and ``<stem>.gt/masks/NNNNNN.png`` (left eye,
0/1, one per frame). Everything is checked before anything runs; the per-frame scoring
happens on the validation tap's thread and never raises into the pipeline.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from nerveseg.training import metrics
from nerveseg.training.data import read_mask

from nerveseg.engines.errors import UserError
from nerveseg.realtime.truth import read_labels
from nerveseg.realtime.frames import Rendered
from nerveseg.realtime.sources.base import reduce_mask, reduced_size


@dataclass(frozen=True)
class VideoTruth:
    folder: Path
    labels: dict[int, str]

    def mask_path(self, index: int) -> Path:
        return self.folder / "masks" / f"{index:06d}.png"


def find_video_truth(video: Path, classes: tuple[str, ...]) -> VideoTruth | None:
    """The ground truth beside ``video``, checked; None when there is none."""
    folder = video.parent / f"{video.stem}.gt"
    if not folder.exists():
        return None
    labels = _read_labels(folder / "labels.csv", classes)
    masks = folder / "masks"
    present = {p.name for p in masks.glob("*.png")} if masks.is_dir() else set()
    missing = [i for i in sorted(labels) if f"{i:06d}.png" not in present]
    if missing:
        raise UserError(f"{masks}: no mask for {len(missing)} labelled frames (first: {missing[0]:06d}.png)")
    return VideoTruth(folder, labels)


def _read_labels(path: Path, classes: tuple[str, ...]) -> dict[int, str]:
    labels = read_labels(path, classes)  # the reader replay --gt uses: one rule for both
    if not labels:
        raise UserError(f"{path}: no labelled frames")
    return labels


@dataclass
class TruthScore:
    """Scores each rendered frame against the ground truth: the gate's class (classification
    report) and the mask the surgeon sees, gate included (a frame not called nerve shows
    no mask). Masks are compared in view pixels; the truth is in left-eye coordinates, so
    masks are scored only when the pipeline looks at the left eye."""

    truth: VideoTruth
    classes: tuple[str, ...]
    eye: str = "left"
    keep: int = 3
    max_height: int = 0  # source.max_height: the frames were reduced to this, so are the masks
    y_true: list[int] = field(default_factory=list)
    probs: list[np.ndarray] = field(default_factory=list)
    iou: list[float] = field(default_factory=list)
    dice: list[float] = field(default_factory=list)
    has_nerve: list[bool] = field(default_factory=list)
    pixels: list[int] = field(default_factory=lambda: [0, 0])  # intersection, union
    problems: list[str] = field(default_factory=list)
    silent: list[bool] = field(default_factory=list)  # an unfamiliar view: the product showed no label
    examples: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = field(default_factory=list)
    _next_example: int = 0

    def __call__(self, r: Rendered) -> None:
        label, g = self.truth.labels.get(r.index), r.seg.gate
        if label is None or g.error:
            self.problems.append(f"frame {r.index}: " + ("not labelled" if label is None else g.error))
            return
        self.y_true.append(self.classes.index(label))
        self.probs.append(g.probs)
        self.silent.append(bool(getattr(g, "unfamiliar", False)))
        if self.eye != "left":
            return
        path = self.truth.mask_path(r.index)
        try:
            mask = read_mask(path)
            truth = g.box.slice(reduce_mask(mask, reduced_size(*mask.shape[:2], self.max_height))) > 0
        except UserError as exc:
            self.problems.append(str(exc))
            return
        view_shape = g.view.shape[:2]
        if truth.shape != view_shape:
            self.problems.append(f"{path}: mask does not cover the view ({truth.shape} vs {view_shape})")
            return
        pred = r.seg.mask if r.seg.mask is not None else np.zeros(view_shape, bool)
        i, d = metrics.iou_dice(pred[None], truth[None])
        self.iou.append(float(i[0]))
        self.dice.append(float(d[0]))
        self.has_nerve.append(bool(truth.any()))
        self.pixels[0] += int((pred & truth).sum())
        self.pixels[1] += int((pred | truth).sum())
        if len(self.examples) < self.keep and truth.any() and r.seg.mask is not None \
                and r.index >= self._next_example:
            self.examples.append((g.view.copy(), truth, pred.copy()))
            self._next_example = r.index + 30  # about a second apart: not three views of one moment

    def _shown(self) -> dict:
        """What the surgeon was shown, beside the network's own scores above: frames where the
        product stayed silent (an unfamiliar view: no label, no mask) and whether the network's
        label would have been right there; the accuracy of the labels actually shown."""
        y, top = np.array(self.y_true), np.stack(self.probs).argmax(axis=1)
        silent = np.array(self.silent, bool)
        right = top == y
        shown = ~silent
        return {"frames": int(y.size), "silent": int(silent.sum()),
                "silent_fraction": round(float(silent.mean()), 4),
                "silent_where_the_label_would_be_wrong": int((silent & ~right).sum()),
                "silent_where_the_label_would_be_right": int((silent & right).sum()),
                "labels_shown": int(shown.sum()), "wrong_labels_shown": int((shown & ~right).sum()),
                "accuracy_of_labels_shown": round(float(right[shown].mean()), 4) if shown.any() else None}

    def report(self) -> dict:
        out: dict = {"folder": str(self.truth.folder), "labelled_frames": len(self.truth.labels),
                     "scored_frames": len(self.y_true), "problems": self.problems[:20],
                     "problem_count": len(self.problems)}
        if self.y_true:
            out["classification"] = metrics.classification_report(
                np.array(self.y_true), np.stack(self.probs), self.classes)
            out["shown"] = self._shown()
        if self.iou:
            out["segmentation"] = metrics.summarize_segmentation(self.iou, self.dice, self.has_nerve, *self.pixels)
        elif self.eye != "left":
            out["segmentation_note"] = f"masks not scored: the truth is left-eye, the run used eye={self.eye}"
        return out
