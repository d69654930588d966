"""The pipeline's processing operators: source, gate, segment (the overlay: :mod:`.overlay_op`)."""

from __future__ import annotations

import dataclasses
import logging
import math
import threading
from typing import Callable

import cv2
import numpy as np

from nerveseg.engines.base import Engine
from nerveseg.engines.metadata import EngineError

from .frames import Frame, GateResult, Segmentation, now_ns
from .graph import Operator, SourceOperator
from .instances import check_instance_engine, find_instances
from nerveseg.engines.preprocess import Box, PreprocessConfig, Preprocessor
from .steady import Hysteresis, MaskSmoother, SteadyConfig
from .roi import Roi, check_roi, region_raster, restrict, roi_mask
from .sources import Source
from .sources.base import reduce

log = logging.getLogger(__name__)


# The smallest frame the stages can work on: preprocessing halves a stereo frame and
# crops its border before the engines' resize; a 2×2 frame leaves nothing (OpenCV's
# resize and text drawing fail on it). Smaller frames are skipped and counted.
MIN_FRAME_SIDE = 16


def too_small(shape: tuple[int, ...]) -> bool:
    """True for an ``(H, W)`` below :data:`MIN_FRAME_SIDE` on either side."""
    return min(shape[:2]) < MIN_FRAME_SIDE


def frame_size_problem(height: int, width: int) -> str:
    return f"frames of {width}×{height} px are too small (at least {MIN_FRAME_SIDE}×{MIN_FRAME_SIDE} needed)"


class SourceOp(SourceOperator):
    """Passes the source's frames on; may be paused and resumed from another thread.

    Paused, a file waits where it is (the next frame is the one after the last shown);
    a camera cannot wait, so its frames are read and thrown away, and on resume the
    picture is current, not a backlog. ``last_frame_ns`` is when the source last
    delivered anything, paused or not: the watchdog reads it."""

    name = "source"

    def __init__(self, source: Source, max_height: int = 0):
        self.source = source
        self.max_height = max_height  # source.max_height: taller frames are reduced here
        self._reduced_from: tuple[int, int] | None = None  # the first frame reduced here: (H, W)
        # a source that reduces its frames itself (a file, in its reader thread) is asked to
        self.at_source = bool(max_height) and source.reduce_to(max_height)
        self._running = threading.Event()
        self._running.set()
        self.last_frame_ns: int | None = None
        self.received = 0

    @property
    def reduced_from(self) -> tuple[int, int] | None:
        """The size of the first frame reduced, here or by the source; None: none was."""
        return self._reduced_from or getattr(self.source, "reduced_from", None)

    @property
    def paused(self) -> bool:
        return not self._running.is_set()

    def _skip_small(self, frame) -> None:
        """A frame too small for the stages is damage in the input, counted like an
        undecodable one and told once."""
        self.source.skipped += 1
        self.source.too_small = getattr(self.source, "too_small", 0) + 1
        if self.source.too_small == 1:
            h, w = frame.image.shape[:2]
            log.warning("%s: %s; skipped", self.source.name, frame_size_problem(h, w))

    def _reduce(self, frame: Frame) -> Frame:
        """``frame`` at ``max_height`` rows (:func:`~.sources.base.reduce`). The time it
        takes is the source's: it is added to the ``decode`` stamp (or is one, for a source
        that has none)."""
        t0 = now_ns()
        image = reduce(frame.image, self.max_height)
        t1 = now_ns()
        if self._reduced_from is None:
            self._reduced_from = frame.image.shape[:2]
            log.info("%s: %dx%d frames reduced to %dx%d (source.max_height %d)", self.source.name,
                     frame.image.shape[1], frame.image.shape[0], image.shape[1], image.shape[0], self.max_height)
        # the decode stamp grows by the reduction's time (a file's frame may wait for its
        # pace between the two: the stamp is the work, not that wait)
        decode = [s for s in frame.stamps if s[0] == "decode"]
        start, end = (decode[-1][1], decode[-1][2]) if decode else (t0, t0)
        stamps = tuple(s for s in frame.stamps if s[0] != "decode") + (("decode", start, end + t1 - t0),)
        return dataclasses.replace(frame, image=image, stamps=stamps)

    def pause(self) -> None:
        self._running.clear()

    def resume(self) -> None:
        self._running.set()

    def items(self, stop: threading.Event):
        for frame in self.source.frames(stop):
            self.last_frame_ns = now_ns()
            self.received += 1
            if too_small(frame.image.shape[:2]):
                self._skip_small(frame)
                continue
            if self.source.live:
                if self._running.is_set():
                    yield self._sized(frame)
                continue  # paused: read and let go, never reduced
            while not self._running.wait(0.05):
                if stop.is_set():
                    return
            yield self._sized(frame)

    def _sized(self, frame: Frame) -> Frame:
        """``frame``, reduced when it is taller than ``max_height``."""
        return self._reduce(frame) if self.max_height and frame.image.shape[0] > self.max_height else frame


def one_line(exc: BaseException, limit: int = 200) -> str:
    """An error as one short line, for the CSV status column and the on-screen warning."""
    return " ".join(str(exc).split())[:limit] or type(exc).__name__


def _check_output(engine: Engine, name: str, fits: Callable[[tuple], bool], expected: str) -> None:
    """Run ``engine`` once on a blank frame and refuse it, at start-up, unless output
    ``name`` fits: a wrong output shape would otherwise fail (or mislabel) every frame."""
    h, w = engine.input_size
    try:
        outputs = engine.run(np.zeros((1, h, w, 3), np.uint8))
    except Exception as exc:  # any backend's failure here means the file is unusable
        raise EngineError(f"{engine.provenance.path}: fails a test run ({one_line(exc)})") from None
    if name not in outputs:
        raise EngineError(f"{engine.provenance.path}: has no output {name!r} (it has {sorted(outputs)})")
    shape = tuple(np.shape(outputs[name]))
    if not fits(shape):
        raise EngineError(f"{engine.provenance.path}: output {name!r} has shape {shape}, expected {expected}")


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max()
    e = np.exp(z)
    return e / e.sum()


class GateOp(Operator):
    """Preprocess + classifier gate. Frames whose top class is ``nerve_class`` with at
    least ``min_confidence`` are marked for segmentation. A ``gate_segment`` engine
    answers both in one forward pass: its mask rides on the result of nerve frames."""

    name = "gate"

    def __init__(self, engine: Engine, preprocess: PreprocessConfig, nerve_class: str = "nerve",
                 min_confidence: float = 0.5, steady: SteadyConfig = SteadyConfig(), every: int = 1):
        if engine.meta.task not in ("classify", "gate_segment"):
            raise EngineError(f"{engine.provenance.path}: the gate needs a 'classify' (or 'gate_segment') "
                              f"engine, this is a {engine.meta.task!r} engine")
        if nerve_class not in engine.classes:
            raise EngineError(f"{engine.provenance.path}: gate classes {list(engine.classes)} "
                              f"lack {nerve_class!r}")
        _check_output(engine, "logits", lambda shape: shape == (1, len(engine.classes)),
                      f"(1, {len(engine.classes)}): one logit per class")
        self.engine = engine
        self.preprocess = Preprocessor(preprocess, engine.input_size)
        self.nerve_index = engine.classes.index(nerve_class)
        self.min_confidence = min_confidence
        self.segments = engine.meta.task == "gate_segment"
        self.steady = steady
        self._hysteresis = Hysteresis(steady)
        self._shown: int | None = None  # the class shown for the previous frame
        self._connection = 0  # the source's reconnect count at the last frame
        if every > 1 and self.segments:
            raise EngineError(f"{engine.provenance.path}: gate.every {every} needs a separate segmenter: this "
                              "gate_segment engine's one forward is also the mask, which cannot be held")
        self.every = every
        self._held: tuple | None = None  # (verdict, box) of the last frame the gate ran on
        self._since = 0  # frames since then that held it

    @property
    def eye(self) -> str:
        return self.preprocess.config.eye

    @eye.setter
    def eye(self, value: str) -> None:
        """Switch eye while running: a fresh preprocessor (its own geometry and buffer),
        swapped in whole, so a frame in progress finishes with the old one."""
        config = dataclasses.replace(self.preprocess.config, eye=value)  # checks the value
        self.preprocess = Preprocessor(config, self.engine.input_size)
        self._held = None  # another eye: the gate looks again

    def process(self, frame: Frame) -> GateResult:
        t0 = now_ns()
        if frame.connection != self._connection:  # a live source came back: maybe another picture
            self._connection = frame.connection
            self.preprocess.redetect()
            self._held = None
        view, engine_input, box = self.preprocess(frame.image)
        t1 = now_ns()
        held = self._hold(box)
        if held is not None:  # gate.every: this frame takes the last gated frame's verdict
            label, confidence, probs, is_nerve, score, distance, unfamiliar = held
            return GateResult(frame, view, box, engine_input.copy(), label, confidence, probs, is_nerve,
                              frame.stamps + (("preprocess", t0, t1),), dropped=self._dropped(), energy=score,
                              view_distance=distance, unfamiliar=unfamiliar, held=True)
        outputs = self.engine.run(engine_input)
        logits = outputs["logits"][0].astype(np.float32)  # calibrated by the engine (ℓ/T)
        probs = softmax(logits)
        k = int(probs.argmax())
        # The unfamiliar-view check is part of the gate's time (under a millisecond).
        score, distance, unfamiliar = self.engine.calibration.judge(logits, engine_input[0])
        t2 = now_ns()
        is_nerve, k = self._decide(probs, k)
        is_nerve = is_nerve and not unfamiliar  # an unfamiliar view gets no mask
        # Copied: it crosses to the segmenter's thread, and a backend may reuse its buffers.
        mask_logits = outputs["mask_logits"][0, 0].copy() if self.segments and is_nerve else None
        if self.every > 1:
            self._held, self._since = ((self.engine.classes[k], float(probs[k]), probs, is_nerve, score, distance,
                                        unfamiliar), box), 0
        return GateResult(frame, view, box, engine_input.copy(), self.engine.classes[k], float(probs[k]),
                          probs, is_nerve, frame.stamps + (("preprocess", t0, t1), ("gate", t1, t2)),
                          dropped=self._dropped(), mask_logits=mask_logits, energy=score,
                          view_distance=distance, unfamiliar=unfamiliar)

    def _hold(self, box: Box) -> tuple | None:
        """The verdict this frame holds (``gate.every``), or None when the gate must run: on
        every Nth frame, and whenever the crop changed (another picture, another eye)."""
        if self._held is None or self._since >= self.every - 1 or self._held[1] != box:
            return None
        self._since += 1
        return self._held[0]

    def set_steady(self, steady: SteadyConfig) -> None:
        """Switch the hysteresis while running: it starts afresh from the next frame."""
        self.steady, self._hysteresis, self._shown = steady, Hysteresis(steady), None

    def _decide(self, probs: np.ndarray, k: int) -> tuple[bool, int]:
        """``(is_nerve, class shown)``: the top class with ``min_confidence``, or with
        hysteresis (:mod:`.steady`) the nerve band. A frame held out of "nerve" while its
        top class is nerve keeps the label shown before it (else its best other class):
        the label changes when the decision does, not one frame early."""
        if self.steady.off:
            return bool(k == self.nerve_index and probs[k] >= self.min_confidence), k
        is_nerve = self._hysteresis.update(float(probs[self.nerve_index]))
        if is_nerve:
            k = self.nerve_index
        elif k == self.nerve_index:
            if self._shown is not None and self._shown != self.nerve_index:
                k = self._shown
            else:
                others = probs.copy()
                others[self.nerve_index] = -1.0
                k = int(others.argmax())
        self._shown = k
        return is_nerve, k

    def _dropped(self) -> int:
        return self.inbox.dropped if self.inbox is not None else 0

    def on_error(self, frame: Frame, exc: Exception) -> GateResult:
        """The failed frame is still shown (raw, marked), so the picture never freezes:
        cut as the frames before it were when it has their size, else whole."""
        h, w = frame.image.shape[:2]
        box = self.preprocess.box
        if box is None or box.x1 > w or box.y1 > h:
            box = Box(0, 0, w, h)
        t = now_ns()
        return GateResult(frame, box.slice(frame.image), box, np.empty((1, 0, 0, 3), np.uint8), "error",
                          0.0, np.zeros(len(self.engine.classes), np.float32), False,
                          frame.stamps + (("gate", t, t),), dropped=self._dropped(),
                          error=f"gate: {one_line(exc)}")


def segmenter_input(engine: Engine, view: np.ndarray, engine_input: np.ndarray) -> np.ndarray:
    """The segmenter's ``(1, h, w, 3) uint8`` input: the gate's ``engine_input`` when their
    sizes agree, else ``view`` resized to the segmenter's own size (a ResNet gate at 224 px
    beside a U-Net at 512 px)."""
    h, w = engine.input_size
    if engine_input.shape[1:3] == (h, w):
        return engine_input
    return cv2.resize(view, (w, h), interpolation=cv2.INTER_AREA)[None]


def _check_segmenter(engine: Engine, nerve_class: str) -> None:
    if engine.meta.task == "gate_segment":  # the gate's classes; its mask channel is the nerve class
        if engine.meta.extra.get("mask_class", nerve_class) != nerve_class:
            raise EngineError(f"{engine.provenance.path}: its mask is {engine.meta.extra['mask_class']!r}, "
                              f"not {nerve_class!r}")
        return
    if engine.meta.task not in ("segment", "region_segment"):
        raise EngineError(f"{engine.provenance.path}: the segmenter needs a 'segment' or 'instance' engine "
                          f"(or a 'region_segment' one), this is a {engine.meta.task!r} engine")
    # One mask channel is the last class's probability: it must be the nerve.
    if len(engine.classes) != 2 or engine.classes[-1] != nerve_class:
        raise EngineError(f"{engine.provenance.path}: segmenter classes {list(engine.classes)} are not "
                          f"['background', {nerve_class!r}]: its mask would not be {nerve_class}")
    _check_output(engine, "mask_logits", lambda shape: len(shape) == 4 and shape[:2] == (1, 1),
                  "(1, 1, H, W): one mask channel")


class SegmentOp(Operator):
    """Runs the segmenter on frames the gate called nerve and maps the mask back to view
    pixels. ``threshold`` and ``roi`` (a :class:`Box` or :class:`Polygon` in view
    pixels, or None for the whole field) may be changed while running (from the UI)."""

    name = "segment"

    def __init__(self, engine: Engine, threshold: float = 0.5, nerve_class: str = "nerve",
                 smoothing: float = 1.0):
        # An instance engine (Mask R-CNN) may stand in: then ``threshold`` is the lowest
        # instance score shown and each instance is kept (realtime/instances.py).
        self.instance = engine.meta.task == "instance"
        if self.instance:
            check_instance_engine(engine)
        else:
            _check_segmenter(engine, nerve_class)
        self.engine = engine
        self.threshold = threshold
        self.roi = None
        self._inside: tuple | None = None  # (roi, shape, mask): the last region's raster
        # A region_segment engine gets the region as its second input (None: the whole field).
        self._region_input = engine.meta.task == "region_segment"
        self._raster: tuple | None = None  # (roi, view shape, (1, h, w, 1) uint8): its last input
        self._smoother = MaskSmoother(smoothing)  # the newest mask's weight (1: none)
        self._last_box = None

    @property
    def roi(self) -> Roi | None:
        return self._roi

    @roi.setter
    def roi(self, value: Roi | None) -> None:
        self._roi = check_roi(value)

    def _restrict(self, mask: np.ndarray, roi: Roi) -> np.ndarray:
        if isinstance(roi, Box):
            return restrict(mask, roi)
        cached = self._inside
        if cached is None or cached[0] != roi or cached[1] != mask.shape:
            cached = self._inside = (roi, mask.shape, roi_mask(roi, mask.shape))
        return restrict(mask, roi, cached[2])

    @property
    def threshold(self) -> float:
        return self._threshold

    @threshold.setter
    def threshold(self, value: float) -> None:
        if not 0.0 < value < 1.0:
            raise ValueError(f"segmentation threshold must be within (0, 1), not {value}")
        # Compare logits, not probabilities: no sigmoid over the whole map per frame.
        self._logit = math.log(value / (1.0 - value))
        self._threshold = value

    def _region(self, roi: Roi | None, view_shape: tuple) -> np.ndarray | None:
        if roi is None or not self._region_input:
            return None
        if self._raster is None or self._raster[:2] != (roi, view_shape[:2]):
            self._raster = (roi, view_shape[:2], region_raster(roi, view_shape, self.engine.input_size))
        return self._raster[2]

    def _engine_input(self, g: GateResult) -> np.ndarray:
        return segmenter_input(self.engine, g.view, g.engine_input)

    def process(self, g: GateResult) -> Segmentation:
        t0 = now_ns()
        roi = self.roi
        if not g.is_nerve or g.box != self._last_box:  # the average never crosses pictures
            self._smoother.reset()
        self._last_box = g.box
        if not g.is_nerve:
            return Segmentation(g, None, g.stamps + (("segment", t0, t0),), roi=roi)
        if self.instance:
            restrict = (lambda mask: self._restrict(mask, roi)) if roi is not None else None
            found = find_instances(self.engine, self._engine_input(g), g.view.shape[:2], self.threshold, restrict)
            mask = found.masks.any(axis=0) if len(found) else np.zeros(g.view.shape[:2], bool)
            return Segmentation(g, mask, g.stamps + (("segment", t0, now_ns()),), roi=roi, instances=found)
        logits = g.mask_logits if g.mask_logits is not None else self._run(g, roi)
        vh, vw = g.view.shape[:2]
        if self._smoother.alpha < 1.0:  # averaged as probabilities, at engine resolution
            prob = self._smoother.update(1.0 / (1.0 + np.exp(-logits.astype(np.float32))))
            mask = cv2.resize(prob, (vw, vh), interpolation=cv2.INTER_LINEAR) > self._threshold
        else:
            mask = cv2.resize(logits, (vw, vh), interpolation=cv2.INTER_LINEAR) > self._logit
        if roi is not None:
            mask = self._restrict(mask, roi)
        return Segmentation(g, mask, g.stamps + (("segment", t0, now_ns()),), roi=roi)

    def set_smoothing(self, alpha: float) -> None:
        """The newest mask's weight (1: no average), from the next frame on."""
        self._smoother = MaskSmoother(alpha)

    def _run(self, g: GateResult, roi: Roi | None) -> np.ndarray:
        """The segmenter's ``(H, W)`` mask logits for ``g`` (a gate_segment gate brought them already)."""
        region, batch = self._region(roi, g.view.shape), self._engine_input(g)
        outputs = self.engine.run(batch, region=region)
        return outputs["mask_logits"][0, 0]

    def on_error(self, g: GateResult, exc: Exception) -> Segmentation:
        t = now_ns()
        return Segmentation(g, None, g.stamps + (("segment", t, t),), roi=self.roi,
                            error=f"segment: {one_line(exc)}")
