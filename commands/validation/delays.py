"""Annotation delay and video delay, from the stamps the frames carry and the display probe's.

* video delay: capture → the frame on screen, for every frame shown;
* annotation delay: capture → the frame's mask on screen, for every frame shown with a
  mask (the segmenter ran on it).

Per-frame display draws each mask on its own frame, so the raw picture waits for its
frame's inference: on a segmented frame both delays are the same number. Live
passthrough (docs/LIVE.md) shows every frame at once and the overlay as a layer of its
own: the video delay is the display path's alone, the annotation delay runs from the
capture of a mask's frame to the first paint that showed that layer. Frames never shown
(dropped by the newest-frame policy) are counted, not timed. Warm-up and tear-down frames
are left out as :class:`~nerveseg.realtime.stats.LatencyStats` leaves them out.
"""

from __future__ import annotations

import statistics

from nerveseg.realtime.stats import LatencyStats, describe
from .display import Shown

STATISTICS = ("p50", "p95", "p99", "max")
#: the parts of the delay, in order; their per-frame sum is the whole delay
PARTS = ("queue before gate", "preprocess", "gate", "queue before segmenter", "segment", "queue before overlay",
         "overlay", "to the view", "to the GUI thread", "paint")


def _trim(shown: list[Shown]) -> tuple[list[Shown], int]:
    skip = LatencyStats.skip if len(shown) > 4 * LatencyStats.skip else 0
    return (shown[skip:len(shown) - skip] if skip else shown), skip


#: passthrough: the parts of the video delay (no inference on this path)
PASS_PARTS = ("to the display path", "to the view", "to the GUI thread", "paint")


def pass_parts_ms(s: Shown) -> dict[str, float]:
    end = {name: b for name, _, b in s.stamps}
    points = [s.captured_ns, end["show"], s.handoff_ns, s.received_ns, s.painted_ns]
    return {name: (b - a) / 1e6 for name, a, b in zip(PASS_PARTS, points, points[1:])}


def parts_ms(s: Shown) -> dict[str, float]:
    """One frame's delay split at its stamps (ms); the parts add up to the whole."""
    start = {name: a for name, a, _ in s.stamps}
    end = {name: b for name, _, b in s.stamps}
    gated = end.get("gate", end["preprocess"])  # a frame that held the gate's verdict (gate.every) has no gate time
    seg_start, seg_end = start.get("segment", gated), end.get("segment", gated)
    points = [s.captured_ns, start["preprocess"], end["preprocess"], gated, seg_start, seg_end,
              start["overlay"], end["overlay"], s.handoff_ns, s.received_ns, s.painted_ns]
    return {name: (b - a) / 1e6 for name, a, b in zip(PARTS, points, points[1:])}


def delay_report(shown: list[Shown], fps: float, counts: dict, layers: list[Shown] | None = None) -> dict:
    """Statistics (ms) of both delays, per-frame values, the median of each part, and the
    frame counts (source, processed, shown) with the drops between them. ``layers``: live
    passthrough's overlay layers as shown (None: per-frame display, masks on their frames)."""
    passthrough = layers is not None
    stage = "show" if passthrough else "overlay"
    shown = [s for s in shown if stage in {name for name, _, _ in s.stamps}]
    kept, skip = _trim(shown)
    if passthrough:
        kept_layers, _ = _trim(layers)
        annotated = [s for s in kept_layers if s.segmented]
    else:
        annotated = [s for s in kept if s.segmented]
    out = {"display_mode": "passthrough" if passthrough else "per-frame",
           "frame_period_ms": round(1000.0 / fps, 3), "skipped_each_end": skip,
           "note": (f"statistics exclude the first and last {skip} frames shown (warm-up, tear-down)" if skip
                    else "too few frames to exclude warm-up; all frames shown are counted"),
           "frames": {**counts, "shown": len(shown), "shown_with_mask": (
               sum(s.segmented for s in layers) if passthrough else sum(s.segmented for s in shown))}}
    for key, subset, split in (("video", kept, pass_parts_ms if passthrough else parts_ms),
                               ("annotation", annotated, parts_ms)):
        values = [(s.painted_ns - s.captured_ns) / 1e6 for s in subset]
        out[key] = {"stats": describe(values), "per_frame": {"frame": [s.index for s in subset],
                                                             "delay_ms": [round(v, 3) for v in values]}}
        parts = [split(s) for s in subset]
        names = list(parts[0]) if parts else []
        out[key]["parts_median_ms"] = {p: round(statistics.median(row[p] for row in parts), 3)
                                       for p in names}
    return out


def threshold_check(name: str, stats: dict | None, statistic: str, threshold_ms: float) -> dict:
    """A pass/fail line: ``statistic`` of ``stats`` at or under ``threshold_ms``. A delay that
    could not be measured fails: a release gate must not pass on no evidence."""
    if statistic not in STATISTICS:
        raise ValueError(f"statistic must be one of {', '.join(STATISTICS)}, not {statistic!r}")
    measured = None if stats is None else stats[statistic]
    passed = measured is not None and measured <= threshold_ms
    shown = "not measured (no frames)" if measured is None else f"{statistic} {measured:.1f} ms"
    relation = "≤" if passed else ">" if measured is not None else "vs"
    return {"name": name, "statistic": statistic, "measured_ms": measured, "threshold_ms": round(threshold_ms, 3),
            "passed": passed, "line": f"{'PASS' if passed else 'FAIL'}  {name}: {shown} {relation} "
                                      f"{threshold_ms:.1f} ms"}
