"""A recorded video's annotations, checked against it, and each replayed frame scored on them.

The format is the one ``nerveseg synth video`` writes beside its videos (and
``samples/stereo_sample.gt``): ``DIR/labels.csv`` with ``frame,class`` rows (frames
counted from 0, in decode order) and ``DIR/masks/NNNNNN.png`` for each labelled frame,
single-channel, 0 = background, anything else nerve. A mask is either the whole frame or
one eye: a one-eye mask is the left eye's (as the generator writes it). Frames without
a row are not annotated: their score columns are empty.

Masks are cut exactly as the runtime cuts the frame (:mod:`nerveseg.engines.preprocess`):
the gate's view box, and for ``side-by-side-half`` the eye stretched back to its shape.
Everything that can be checked before a frame runs is checked by :func:`load_truth`;
a problem with one frame (an unreadable mask) is counted and said, never raised into
the pipeline.
"""

from __future__ import annotations

import csv
import struct
import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from nerveseg.engines.errors import UserError
from nerveseg.engines.intervals import METHODS, bounded_mean_ci, wilson
from nerveseg.engines.preprocess import Box, eye_box, resolve_layout

from .sources.base import reduce_mask, reduced_size

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@dataclass(frozen=True)
class GroundTruth:
    """``labels``: frame index → class. ``one_eye``: some masks are the left eye's, not
    the whole frame's (each mask says which by its size). ``layout``: the frames' concrete stereo layout (``auto`` resolved)."""

    folder: Path
    labels: dict[int, str]
    frame_size: tuple[int, int]  # (H, W) of the video's frames
    layout: str
    one_eye: bool

    def mask_path(self, index: int) -> Path:
        return self.folder / "masks" / f"{index:06d}.png"


def png_size(path: Path) -> tuple[int, int]:
    """``(H, W)`` of a PNG from its header (no decode); a UserError naming ``path`` else."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(24)
    except OSError as exc:
        raise UserError(f"{path}: cannot read mask ({exc.strerror or exc})") from None
    if len(head) < 24 or not head.startswith(PNG_SIGNATURE) or head[12:16] != b"IHDR":
        raise UserError(f"{path}: not a PNG mask")
    width, height = struct.unpack(">II", head[16:24])
    return height, width


def read_labels(path: Path, classes: tuple[str, ...]) -> dict[int, str]:
    """``frame → class`` from a ``frame,class`` CSV; one-line UserError naming the line."""
    if not path.is_file():
        raise UserError(f"{path}: ground-truth labels not found (expected frame,class rows)")
    labels: dict[int, str] = {}
    with open(path, newline="") as handle:
        reader = csv.DictReader(handle)
        if reader.fieldnames is None or not {"frame", "class"} <= set(reader.fieldnames):
            raise UserError(f"{path}: needs a header with the columns frame,class")
        for line, row in enumerate(reader, start=2):
            try:
                index = int(row["frame"])
            except (TypeError, ValueError):
                raise UserError(f"{path}: line {line}: frame {row['frame']!r} is not a number") from None
            if index < 0:
                raise UserError(f"{path}: line {line}: frame {index} is negative (frames count from 0)")
            if row["class"] not in classes:
                raise UserError(f"{path}: line {line}: class {row['class']!r} is not one of {', '.join(classes)}")
            labels[index] = row["class"]
    if not labels:
        raise UserError(f"{path}: no labelled frames")
    return labels


def load_truth(folder: Path, classes: tuple[str, ...], frame_size: tuple[int, int], frame_count: int,
               layout: str = "auto", eye: str = "left") -> GroundTruth:
    """The annotations in ``folder`` for a video of ``frame_count`` frames (0: unknown) of
    ``frame_size`` ``(H, W)``, checked whole: a one-line UserError names the file and the
    problem (missing, a frame the video lacks, a mask of another size)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise UserError(f"{folder}: ground-truth folder not found (expected labels.csv and masks/)")
    labels = read_labels(folder / "labels.csv", classes)
    if frame_count and max(labels) >= frame_count:
        late = max(labels)
        raise UserError(f"{folder / 'labels.csv'}: frame {late} is labelled but the video has only "
                        f"{frame_count} frames (0-{frame_count - 1}): annotations of another video?")
    h, w = frame_size
    concrete = resolve_layout(h, w, layout)[0]
    eye_shape = eye_box(h, w, "left", concrete)
    shapes = {(h, w): "the whole frame", (eye_shape.height, eye_shape.width): "one eye"}
    one_eye = None
    for index in sorted(labels):
        path = folder / "masks" / f"{index:06d}.png"
        if not path.is_file():
            raise UserError(f"{path}: mask of labelled frame {index} not found")
        size = png_size(path)
        if size not in shapes:
            raise UserError(f"{path}: mask is {size[1]}x{size[0]}, the video's frames are {w}x{h}: a mask "
                            f"must be the whole frame or one eye ({eye_shape.width}x{eye_shape.height})")
        one_eye = one_eye or (shapes[size] == "one eye" and (h, w) != size)
    if one_eye and eye != "left" and concrete != "mono":
        raise UserError(f"{folder / 'masks'}: the masks are one eye (the left), the run looks at eye={eye}: "
                        f"replay with --eye left, or give whole-frame masks")
    return GroundTruth(folder, labels, (h, w), concrete, bool(one_eye))


def truth_in_view(truth: GroundTruth, mask: np.ndarray, box: Box, eye: str) -> np.ndarray:
    """``(h, w) bool`` nerve of ``mask`` (whole frame or left eye, 0/1) in the pixels of
    the view the gate cut with ``box``, as :class:`~nerveseg.engines.preprocess.Preprocessor`
    cuts the frame (a ``side-by-side-half`` eye stretched to twice its width first)."""
    h, w = truth.frame_size
    nerve, one_eye = mask > 0, mask.shape[:2] != (h, w)
    if truth.layout == "side-by-side-half":
        e = eye_box(h, w, eye, truth.layout)
        part = nerve if one_eye else e.slice(nerve)
        stretched = cv2.resize(part.astype(np.uint8), (2 * e.width, e.height), interpolation=cv2.INTER_NEAREST)
        return box.slice(stretched) > 0
    if one_eye:
        e = eye_box(h, w, "left", truth.layout)
        return box.offset(-e.x0, -e.y0).slice(nerve)
    return box.slice(nerve)


def iou_dice(pred: np.ndarray, true: np.ndarray) -> tuple[float, float]:
    """IoU and Dice of two ``(h, w) bool`` masks; both empty scores 1 (nothing to find, nothing shown)."""
    inter = int(np.count_nonzero(pred & true))
    union = int(np.count_nonzero(pred | true))
    total = int(np.count_nonzero(pred)) + int(np.count_nonzero(true))
    if union == 0:
        return 1.0, 1.0
    return inter / union, 2 * inter / total


#: the CSV columns a scored replay adds (empty on a frame without annotation). ``gt_frame``:
#: the annotation's frame number, the frame's place in the file (:attr:`Frame.number`), which
#: runs ahead of the CSV's ``frame`` after an undecodable frame
COLUMNS = ("gt_frame", "gt_class", "gate_correct", "gt_iou", "gt_dice")


@dataclass
class TruthScorer:
    """Scores each frame the surgeon sees against the annotations: the label shown against
    the annotated class, and the mask shown (none when the gate did not call nerve)
    against the annotated mask. Called on the overlay's thread, one frame at a time."""

    truth: GroundTruth
    eye: str = "left"
    iou: list[float] = field(default_factory=list)
    dice: list[float] = field(default_factory=list)
    has_nerve: list[bool] = field(default_factory=list)
    correct: list[bool] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    scored: set[int] = field(default_factory=set)
    silent: dict[int, bool] = field(default_factory=dict)  # frame → shown as an unfamiliar view
    max_height: int = 0  # source.max_height: frames reduced to this many rows, so are the masks

    def _at_work_size(self, mask: np.ndarray) -> tuple[GroundTruth, np.ndarray]:
        """The annotations as the pipeline sees them: a mask of a frame that
        ``source.max_height`` reduces is reduced the same way (area averaging; a pixel is
        nerve where most of what it covers is), with the truth's frame size to match."""
        h, w = self.truth.frame_size
        rh, rw = reduced_size(h, w, self.max_height)
        if (rh, rw) == (h, w):
            return self.truth, mask
        if mask.shape[:2] == (h, w):
            size = (rw, rh)
        else:
            e = eye_box(rh, rw, "left", self.truth.layout)
            size = (e.width, e.height)
        return dataclasses.replace(self.truth, frame_size=(rh, rw)), reduce_mask(mask, (size[1], size[0]))

    def __call__(self, index: int, label: str, mask: np.ndarray | None, box: Box,
                 view_shape: tuple[int, int]) -> dict:
        """The frame's :data:`COLUMNS` (None where it has no annotation or its mask failed)."""
        row: dict = dict.fromkeys(COLUMNS)
        annotated = self.truth.labels.get(index)
        if annotated is None:
            return row
        row["gt_frame"], row["gt_class"], row["gate_correct"] = index, annotated, label == annotated
        self.scored.add(index)
        self.silent[index] = label == "unfamiliar"
        self.correct.append(label == annotated)
        path = self.truth.mask_path(index)
        raw = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        if raw is None or raw.shape[:2] not in _sizes(self.truth):
            self.problems.append(f"{path}: " + ("cannot read mask" if raw is None else
                                                f"mask is {raw.shape[1]}x{raw.shape[0]}, not as checked"))
            return row
        truth, raw = self._at_work_size(raw if raw.ndim == 2 else raw[..., 0])
        true = truth_in_view(truth, raw, box, self.eye)
        if true.shape != tuple(view_shape):
            self.problems.append(f"{path}: frame {index} is not the size the annotations were checked against")
            return row
        pred = mask if mask is not None else np.zeros(view_shape, bool)
        row["gt_iou"], row["gt_dice"] = (round(v, 4) for v in iou_dice(pred, true))
        self.iou.append(row["gt_iou"])
        self.dice.append(row["gt_dice"])
        self.has_nerve.append(bool(true.any()))
        return row

    def report(self, frames_seen: int | None = None) -> dict:
        """Means with their 95 % intervals (bootstrap for IoU/Dice, Wilson for the gate)."""
        nerve = [v for v, n in zip(self.iou, self.has_nerve) if n]
        right = sum(self.correct)
        low, high = wilson(right, len(self.correct))
        silent = sum(1 for i in self.scored if self.silent.get(i))
        return {"folder": str(self.truth.folder), "annotated_frames": len(self.truth.labels),
                "scored_frames": len(self.correct), "masks_scored": len(self.iou),
                "confidence": 0.95, "intervals": dict(METHODS),
                "gate_accuracy": {"n": len(self.correct), "correct": right,
                                  "mean": right / len(self.correct) if self.correct else None,
                                  **_finite({"ci_low": low, "ci_high": high})},
                "iou": _finite(bounded_mean_ci(self.iou)), "dice": _finite(bounded_mean_ci(self.dice)),
                "iou_nerve_frames": _finite(bounded_mean_ci(nerve)),
                # an unfamiliar view shows no label: neither right nor a wrong label painted
                "unfamiliar_frames": silent, "wrong_label_shown": len(self.correct) - right - silent,
                "problems": self.problems[:20], "problem_count": len(self.problems)}


    def run_problems(self, complete: bool, undecodable: int = 0) -> list[str]:
        """What went wrong with the scoring, one line each: masks that failed and, after a
        run that reached the video's end (``complete``), annotated frames it never had
        beyond the ``undecodable`` frames the source skipped (said by the source itself)."""
        found = []
        if self.problems:
            found.append(f"{len(self.problems)} annotated frame(s) not scored: {self.problems[0]}")
        missed = sorted(set(self.truth.labels) - self.scored)
        if complete and missed and len(missed) <= undecodable:
            found.append(f"{self.truth.folder / 'labels.csv'}: {len(missed)} annotated frame(s) were undecodable "
                         f"in the video and not scored (first: frame {missed[0]})")
        elif complete and missed:
            found.append(f"{self.truth.folder / 'labels.csv'}: {len(missed)} annotated frame(s) not in the "
                         f"video (first: frame {missed[0]}): annotations of another video?")
        return found


def _finite(values: dict) -> dict:
    """``nan`` (no value to average, one value has no spread) as None: JSON has no nan."""
    return {k: None if isinstance(v, float) and v != v else v for k, v in values.items()}


def _sizes(truth: GroundTruth) -> set[tuple[int, int]]:
    h, w = truth.frame_size
    e = eye_box(h, w, "left", truth.layout)
    return {(h, w), (e.height, e.width)}


def overlay_lines(row: dict) -> list[tuple[str, tuple[int, int, int]]]:
    """The panel's ground-truth lines for one frame's :data:`COLUMNS` (none: not annotated)."""
    if row.get("gt_class") is None:
        return []
    ok = row["gate_correct"]
    lines = [(f"GT {row['gt_class'].replace('_', ' ')}: gate {'RIGHT' if ok else 'WRONG'}",
              (120, 255, 120) if ok else (255, 90, 90))]
    if row["gt_iou"] is not None:
        lines.append((f"IoU {row['gt_iou']:.2f}  Dice {row['gt_dice']:.2f}", (230, 230, 230)))
    return lines
