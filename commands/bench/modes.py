"""The benchmark's run modes. Each returns a plain dict of figures; none asserts a speed."""

from __future__ import annotations

import dataclasses
import os
import time
import threading
from pathlib import Path

import numpy as np

from nerveseg.engines.base import Engine

from nerveseg.realtime.config import PipelineConfig
from nerveseg.realtime.frames import Rendered, now_ns
from nerveseg.realtime.graph import Operator
from nerveseg.realtime.overlay import draw_panel, text_lines, tint
from nerveseg.realtime.pipeline import Engines, NervePipeline
from nerveseg.realtime.priority import status
from nerveseg.engines.preprocess import Preprocessor, view_box
from nerveseg.realtime.sinks import AviRecorder
from nerveseg.realtime.stages import segmenter_input, softmax
from nerveseg.realtime.stats import describe
from .memory_source import MemorySource

SKIP = 10  # frames left out of the statistics at each end (warm-up, tear-down)


def trimmed(values: list[float], skip: int = SKIP) -> list[float]:
    """``values`` without ``skip`` items at each end, when there are enough to afford it."""
    return values[skip:len(values) - skip] if len(values) > 4 * skip else values


def rss_mb() -> float:
    """This process's resident memory in MB (Linux /proc; 0 elsewhere)."""
    try:
        with open("/proc/self/statm") as handle:
            return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError):
        return 0.0


def _gate_seg(gate: Engine, seg: Engine, view: np.ndarray, engine_input: np.ndarray,
              nerve: int) -> tuple[np.ndarray, np.ndarray | None]:
    """Gate, then the segmenter on nerve frames; one forward when the gate is a gate_segment engine."""
    outputs = gate.run(engine_input)
    logits = outputs["logits"][0]
    if int(np.argmax(logits)) != nerve:
        return logits, None
    if "mask_logits" in outputs:
        return logits, outputs["mask_logits"][0, 0]
    return logits, seg.run(segmenter_input(seg, view, engine_input))["mask_logits"][0, 0]


def naive(video: Path, gate: Engine, seg: Engine, config: PipelineConfig, out: Path) -> dict:
    """The original tool's loop, as its notebooks wrote it: one frame after another in
    one thread — decode, crop, resize, PyTorch eager gate then segmenter, a whole-frame
    ``cv2.addWeighted`` blend of the coloured mask, ``cv2.putText``, ``cv2.VideoWriter``
    (MJPG). Same frames, same crop and same engines' weights as the pipeline; none of
    its operators (``gate``/``seg`` are PyTorch eager engines)."""
    import av
    import cv2

    nerve = gate.classes.index(config.gate.nerve_class)
    colour = np.array(config.overlay.colour, np.uint8)
    per_frame, writer, size = [], None, (0, 0)
    with av.open(str(video)) as container:
        fps = float(container.streams.video[0].average_rate or 30)
        t0 = now_ns()  # each frame's time runs from the end of the previous one: its decode counts
        for frame in container.decode(video=0):
            image = frame.to_ndarray(format="rgb24")
            view = view_box(image, config.preprocess).slice(image)  # left eye, overexposed border cut
            engine_input = cv2.resize(view, gate.input_size[::-1], interpolation=cv2.INTER_AREA)
            logits = gate.run(engine_input[None])["logits"][0]
            out_image = view.copy()
            if int(np.argmax(logits)) == nerve:
                mask_logits = seg.run(segmenter_input(seg, view, engine_input[None]))["mask_logits"][0, 0]
                h, w = view.shape[:2]
                mask = cv2.resize(mask_logits, (w, h)) > 0
                colour_plane = np.zeros_like(out_image)
                colour_plane[mask] = colour
                blended = cv2.addWeighted(out_image, 1 - config.overlay.opacity, colour_plane,
                                          config.overlay.opacity, 0)
                out_image[mask] = blended[mask]
            probs = softmax(logits)
            cv2.putText(out_image, f"{gate.classes[int(probs.argmax())]} {probs.max():.2f}", (10, 30),
                        cv2.FONT_HERSHEY_SIMPLEX, 1.0, (255, 255, 255), 2)
            if writer is None:
                size = (out_image.shape[1], out_image.shape[0])
                writer = cv2.VideoWriter(str(out), cv2.VideoWriter_fourcc(*"MJPG"), fps, size)
            if (out_image.shape[1], out_image.shape[0]) != size:  # the crop moved: the writer's size is fixed
                out_image = cv2.resize(out_image, size)
            writer.write(cv2.cvtColor(out_image, cv2.COLOR_RGB2BGR))
            t1 = now_ns()
            per_frame.append((t1 - t0) / 1e6)
            t0 = t1
    if writer is not None:
        writer.release()
    return _throughput(per_frame, "the original loop: decode, crop, resize, PyTorch eager gate + segmenter, "
                                  "addWeighted, putText, cv2.VideoWriter; one thread")


def sequential(video: Path, gate: Engine, seg: Engine, config: PipelineConfig, out: Path) -> dict:
    """The same one-thread loop with the pipeline's own operators and engines: its
    preprocessing, ONNX Runtime, the strip tint, the panel and the libjpeg-turbo
    recorder. Between naive and replay it splits the gain into operators and threads."""
    import av
    import cv2

    pre = Preprocessor(config.preprocess, gate.input_size)
    nerve = gate.classes.index(config.gate.nerve_class)
    per_frame = []
    with av.open(str(video)) as container:
        recorder = AviRecorder(out, float(container.streams.video[0].average_rate or 30), "mjpeg",
                               config.record.quality)
        t0 = now_ns()  # each frame's time runs from the end of the previous one: its decode counts
        for frame in container.decode(video=0):
            view, engine_input, _ = pre(frame.to_ndarray(format="rgb24"))
            logits, mask_logits = _gate_seg(gate, seg, view, engine_input, nerve)
            image = view.copy()
            if mask_logits is not None:
                h, w = view.shape[:2]
                tint(image, cv2.resize(mask_logits, (w, h)) > 0, config.overlay.colour, config.overlay.opacity)
            probs = softmax(logits)
            draw_panel(image, text_lines(gate.classes[int(probs.argmax())], float(probs.max()), {}, 0.0, 0))
            recorder.write(image)
            t1 = now_ns()
            per_frame.append((t1 - t0) / 1e6)
            t0 = t1
        recorder.close()
    return _throughput(per_frame, "the pipeline's operators and engines in one thread, one frame after another")


def _throughput(per_frame_ms: list[float], what: str) -> dict:
    kept = trimmed(per_frame_ms)
    return {"what": what, "frames": len(per_frame_ms), "fps": round(1000 * len(kept) / sum(kept), 2),
            "ms_per_frame": describe(kept)}


def bare(frames: list[np.ndarray], gate: Engine, seg: Engine, config: PipelineConfig) -> dict:
    """Gate + segmenter alone on pre-decoded, pre-resized frames; the segmenter runs on
    the frames the gate calls nerve, as in the pipeline."""
    pre = Preprocessor(config.preprocess, gate.input_size)
    inputs = []
    for image in frames:  # both engines' inputs made before the clock starts
        view, engine_input, _ = pre(image)
        inputs.append((engine_input.copy(), segmenter_input(seg, view, engine_input).copy()))
    nerve = gate.classes.index(config.gate.nerve_class)
    per_frame, gate_ms, seg_ms = [], [], []
    for engine_input, segment_input in inputs:
        t0 = now_ns()
        outputs = gate.run(engine_input)
        t1 = now_ns()
        gate_ms.append((t1 - t0) / 1e6)
        if int(np.argmax(outputs["logits"][0])) == nerve:
            if "mask_logits" not in outputs:  # a gate_segment engine answered both already
                seg.run(segment_input)
            seg_ms.append((now_ns() - t1) / 1e6)
        per_frame.append((now_ns() - t0) / 1e6)
    out = _throughput(per_frame, "gate + segmenter inference only, pre-decoded pre-resized frames")
    out.update(gate_ms=describe(trimmed(gate_ms)), segment_ms=describe(trimmed(seg_ms)),
               nerve_fraction=round(len(seg_ms) / len(inputs), 3))
    return out


def usable_cores() -> int:
    """Cores this process may run on (its affinity mask, not the machine's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def machine_use(wall_s: float, cpu_s: float, frames: int) -> dict:
    """The replay's bound and efficiency from its own clocks, over one window.

    ``cpu_s`` is the process CPU time the whole run used (every stage, engine and codec
    thread), ``wall_s`` its wall time. No schedule of that work on ``cores`` cores can be
    faster than ``cores / cpu per frame`` (the bound), and ``efficiency = fps_wall /
    bound = cpu_s / (cores · wall_s)`` cannot exceed 1: a process cannot use more CPU than
    its cores give in the time. (Stage costs timed alone, :mod:`.costs`, are no bound.)"""
    cores = usable_cores()
    if frames <= 0 or wall_s <= 0 or cpu_s <= 0:
        return {"cores": cores, "wall_s": round(wall_s, 3), "cpu_s": round(cpu_s, 3)}
    return {"cores": cores, "wall_s": round(wall_s, 3), "cpu_s": round(cpu_s, 3),
            "fps_wall": round(frames / wall_s, 2), "cpu_ms_per_frame": round(1000 * cpu_s / frames, 3),
            "bound_fps": round(frames * cores / cpu_s, 2), "efficiency": round(cpu_s / (cores * wall_s), 4)}


def replay(video: Path, engines: Engines, config: PipelineConfig, out: Path) -> dict:
    """The full pipelined replay to AVI (every frame), as ``nerveseg replay`` runs it."""
    config = dataclasses.replace(
        config, source=dataclasses.replace(config.source, spec=str(video), pace=False, live=False),
        record=dataclasses.replace(config.record, path=str(out)))
    pipeline = NervePipeline(config, engines=engines)
    rss0 = rss_mb()
    wall0, cpu0 = time.perf_counter(), time.process_time()
    summary = pipeline.run()
    use = machine_use(time.perf_counter() - wall0, time.process_time() - cpu0, summary["frames"])
    threads = threading.active_count()
    return {"what": "pipelined replay to AVI, every frame", "frames": summary["frames"],
            "recorded_frames": summary["recorded_frames"], "fps": summary.get("fps"), **use,
            "stages_ms": summary["stages_ms"], "latency_ms": summary["latency_ms"],
            "rss_growth_mb": round(rss_mb() - rss0, 1), "threads_after": threads,
            "note": summary["note"]}


def live(frames: list[np.ndarray], fps: float, engines: Engines, config: PipelineConfig,
         loops: int = 1, record: Path | None = None, display: str = "passthrough", screen: str = "qt",
         inference_nice: int | None = None) -> dict:
    """Frames offered at ``fps`` with the newest-frame policy, shown as ``display`` says
    (``passthrough`` or ``per-frame``, docs/LIVE.md) on ``screen`` (``qt``: the view's own
    widget painting, offscreen without a display; ``subscriber``: the hand-off to it).
    Video delay: capture → the frame painted; annotation delay: capture → its mask painted
    (passthrough: the first paint that showed its layer). As ``nerveseg validate`` measures them.
    ``inference_nice``: passthrough's priority setting for this run (None: the config's)."""
    from ..validation.delays import delay_report
    from ..validation.display import make_probe

    config = dataclasses.replace(
        config, source=dataclasses.replace(config.source, live=True),
        display=dataclasses.replace(config.display, mode=display, **(
            {} if inference_nice is None else {"inference_nice": inference_nice})),
        record=dataclasses.replace(config.record, path=str(record) if record else None))
    source = MemorySource(frames, fps, loops)
    pipeline = NervePipeline(config, source=source, engines=engines)
    probe = make_probe(screen)
    try:
        probe.attach(pipeline)
        probe.drive(pipeline, lambda: None, deadline_s=3 * source.frame_count / fps + 60)
        shown, layers = probe.shown(), probe.layers_shown() if pipeline.passthrough else None
        where = probe.describe()
    finally:
        probe.close()
    summary = pipeline.summary()
    report = delay_report(shown, fps, {}, layers)
    video, annotation = report["video"], report["annotation"]
    channels = summary["channels"]
    offered = source.frame_count
    nice = config.display.inference_nice if pipeline.passthrough else None
    source_op = pipeline.ops.source
    realtime = source_op.realtime if pipeline.passthrough else 0
    got = realtime and source_op.realtime_note is None  # auto where the account may not: not real-time
    variant = (report["display_mode"] + (", inference not lowered" if nice == 0 else "")
               + (f", display path real-time ({realtime})" if got else ""))
    return {"what": f"live at {fps:g} FPS, newest-frame policy, {variant} display",
            "display": report["display_mode"], "variant": variant, "inference_nice": nice, "screen": where["on_screen_means"], "fps_offered": fps,
            "offered": offered, "processed": summary["frames"], "shown": len(shown), "dropped": summary["dropped"],
            # frames offered that never reached the screen: held back (or lost) on the way
            "not_shown_pct": round(100.0 * (offered - len(shown)) / offered, 2) if offered else None,
            "video_delay_ms": video["stats"], "annotation_delay_ms": annotation["stats"],
            "video_delay_parts_ms": video["parts_median_ms"], "annotation_delay_parts_ms": annotation["parts_median_ms"],
            "capture_to_overlay_ms": summary["annotation_delay_ms"],
            "queue_high_water": {name: c["high_water"] for name, c in channels.items()},
            "stages_ms": summary["stages_ms"], "note": summary["note"],
            # the display path's threads under the real-time policy: asked, and what each got
            "display_realtime": {"priority": realtime, "asked": config.display.realtime_priority,
                                 "gui_thread": where.get("gui_thread_realtime"),
                                 "capture_thread": status(source_op.realtime, source_op.realtime_note)},
            "video_delay_values": video["per_frame"]["delay_ms"],
            "annotation_delay_values": annotation["per_frame"]["delay_ms"]}


class _DelayTap(Operator):
    """Every frame's annotation delay (capture → overlay done, ms), in order, on a ``BLOCK``
    edge of its own: a soak's first and last windows are compared on all their frames."""

    name = "soak-delays"

    def __init__(self, total: int):
        self.delays = np.zeros(total, np.float32)
        self.count = 0

    def process(self, r: Rendered) -> None:
        end = dict((name, b) for name, _, b in r.stamps).get("overlay")
        if end is not None and self.count < self.delays.size:
            self.delays[self.count] = (end - r.frame.captured_ns) / 1e6
            self.count += 1
        return None


#: a soak's windows compared: the first and last 10,000 frames (a tenth of shorter runs)
SOAK_WINDOW = 10_000
#: the soak's targets (issue 18): memory growth, thread count, the tail's drift
SOAK_TARGETS = {"rss_growth_mb": 50.0, "p99_ratio_last_first": 1.10}


def soak(frames: list[np.ndarray], engines: Engines, config: PipelineConfig, total: int, out: Path,
         every: int = 250, fps: float = 0.0) -> dict:
    """``total`` frames (the decoded frames over and over, recorded to AVI), as fast as
    possible (``fps`` 0: a replay, every frame, where the delay is mostly queueing) or
    offered live at ``fps`` (newest-frame policy, passthrough display: the delay a surgeon
    gets): resident memory and thread count sampled every ``every`` frames after a warm-up
    of ``2 × every`` frames; every processed frame's annotation delay, its p99 per window
    (each tenth of the run, at most :data:`SOAK_WINDOW` frames), the last window's against
    the first. The recording is deleted afterwards (it is large)."""
    loops = -(-total // len(frames))
    config = dataclasses.replace(config, record=dataclasses.replace(config.record, path=str(out)))
    live = fps > 0
    source = MemorySource(frames, fps if live else 30.0, loops, name="soak", live=live)
    tap = _DelayTap(source.frame_count)
    pipeline = NervePipeline(config, source=source, engines=engines, history=1000, taps=[tap])
    samples: list[tuple[int, float, int]] = []

    def sample(r: Rendered) -> None:
        if r.index // every > len(samples) - 1:
            samples.append((r.index, rss_mb(), threading.active_count()))

    pipeline.subscribe(sample)
    summary = pipeline.run()
    out.unlink(missing_ok=True)
    steady = [s for s in samples if s[0] >= 2 * every] or samples
    rss = [s[1] for s in steady]
    delays = tap.delays[:tap.count]
    window = min(SOAK_WINDOW, max(1, tap.count // 10))
    first = float(np.percentile(delays[:window], 99)) if tap.count else None
    last = float(np.percentile(delays[-window:], 99)) if tap.count else None
    # every window's p99, in order: a drift climbs through them, noise scatters them
    windows = [round(float(np.percentile(delays[i:i + window], 99)), 3)
               for i in range(0, tap.count - window + 1, window)] if tap.count else []
    threads = sorted({s[2] for s in steady})
    growth = round(rss[-1] - rss[0], 1)
    ratio = round(last / first, 3) if first else None
    what = (f"{source.frame_count} frames offered live at {fps:g} FPS from memory ({summary['frames']} "
            f"processed, {summary['dropped']} dropped by the newest-frame policy), recorded" if live else
            f"replay of {summary['frames']} frames from memory, recorded")
    return {"what": what, "paced_fps": fps if live else None, "frames": summary["frames"],
            "offered": source.frame_count, "dropped": summary["dropped"],
            "fps": summary.get("fps"), "rss_start_mb": round(rss[0], 1), "rss_end_mb": round(rss[-1], 1),
            "rss_growth_mb": growth, "rss_max_mb": round(max(rss), 1),
            "threads": threads, "window": window,
            "annotation_p99_first_ms": None if first is None else round(first, 3),
            "annotation_p99_last_ms": None if last is None else round(last, 3), "p99_ratio_last_first": ratio,
            "annotation_p99_windows_ms": windows,
            "targets": {**SOAK_TARGETS, "threads_constant": True,
                        "met": growth <= SOAK_TARGETS["rss_growth_mb"] and len(threads) == 1
                        and ratio is not None and ratio <= SOAK_TARGETS["p99_ratio_last_first"]},
            "samples": [list(s) for s in samples]}
