"""Do two engines agree? Max absolute logit difference, gate agreement, mask IoU.

Both engines run on the same preprocessed frames, one frame per call (the pipeline's
batch). Per-call times are taken with ``time.perf_counter_ns`` around ``run`` after a
warm-up that is excluded from the statistics, so the same run also gives a fair
side-by-side latency of the two backends.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np

from .base import Engine
from .metadata import EngineError


@dataclass(frozen=True)
class Thresholds:
    """Pass criteria. The defaults are the FP16-vs-FP32 requirement (issue 4): gate
    agreement ≥ 0.99 and mask IoU ≥ 0.98. ``max_abs_diff`` None: reported, not checked.
    ``mask_probability``: the sigmoid threshold that turns mask logits into a mask."""

    min_agreement: float = 0.99
    min_iou: float = 0.98
    max_abs_diff: float | None = None
    mask_probability: float = 0.5

    @property
    def mask_logit(self) -> float:
        p = self.mask_probability
        return math.log(p / (1.0 - p))


@dataclass
class Report:
    """Agreement of engine ``b`` with reference ``a`` over ``frames`` frames.

    ``max_abs_diff``: per output name. ``gate_agreement``: fraction of frames with the
    same top class (None without ``logits``). ``mask_iou``: intersection over union of
    all frames' masks pooled (1.0 when both are empty everywhere; None without
    ``mask_logits``). ``ms``: per-engine ``{"mean", "p50", "p95"}`` of ``run`` calls.
    """

    a: dict
    b: dict
    frames: int
    thresholds: Thresholds
    max_abs_diff: dict[str, float] = field(default_factory=dict)
    gate_agreement: float | None = None
    mask_iou: float | None = None
    mask_iou_min: float | None = None
    ms: dict[str, dict[str, float]] = field(default_factory=dict)

    @property
    def failures(self) -> list[str]:
        t, out = self.thresholds, []
        if self.gate_agreement is not None and self.gate_agreement < t.min_agreement:
            out.append(f"gate agreement {self.gate_agreement:.4f} < {t.min_agreement}")
        if self.mask_iou is not None and self.mask_iou < t.min_iou:
            out.append(f"mask IoU {self.mask_iou:.4f} < {t.min_iou}")
        if t.max_abs_diff is not None:
            out += [f"max |Δ{name}| {d:.4g} > {t.max_abs_diff}" for name, d in self.max_abs_diff.items()
                    if d > t.max_abs_diff]
        return out

    @property
    def ok(self) -> bool:
        return not self.failures

    def to_dict(self) -> dict:
        return {"a": self.a, "b": self.b, "frames": self.frames, "max_abs_diff": self.max_abs_diff,
                "gate_agreement": self.gate_agreement, "mask_iou": self.mask_iou,
                "mask_iou_min_frame": self.mask_iou_min, "ms": self.ms,
                "thresholds": self.thresholds.__dict__, "failures": self.failures, "ok": self.ok}


def _engine_info(engine: Engine) -> dict:
    p = engine.provenance
    return {"path": p.path, "backend": p.backend, "device": p.device, "reason": p.reason,
            "sha256": p.short_hash, "model": p.meta.model, "task": p.meta.task}


def check_compatible(a: Engine, b: Engine) -> tuple[str, ...]:
    """The outputs both engines produce; one-line error when they cannot be compared."""
    pa, pb = a.provenance, b.provenance
    if a.input_size != b.input_size:
        raise EngineError(f"{pb.path}: input size {b.input_size} differs from {pa.path}'s {a.input_size}")
    if a.classes != b.classes:
        raise EngineError(f"{pb.path}: classes {list(b.classes)} differ from {pa.path}'s {list(a.classes)}")
    common = tuple(n for n in ("logits", "mask_logits") if n in _outputs(a) and n in _outputs(b))
    if not common:
        raise EngineError(f"{pb.path}: shares no output with {pa.path} ({pb.meta.task} vs {pa.meta.task})")
    return common


def _outputs(engine: Engine) -> tuple[str, ...]:
    from .metadata import OUTPUT_NAMES

    return OUTPUT_NAMES.get(engine.meta.task, ())


def _timed(engine: Engine, batch: np.ndarray) -> tuple[dict[str, np.ndarray], int]:
    t0 = time.perf_counter_ns()
    out = engine.run(batch)
    elapsed = time.perf_counter_ns() - t0
    # Copied after the timed span: TensorRT reuses its output buffers on the next call,
    # and the copy is the caller's cost, not the backend's.
    return {k: np.array(v, dtype=np.float32, copy=True) for k, v in out.items()}, elapsed


def _stats(ns: list[int]) -> dict[str, float]:
    ms = np.asarray(ns, dtype=np.float64) / 1e6
    return {"mean": float(ms.mean()), "p50": float(np.percentile(ms, 50)), "p95": float(np.percentile(ms, 95))}


def compare(a: Engine, b: Engine, frames: np.ndarray, thresholds: Thresholds = Thresholds(),
            warmup: int = 3) -> Report:
    """Run ``a`` (reference) and ``b`` on ``frames`` (``(N, H, W, 3) uint8``), one per call."""
    names = check_compatible(a, b)
    if frames.ndim != 4 or frames.shape[1:3] != tuple(a.input_size) or frames.dtype != np.uint8:
        raise ValueError(f"frames must be (N, {a.input_size[0]}, {a.input_size[1]}, 3) uint8, got "
                         f"{frames.shape} {frames.dtype}")
    a.warmup(warmup)
    b.warmup(warmup)
    diff = {n: 0.0 for n in names}
    agree, inter, union, ious, times = 0, 0, 0, [], {"a": [], "b": []}
    cut = thresholds.mask_logit
    for i in range(len(frames)):
        batch = frames[i:i + 1]
        out_a, ns_a = _timed(a, batch)
        out_b, ns_b = _timed(b, batch)
        times["a"].append(ns_a)
        times["b"].append(ns_b)
        for n in names:
            diff[n] = max(diff[n], float(np.max(np.abs(out_a[n] - out_b[n]))))
        if "logits" in names:
            agree += int(np.argmax(out_a["logits"][0]) == np.argmax(out_b["logits"][0]))
        if "mask_logits" in names:
            ma, mb = out_a["mask_logits"] > cut, out_b["mask_logits"] > cut
            i_, u_ = int(np.count_nonzero(ma & mb)), int(np.count_nonzero(ma | mb))
            inter, union = inter + i_, union + u_
            ious.append(i_ / u_ if u_ else 1.0)
    n = len(frames)
    report = Report(_engine_info(a), _engine_info(b), n, thresholds, diff,
                    ms={"a": _stats(times["a"]), "b": _stats(times["b"])})
    if "logits" in names:
        report.gate_agreement = agree / n
    if "mask_logits" in names:
        report.mask_iou = inter / union if union else 1.0
        report.mask_iou_min = min(ious)
    return report


def format_report(report: Report) -> str:
    """A short human-readable table."""
    rows = [f"frames: {report.frames}"]
    for side in ("a", "b"):
        e, ms = report.__dict__[side], report.ms[side]
        rows.append(f"{side.upper()}: {e['path']} [{e['backend']}, {e['device']}] "
                    f"{ms['mean']:.2f} ms/frame (p50 {ms['p50']:.2f}, p95 {ms['p95']:.2f})")
    for name, d in report.max_abs_diff.items():
        rows.append(f"max |Δ {name}|: {d:.4g}")
    t = report.thresholds
    if report.gate_agreement is not None:
        rows.append(f"gate agreement: {report.gate_agreement:.4f} (min {t.min_agreement})")
    if report.mask_iou is not None:
        rows.append(f"mask IoU: {report.mask_iou:.4f} (min {t.min_iou}; worst frame {report.mask_iou_min:.4f})")
    rows.append("PASS" if report.ok else "FAIL: " + "; ".join(report.failures))
    return "\n".join(rows)
