"""Per-frame timing rows and their summary statistics.

One source of truth: the stamps carried by each record. :func:`frame_row` turns a
finished :class:`Rendered` into the CSV row; :class:`LatencyStats` summarises rows for
the JSON summary, the printed table and the bench report.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .frames import Rendered, stage_ms
from .roi import roi_text

STAGES = ("decode", "preprocess", "gate", "segment", "overlay", "encode")
PERCENTILES = (50, 95, 99)


def frame_row(r: Rendered, t0_ns: int, done_ns: int) -> dict:
    """The per-frame log row. Times in ms; ``capture_s`` from the pipeline's start."""
    gate, seg, frame = r.seg.gate, r.seg, r.frame
    ms = stage_ms(r.stamps)
    row = {
        "frame": frame.index,
        "pts_s": None if frame.pts is None else round(frame.pts, 6),
        "capture_s": round((frame.captured_ns - t0_ns) / 1e9, 6),
        "class": gate.label,
        "confidence": round(gate.confidence, 4),
        "segmented": seg.mask is not None,
        "unfamiliar": gate.unfamiliar,
        "gate_held": gate.held,
        "energy": None if gate.energy is None else round(gate.energy, 4),
        "view_distance": None if gate.view_distance is None else round(gate.view_distance, 3),
        "mask_fraction": round(seg.mask_fraction, 5),
    }
    for stage in STAGES:
        value = ms.get(stage)
        if stage == "segment" and seg.mask is None:
            value = None  # skipped branch: no segmentation time, not zero
        row[f"{stage}_ms"] = None if value is None else round(value, 3)
    last_overlay = dict((name, end) for name, _, end in r.stamps).get("overlay")
    # A frame shown raw (live passthrough) carries no mask of its own: its overlay's age says it.
    row["annotation_delay_ms"] = None if last_overlay is None else round((last_overlay - frame.captured_ns) / 1e6, 3)
    row["latency_ms"] = round((done_ns - frame.captured_ns) / 1e6, 3)
    row["dropped"] = gate.dropped
    row["roi"] = roi_text(seg.roi)
    row["status"] = "ok" if not r.errors else "failed: " + "; ".join(r.errors)
    row.update((k, v) for k, v in r.extra.items() if k.startswith("overlay_"))
    row.update(r.extra.get("truth", {}))  # replay --gt: the frame's score (empty when not annotated)
    return row


@dataclass
class LatencyStats:
    """Accumulates rows; ``summary()`` skips ``skip`` frames at each end (warm-up and
    tear-down) when there are enough frames to afford it, and says so.

    ``keep``: hold only about the latest ``keep`` rows (a view left running through a
    long operation must not grow without bound); ``count``, ``segmented`` and ``failed``
    still count every frame, percentiles and class counts cover the rows held."""

    skip: int = 10
    rows: list[dict] = field(default_factory=list)
    keep: int | None = None
    count: int = 0
    segmented: int = 0
    failed: int = 0
    unfamiliar: int = 0  # frames the gate did not recognise: shown with no label
    held: int = 0  # frames that held the last gated frame's verdict (gate.every)

    def add(self, row: dict) -> None:
        self.rows.append(row)
        self.count += 1
        self.segmented += bool(row["segmented"])
        self.failed += row["status"] != "ok"
        self.unfamiliar += row.get("unfamiliar") is True
        self.held += row.get("gate_held") is True
        if self.keep is not None and len(self.rows) >= 2 * self.keep:
            del self.rows[:-self.keep]  # amortised: one trim per `keep` frames

    def _window(self) -> tuple[list[dict], int]:
        n = len(self.rows)
        skip = self.skip if n > 4 * self.skip else 0
        return self.rows[skip:n - skip] if skip else self.rows, skip

    def summary(self) -> dict:
        rows, skip = self._window()
        out: dict = {"frames": self.count, "frames_in_statistics": len(rows),
                     "skipped_each_end": skip,
                     "note": f"statistics exclude the first and last {skip} frames (warm-up, tear-down)"
                     if skip else "too few frames to exclude warm-up; all frames counted"}
        if len(rows) >= 2:
            span = rows[-1]["capture_s"] - rows[0]["capture_s"]
            out["fps"] = round((len(rows) - 1) / span, 2) if span > 0 else None
        out["segmented_frames"] = self.segmented
        out["failed_frames"] = self.failed
        out["unfamiliar_frames"] = self.unfamiliar
        out["unfamiliar_fraction"] = round(self.unfamiliar / self.count, 4) if self.count else 0.0
        out["gate_held_frames"] = self.held
        out["dropped"] = self.rows[-1]["dropped"] if self.rows else 0
        out["stages_ms"] = {s: describe([r[f"{s}_ms"] for r in rows]) for s in STAGES}
        out["annotation_delay_ms"] = describe([r["annotation_delay_ms"] for r in rows])
        out["latency_ms"] = describe([r["latency_ms"] for r in rows])
        out["classes"] = _counts(r["class"] for r in self.rows)
        return out


def describe(values) -> dict | None:
    """p50/p95/p99/p99.9, mean, std, max and count of the non-None ``values``."""
    data = np.array([v for v in values if v is not None], dtype=np.float64)
    if data.size == 0:
        return None
    q = np.percentile(data, [50, 95, 99, 99.9])
    return {"n": int(data.size), "mean": round(float(data.mean()), 3), "std": round(float(data.std()), 3),
            "p50": round(float(q[0]), 3), "p95": round(float(q[1]), 3), "p99": round(float(q[2]), 3),
            "p99_9": round(float(q[3]), 3), "max": round(float(data.max()), 3)}


def _counts(items) -> dict[str, int]:
    counts: dict[str, int] = {}
    for item in items:
        counts[item] = counts.get(item, 0) + 1
    return counts


def format_table(summary: dict) -> str:
    """The short FPS report printed at the end of a replay."""
    lines = [f"frames {summary['frames']}  FPS {summary.get('fps')}  "
             f"segmented {summary['segmented_frames']}  dropped {summary['dropped']}  "
             f"failed {summary['failed_frames']}  unfamiliar {summary.get('unfamiliar_frames', 0)}",
             f"{'stage':<18}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}{'max ms':>9}"]
    rows = [(s, summary["stages_ms"].get(s)) for s in STAGES]
    rows += [("annotation delay", summary["annotation_delay_ms"]), ("capture→written", summary["latency_ms"])]
    display = summary.get("display") or {}
    rows.append(("overlay age shown", display.get("overlay_age_ms")))  # live passthrough only
    for name, d in rows:
        if d:
            lines.append(f"{name:<18}{d['p50']:>9.2f}{d['p95']:>9.2f}{d['p99']:>9.2f}{d['max']:>9.2f}")
    if display.get("mode") == "passthrough":
        lines.append(f"passthrough: {display['frames_shown']} frames shown, {display['layers']} overlay layers, "
                     f"{display['shown_without_overlay_too_old']} shown without one past "
                     f"{display['hide_after_ms']:g} ms")
    lines.append(f"({summary['note']})")
    return "\n".join(lines)
