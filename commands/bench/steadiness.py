"""Is the overlay steady? The same video replayed with and without the steady overlay
(:mod:`nerveseg.realtime.steady`), every frame, scored against its ground truth.

Per variant: label changes per second (flicker of the label), the IoU between the masks
of consecutive frames that both show one (flicker of the mask), the displayed label's
accuracy against the truth, and the mean mask IoU against the truth on frames that have
a nerve. Replay (``BLOCK``) makes every figure reproducible: the same frames in the same
order.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from nerveseg.realtime.config import PipelineConfig
from nerveseg.realtime.frames import Rendered
from nerveseg.realtime.graph import Operator
from nerveseg.realtime.pipeline import Engines, NervePipeline
from nerveseg.realtime.steady import PRESET, SteadyConfig
from nerveseg.training.data import read_mask
from nerveseg.training.metrics import iou_dice

from ..validation.groundtruth import VideoTruth
from .memory_source import MemorySource, decode_frames

STEADY = PRESET  # the variant measured against "off"


@dataclass(eq=False)  # operators are graph nodes, hashed by identity
class _Collector(Operator):
    truth: VideoTruth
    name: str = "steadiness"
    labels: list[str] = field(default_factory=list)
    correct: list[bool] = field(default_factory=list)
    iou_truth: list[float] = field(default_factory=list)
    iou_consecutive: list[float] = field(default_factory=list)
    _previous: np.ndarray | None = None

    def process(self, r: Rendered) -> None:
        g = r.seg.gate
        self.labels.append(g.label)
        expected = self.truth.labels.get(r.index)
        if expected is not None:
            self.correct.append(g.label == expected)
        mask = r.seg.mask
        if mask is not None and self._previous is not None and mask.shape == self._previous.shape:
            self.iou_consecutive.append(float(iou_dice(mask[None], self._previous[None])[0][0]))
        self._previous = mask
        path = self.truth.mask_path(r.index)
        if path.is_file():
            truth = g.box.slice(read_mask(path)) > 0
            if truth.any() and truth.shape == g.view.shape[:2]:
                pred = mask if mask is not None else np.zeros(truth.shape, bool)
                self.iou_truth.append(float(iou_dice(pred[None], truth[None])[0][0]))
        return None

    def report(self, fps: float) -> dict:
        changes = sum(a != b for a, b in zip(self.labels, self.labels[1:]))
        seconds = max(len(self.labels), 1) / fps
        mean = lambda values: round(float(np.mean(values)), 4) if values else None  # noqa: E731
        return {"frames": len(self.labels), "label_changes_per_s": round(changes / seconds, 3),
                "consecutive_mask_iou": mean(self.iou_consecutive), "label_accuracy": mean(self.correct),
                "nerve_iou": mean(self.iou_truth)}


def perturbed(frames: list[np.ndarray], strength: float, seed: int = 0) -> list[np.ndarray]:
    """``frames`` as a flickering camera would give them: per frame an exposure gain
    (σ = 0.35 × ``strength``), sensor noise (σ = 20 × ``strength`` grey levels) and, on about
    ``0.3 × strength`` of frames, a defocus blur. Geometry is untouched: the ground truth
    still holds. Seeded: both variants see the same frames."""
    rng = np.random.default_rng(seed)
    out = []
    for image in frames:
        gain = max(0.3, 1.0 + strength * rng.normal(0.0, 0.35))
        noisy = image.astype(np.float32) * gain + rng.normal(0.0, 20.0 * strength, image.shape).astype(np.float32)
        if rng.random() < 0.3 * strength:
            noisy = cv2.GaussianBlur(noisy, (0, 0), 1.0 + 3.0 * strength)
        out.append(np.clip(noisy, 0, 255).astype(np.uint8))
    return out


def steadiness(config: PipelineConfig, engines: Engines, video: Path, truth: VideoTruth,
               variants: dict[str, SteadyConfig] | None = None, perturb: float = 0.0) -> dict:
    """``{variant: figures}`` for each steady configuration (default: off and :data:`STEADY`).
    ``perturb`` > 0: the video's frames made to flicker first (:func:`perturbed`), the
    same frames for every variant."""
    variants = variants or {"off": SteadyConfig(), "steady": STEADY}
    frames = None
    if perturb > 0:
        decoded, fps = decode_frames(video)
        frames = perturbed(decoded, perturb)
    results = {}
    for name, steady in variants.items():
        source = dataclasses.replace(config.source, spec=str(video), pace=False, live=False)
        run = dataclasses.replace(config, source=source,
                                  steady=steady, record=dataclasses.replace(config.record, path=None),
                                  log=dataclasses.replace(config.log, csv=None, summary=None))
        collector = _Collector(truth)
        source = MemorySource(frames, fps, name=f"{video.name} (perturbed {perturb:g})", live=False) \
            if frames is not None else None
        pipeline = NervePipeline(run, source=source, engines=engines, taps=[collector])
        pipeline.run()
        results[name] = {"config": dataclasses.asdict(steady), "perturb": perturb,
                         **collector.report(pipeline.source.fps)}
    return results
