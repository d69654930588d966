"""Pixel-level image degradation: the overlay may change the mask's pixels and the text
panel's box, nothing else.

Two steps, so that no measurement trusts the pipeline it measures:

1. :class:`DisplayedCheck`, on the validation tap, compares every displayed frame
   (``Rendered.image``, the array the view wraps without copying) with the frame's own
   raw view, and keeps what step 2 needs: the frame's index and crop, the overlay's
   pixels (bit-packed) and a digest of the displayed pixels.
2. :func:`check_recordings`, after the run, decodes the input again, independently, and
   both recordings of the same run: the lossless one (ffv1) must equal the input outside
   the overlay and equal the displayed frame bit for bit (digest); the configured codec
   is compared with the lossless one over the whole frame, which is its codec loss.
"""

from __future__ import annotations

import hashlib
import math
import threading
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from nerveseg.realtime.frames import Rendered
from nerveseg.engines.preprocess import Box
from nerveseg.realtime.sources import Source
from nerveseg.realtime.sources.base import reduce
from nerveseg.realtime.stats import describe


def overlay_region(r: Rendered) -> np.ndarray:
    """``(h, w) bool``: the pixels the overlay may change (mask ∪ panel box)."""
    allowed = np.zeros(r.image.shape[:2], bool) if r.seg.mask is None else r.seg.mask.copy()
    if r.panel is not None:
        r.panel.slice(allowed)[:] = True
    return allowed


def outside_difference(image: np.ndarray, raw: np.ndarray, allowed: np.ndarray,
                       tolerance: int = 0) -> tuple[int, int]:
    """``(pixels, max)``: pixels outside ``allowed`` whose largest channel difference exceeds
    ``tolerance``, and the largest difference there. ``image``/``raw``: ``(h, w, 3) uint8``."""
    if image.shape != raw.shape:
        raise ValueError(f"frame is {image.shape[1]}x{image.shape[0]}, the input view {raw.shape[1]}x{raw.shape[0]}")
    diff = cv2.absdiff(image, raw).max(axis=2)
    diff[allowed] = 0
    return int(np.count_nonzero(diff > tolerance)), int(diff.max(initial=0))


def digest(image: np.ndarray) -> str:
    return hashlib.sha1(np.ascontiguousarray(image).data).hexdigest()


@dataclass(frozen=True)
class FrameRecord:
    """One displayed frame, in display (= recording) order."""

    index: int
    box: Box
    region: np.ndarray  # np.packbits of the (h, w) overlay region
    changed: int
    worst: int
    overlay_pixels: int
    digest: str

    def allowed(self) -> np.ndarray:
        h, w = self.box.height, self.box.width
        return np.unpackbits(self.region, count=h * w).reshape(h, w).astype(bool)


@dataclass
class DisplayedCheck:
    tolerance: int = 0
    frames: list[FrameRecord] = field(default_factory=list)
    example: dict | None = None

    def __call__(self, r: Rendered) -> None:
        allowed = overlay_region(r)
        changed, worst = outside_difference(r.image, r.seg.gate.view, allowed, self.tolerance)
        self.frames.append(FrameRecord(r.index, r.seg.gate.box, np.packbits(allowed), changed, worst,
                                       int(allowed.sum()), digest(r.image)))
        self._keep_example(r, allowed, changed)

    def _keep_example(self, r: Rendered, allowed: np.ndarray, changed: int) -> None:
        """The report's example frame: the first that broke the rule, else the first with a
        mask, else the first."""
        old = self.example
        better = (old is None or changed > 0 and not old["changed"]
                  or not old["changed"] and not old["masked"] and r.seg.mask is not None and r.seg.mask.any())
        if better:
            self.example = {"index": r.index, "raw": r.seg.gate.view.copy(), "displayed": r.image.copy(),
                            "allowed": allowed, "changed": changed,
                            "masked": r.seg.mask is not None and bool(r.seg.mask.any())}

    def report(self) -> dict:
        f = self.frames
        return {"frames": len(f), "tolerance": self.tolerance,
                "frames_changed": sum(1 for r in f if r.changed), "pixels_changed": sum(r.changed for r in f),
                "max_difference": max((r.worst for r in f), default=0),
                "overlay_fraction": describe([r.overlay_pixels / (r.box.width * r.box.height) for r in f]),
                "per_frame": {"frame": [r.index for r in f], "changed": [r.changed for r in f],
                              "max": [r.worst for r in f]}}


def codec_loss(coded: np.ndarray, lossless: np.ndarray) -> tuple[float | None, float, int, float]:
    """``(PSNR in dB, or None when identical; mean |Δ|; max |Δ|; fraction of pixels changed)``."""
    diff = cv2.absdiff(coded, lossless)
    mse = float(np.mean(diff.astype(np.float32) ** 2))
    psnr = None if mse == 0 else 10 * math.log10(255.0 ** 2 / mse)
    changed = np.count_nonzero(diff.max(axis=2)) / (diff.shape[0] * diff.shape[1])
    return psnr, float(diff.mean()), int(diff.max(initial=0)), float(changed)


def as_recorded(view: np.ndarray, allowed: np.ndarray, shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """The input view and overlay region as the recorder stored them: a recording keeps its
    first frame's size and resizes later frames to it (``INTER_AREA``, see
    :class:`~nerveseg.realtime.sinks.AviRecorder`), e.g. when the automatic border crop
    changed the view mid-video. The region grows by the resampling footprint, where
    overlay pixels blend into their neighbours. Same size: both returned as they are."""
    if view.shape == tuple(shape):
        return view, allowed
    h, w = shape[:2]
    resized = cv2.resize(view, (w, h), interpolation=cv2.INTER_AREA)
    region = cv2.resize(allowed.astype(np.uint8), (w, h), interpolation=cv2.INTER_NEAREST)
    reach = 2 * int(np.ceil(max(h / view.shape[0], view.shape[0] / h))) + 1
    region = cv2.dilate(region, np.ones((reach, reach), np.uint8)) > 0
    return resized, region


def _decoded(path: Path):
    import av

    from nerveseg.realtime.sources.rgb import RgbConverter

    rgb = RgbConverter()  # one converter for the file, not a thread pool per frame
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            yield rgb(frame)


def check_recordings(source: Source, frames: list[FrameRecord], lossless: Path, recorded: Path,
                     codec: str, tolerance: int = 0, progress: bool = True,
                     max_height: int = 0) -> tuple[dict, dict | None]:
    """Compare both recordings with a fresh decode of the input (reduced as the run
    reduced it: ``source.max_height``); returns the report and an example
    ``{"lossless", "recorded"}`` pair for the figures."""
    stop = threading.Event()
    # reduced by the source where it reduces its own frames (a file: as the run's did)
    at_source = bool(max_height) and source.reduce_to(max_height)
    inputs, lossless_frames, coded_frames = source.frames(stop), _decoded(lossless), _decoded(recorded)
    rows, example, problems = [], None, []
    try:
        for rec in tqdm(frames, desc="recordings", unit="frame", disable=not progress):
            raw = next((f for f in inputs if f.index >= rec.index), None)
            clean, coded = next(lossless_frames, None), next(coded_frames, None)
            if raw is None or raw.index != rec.index:
                problems.append(f"{source.name}: frame {rec.index} not found on decoding the input again")
                break
            if clean is None or coded is None:
                problems.append(f"{lossless if clean is None else recorded}: ends before frame {rec.index}")
                break
            image = raw.image if at_source else reduce(raw.image, max_height)
            raw_view, allowed = as_recorded(rec.box.slice(image), rec.allowed(), clean.shape)
            rows.append((rec.index, *outside_difference(clean, raw_view, allowed, tolerance),
                         digest(clean) == rec.digest, *outside_difference(coded, raw_view, allowed, tolerance),
                         *codec_loss(coded, clean)))
            if example is None and allowed.any():
                example = {"index": rec.index, "lossless": clean, "recorded": coded}
    finally:
        stop.set()
        inputs.close()
    return {**_recordings_report(rows, len(frames), codec, tolerance), "problems": problems}, example


def _recordings_report(rows: list[tuple], expected: int, codec: str, tolerance: int) -> dict:
    cols = list(zip(*rows)) if rows else [[] for _ in range(10)]
    index, l_changed, l_max, same, c_changed, c_max, psnr, mean_abs, loss_max, fraction = cols
    finite = [p for p in psnr if p is not None]
    return {
        "frames_expected": expected, "frames_compared": len(rows), "tolerance": tolerance,
        "lossless": {"codec": "ffv1", "frames_changed": sum(1 for c in l_changed if c),
                     "pixels_changed": int(sum(l_changed)), "max_difference": max(l_max, default=0),
                     "identical_to_displayed": int(sum(same))},
        "recorded": {"codec": codec, "outside_overlay_vs_input": {
            "frames_changed": sum(1 for c in c_changed if c), "pixels_changed": int(sum(c_changed)),
            "max_difference": max(c_max, default=0)}},
        "codec_loss": {"codec": codec, "against": "ffv1 recording of the same run",
                       "identical_frames": len(psnr) - len(finite), "psnr_db": describe(finite),
                       "psnr_min_db": round(min(finite), 3) if finite else None,
                       "mean_abs_difference": describe(mean_abs), "max_difference": max(loss_max, default=0),
                       "fraction_changed": describe(fraction)},
        "per_frame": {"frame": list(index), "lossless_changed": list(l_changed), "recorded_changed": list(c_changed),
                      "psnr_db": list(psnr)},
    }
