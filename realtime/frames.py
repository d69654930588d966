"""The immutable records that travel along the pipeline's edges.

``Frame`` → ``GateResult`` → ``Segmentation`` → ``Rendered``. Each record holds the one
before it and adds its stage's time stamp ``(stage, start_ns, end_ns)`` from
``time.perf_counter_ns()``; the on-screen numbers, the CSV and the bench report all read
these stamps. A frame the gate does not call nerve still becomes a ``Segmentation``
(with ``mask=None``), so the renderer and sinks have one code path.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from nerveseg.engines.preprocess import Box

Stamp = tuple[str, int, int]


def now_ns() -> int:
    return time.perf_counter_ns()


def stage_ms(stamps: tuple[Stamp, ...]) -> dict[str, float]:
    """Milliseconds spent in each stage (the last stamp wins if a stage repeats)."""
    return {name: (end - start) / 1e6 for name, start, end in stamps}


@dataclass(frozen=True, slots=True, eq=False)
class Frame:
    """A decoded frame. ``image``: ``(H, W, 3) uint8 RGB``, owned by this record (the
    source allocates a new array per frame). ``captured_ns``: when the frame became
    available to the pipeline. ``pts``: source time in seconds (None for cameras).
    ``connection``: how many times a live source had reconnected when it took this frame
    (a new connection may bring another picture: the crop is found again). ``index``
    counts the frames the source delivered; ``position`` is the frame's place in its file
    (0 = the file's first frame, whether or not it decoded), where the source knows it: a
    frame after an undecodable one keeps its own number, so annotations stay aligned."""

    index: int
    captured_ns: int
    image: np.ndarray
    pts: float | None = None
    stamps: tuple[Stamp, ...] = ()
    connection: int = 0
    position: int | None = None

    @property
    def number(self) -> int:
        """The frame's number in its recording: ``position`` where known, else ``index``."""
        return self.index if self.position is None else self.position


@dataclass(frozen=True, slots=True, eq=False)
class GateResult:
    """The gate's verdict. ``view``: ``(h, w, 3) uint8`` slice of ``frame.image`` inside
    ``box`` (what is displayed); ``engine_input``: ``(1, H, W, 3) uint8`` copy of the
    resized view, owned by this record. ``probs``: ``(C,) float32`` softmax.
    ``dropped``: frames dropped (by the live policy) before this one, cumulative.
    ``mask_logits``: ``(H, W) float32`` at engine resolution when the gate is a
    ``gate_segment`` engine and called the frame nerve (the segmenter then runs nothing).
    ``energy`` and ``view_distance``: the unfamiliar-view scores (engines/calibration.py,
    engines/familiarity.py); ``unfamiliar``: one is above the engine's threshold, so no
    label is shown and nothing is segmented. ``held``: the gate did not run on this frame
    (``gate.every``); the verdict is the last gated frame's."""

    frame: Frame
    view: np.ndarray
    box: Box
    engine_input: np.ndarray
    label: str
    confidence: float
    probs: np.ndarray
    is_nerve: bool
    stamps: tuple[Stamp, ...]
    dropped: int = 0
    error: str | None = None
    mask_logits: np.ndarray | None = None
    energy: float | None = None
    view_distance: float | None = None
    unfamiliar: bool = False
    held: bool = False

    @property
    def shown_label(self) -> str:
        """The label the surgeon is shown: none (``unfamiliar``) on an unfamiliar view."""
        return "unfamiliar" if self.unfamiliar else self.label


@dataclass(frozen=True, slots=True, eq=False)
class Instances:
    """What an ``instance`` engine found in one view, in view pixels, best score first.
    ``boxes``: ``(K, 4) float32`` x0, y0, x1, y1; ``labels``: ``(K,) int64`` indices into
    ``classes`` (0 is background, never found); ``scores``: ``(K,) float32``; ``masks``:
    ``(K, h, w) bool``. The arrays belong to this record and are made read-only."""

    boxes: np.ndarray
    labels: np.ndarray
    scores: np.ndarray
    masks: np.ndarray
    classes: tuple[str, ...]

    def __post_init__(self) -> None:
        for array in (self.boxes, self.labels, self.scores, self.masks):
            array.flags.writeable = False

    def __len__(self) -> int:
        return len(self.scores)

    @property
    def names(self) -> list[str]:
        return [self.classes[k] for k in self.labels]


@dataclass(frozen=True, slots=True, eq=False)
class Segmentation:
    """``mask``: ``(h, w) bool`` at view resolution, or None when the segmenter did not
    run (gate said not nerve, or it failed: see ``error``). ``roi``: the region the
    segmentation was restricted to, in view pixels, if any. ``instances``: set when the
    segmenter is an ``instance`` engine; ``mask`` is then the union of their masks."""

    gate: GateResult
    mask: np.ndarray | None
    stamps: tuple[Stamp, ...]
    roi: Box | None = None
    error: str | None = None
    instances: Instances | None = None

    @property
    def frame(self) -> Frame:
        return self.gate.frame

    @property
    def mask_fraction(self) -> float:
        return float(self.mask.mean()) if self.mask is not None else 0.0


@dataclass(frozen=True, slots=True, eq=False)
class Rendered:
    """The annotated view. ``image``: ``(h, w, 3) uint8 RGB`` owned by this record.
    ``panel``: the box of the text panel (the only pixels besides the mask tint that
    differ from ``seg.gate.view``). ``marks``: with instances, the boxes of what was drawn
    beside their tint (box outlines, "class 0.93" labels): pixels that may differ too."""

    seg: Segmentation
    image: np.ndarray
    panel: Box | None
    stamps: tuple[Stamp, ...]
    fps: float = 0.0
    extra: dict = field(default_factory=dict)
    marks: tuple[Box, ...] = ()
    #: live passthrough (:mod:`.layer`): ``image`` is the raw view and this the overlay layer
    #: in force when the frame passed (a ``Layer``; None: none yet, or per-frame drawing)
    layer: object | None = None

    @property
    def frame(self) -> Frame:
        return self.seg.gate.frame

    @property
    def index(self) -> int:
        return self.seg.gate.frame.index

    @property
    def errors(self) -> list[str]:
        return [e for e in (self.seg.gate.error, self.seg.error) if e]
