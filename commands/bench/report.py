"""The bench's outputs: one printed table, a JSON with every figure, a latency PNG and
the figures section of ``docs/BENCHMARKS.md``."""

from __future__ import annotations

import json
import platform
from pathlib import Path

import numpy as np

from nerveseg.engines.interrupts import write_atomic


#: the throughput runs, in table order
RUNS = ("naive", "sequential", "bare", "replay", "single_bare", "single_replay")


def _p(d: dict | None, key: str) -> str:
    return "-" if not d or d.get(key) is None else f"{d[key]:.1f}"


def ratios(results: dict) -> dict:
    """Replay against the naive loop, the bare engines and the machine's bound."""
    replay = (results.get("replay") or {}).get("fps")
    out = {}
    for name, key in (("replay/naive", "naive"), ("replay/sequential", "sequential"), ("replay/bare", "bare")):
        other = (results.get(key) or {}).get("fps")
        out[name] = round(replay / other, 2) if replay and other else None
    # The replay's own CPU over its own wall time (modes.machine_use): ≤ 1 by construction.
    out["efficiency"] = (results.get("replay") or {}).get("efficiency")
    bare = results.get("bare") or {}
    alone = sum((bare.get(k) or {}).get("p50") or 0 for k in ("gate_ms", "segment_ms"))
    for r in results.get("live", []):
        p99 = (r.get("annotation_delay_ms") or {}).get("p99")
        stages = r.get("stages_ms") or {}
        in_run = sum((stages.get(k) or {}).get("p50") or 0 for k in ("gate", "segment"))
        shown = r.get("variant") or r.get("display")
        rate = f"{r['fps_offered']:g}" + (f" {shown}" if shown else "")
        # Target: ≤ 2. "alone": engines timed back to back in the bare mode; "in run": the
        # same engines' stage times in this live run, where they share the cores.
        if p99 and alone:
            out[f"live{rate} p99/engines alone"] = round(p99 / alone, 2)
        if p99 and in_run:
            out[f"live{rate} p99/engines in run"] = round(p99 / in_run, 2)
    for name, one, two in (("single/two bare", "single_bare", "bare"), ("single/two replay", "single_replay", "replay")):
        a, b = (results.get(one) or {}).get("fps"), (results.get(two) or {}).get("fps")
        if a and b:  # only when the single-engine mode ran
            out[name] = round(a / b, 2)
    return out


def table(results: dict) -> str:
    """The one table: FPS and per-stage percentiles per mode, then the ratios."""
    lines = [f"{'mode':<26}{'FPS':>8}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}{'p99.9':>9}{'max':>9}{'std':>8}"]
    for name in RUNS:
        r = results.get(name)
        if not r:
            continue
        if "skipped" in r:
            lines.append(f"{name:<26}skipped: {r['skipped']}")
            continue
        d = r.get("ms_per_frame") or r.get("latency_ms")
        lines.append(f"{name:<26}{r['fps'] or 0:>8.1f}{_p(d, 'p50'):>9}{_p(d, 'p95'):>9}{_p(d, 'p99'):>9}"
                     f"{_p(d, 'p99_9'):>9}{_p(d, 'max'):>9}{_p(d, 'std'):>8}")
    for stage, d in ((results.get("replay") or {}).get("stages_ms") or {}).items():
        lines.append(f"  replay {stage:<17}{'':>8}{_p(d, 'p50'):>9}{_p(d, 'p95'):>9}{_p(d, 'p99'):>9}"
                     f"{_p(d, 'p99_9'):>9}{_p(d, 'max'):>9}{_p(d, 'std'):>8}")
    for r in results.get("live", []):
        name = f"live {r['fps_offered']:g} {r.get('variant') or r.get('display', '')}".strip()
        for label, key in (("video", "video_delay_ms"), ("annotation", "annotation_delay_ms")):
            d = r.get(key)
            lines.append(f"{name + ' ' + label:<26}{'':>8}{_p(d, 'p50'):>9}"
                         f"{_p(d, 'p95'):>9}{_p(d, 'p99'):>9}{_p(d, 'p99_9'):>9}{_p(d, 'max'):>9}{_p(d, 'std'):>8}")
        held = f", {r['not_shown_pct']}% not shown" if r.get("not_shown_pct") is not None else ""
        lines.append(f"{name + ' dropped':<26}{r['dropped']:>8} of {r['offered']} offered before inference{held}")
    replay = results.get("replay") or {}
    if replay.get("bound_fps"):
        lines.append(f"replay: {replay['cpu_ms_per_frame']:.1f} CPU ms/frame in the run → bound "
                     f"{replay['bound_fps']:.1f} FPS on {replay['cores']} cores; {replay['fps_wall']:.1f} FPS over "
                     f"the same {replay['wall_s']:.1f} s → efficiency {replay['efficiency']:.3f} (≤ 1)")
    costs = results.get("costs")
    if costs:
        parts = " + ".join(f"{k} {v:.1f}" for k, v in costs["cpu_ms_per_frame"].items())
        lines.append(f"stage CPU alone, warm (where the CPU goes; not a bound): {parts} = "
                     f"{costs['total_cpu_ms']:.1f} ms/frame")
    if (results.get("bare") or {}).get("nerve_fraction") is not None:
        lines.append(f"nerve fraction (frames the gate sends on to segmentation): {results['bare']['nerve_fraction']}"
                     + (f" (single engine's gate: {results['single_bare']['nerve_fraction']})"
                        if (results.get("single_bare") or {}).get("nerve_fraction") is not None else ""))
    for name in RUNS:
        rounds = (results.get(name) or {}).get("fps_rounds")
        if rounds:
            lines.append(f"{name} FPS per round: {', '.join(f'{v:.1f}' for v in rounds)} (median round shown)")
    steadiness = results.get("steadiness") or {}
    if "skipped" in steadiness:
        lines.append(f"steadiness: skipped: {steadiness['skipped']}")
    for name, r in ({} if "skipped" in steadiness else steadiness).items():
        lines.append(f"steadiness {name}: {r['label_changes_per_s']} label changes/s, consecutive-mask IoU "
                     f"{r['consecutive_mask_iou']}, label accuracy {r['label_accuracy']}, nerve IoU {r['nerve_iou']} "
                     f"({r['frames']} frames)")
    soak = results.get("soak")
    if soak:
        paced = f" (offered live at {soak['paced_fps']:g} FPS)" if soak.get("paced_fps") else ""
        lines.append(f"soak: {soak['frames']} frames at {soak['fps']} FPS{paced}, RSS {soak['rss_start_mb']} → "
                     f"{soak['rss_end_mb']} MB (growth {soak['rss_growth_mb']} MB, max {soak['rss_max_mb']}), "
                     f"threads {soak['threads']}"
                     + (f"; annotation p99 first {soak['window']} frames {soak['annotation_p99_first_ms']:.1f} ms, "
                        f"last {soak['annotation_p99_last_ms']:.1f} ms (×{soak['p99_ratio_last_first']}); targets "
                        f"{'met' if soak['targets']['met'] else 'NOT met'}; p99 per window "
                        f"{', '.join(f'{v:.1f}' for v in soak.get('annotation_p99_windows_ms', []))} ms"
                        if soak.get("annotation_p99_first_ms") is not None else ""))
    if (results.get("scaling") or {}).get("markdown"):
        lines.append("engine ms by input size and backbone (random weights, speed only):")
        lines.append(results["scaling"]["markdown"])
    elif (results.get("scaling") or {}).get("skipped"):
        lines.append(f"scaling skipped: {results['scaling']['skipped']}")
    r = results.get("ratios", {})
    if any(v is not None for v in r.values()):
        lines.append("ratios: " + ", ".join(f"{k} {v}" for k, v in r.items() if v is not None))
    if results.get("4k"):
        from .uhd import lines as uhd_lines

        lines += uhd_lines(results["4k"])
    for row in results.get("formats", []):
        if "skipped" in row:
            lines.append(f"format {row['format']:<30} skipped: {row['skipped']}")
        else:
            lines.append(f"format {row['format']:<30} {row['size_mb']:>6.2f} MB  acc {row['gate_accuracy']:.3f}  "
                         f"IoU {row['nerve_iou']:.3f}  {row['ms_per_frame']:.2f} ms  {row['fps']} FPS"
                         + (f"  x{row['speedup']}" if "speedup" in row else "")
                         + (f"  replay {row['replay']['fps']} FPS" if row.get("replay") else ""))
    lines.append(f"(statistics skip the first and last {results.get('skip', 10)} frames of each run: "
                 "warm-up and tear-down)")
    return "\n".join(lines)


def machine() -> dict:
    import os

    import onnxruntime

    info = {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
            "cores": os.cpu_count(), "python": platform.python_version(), "onnxruntime": onnxruntime.__version__}
    try:
        with open("/proc/cpuinfo") as handle:
            names = [line.split(":", 1)[1].strip() for line in handle if line.startswith("model name")]
        info["cpu"] = names[0] if names else ""
    except OSError:
        pass
    try:
        info["load_average"] = [round(v, 2) for v in os.getloadavg()]
    except OSError:
        pass
    return info


def write_json(results: dict, path: Path) -> None:
    """Whole or not at all (a reader never sees half a summary)."""
    write_atomic(path, json.dumps(results, indent=2, default=str))


def latency_png(results: dict, path: Path) -> Path | None:
    """Histogram and CDF of the replay's capture→written latency and each live run's delays."""
    series = {}
    for r in results.get("live", []):
        for key, label in (("video_delay_values", "video delay"), ("annotation_delay_values", "annotation delay")):
            if r.get(key):
                series[f"live {r['fps_offered']:g} FPS {r.get('variant') or r.get('display', '')} {label}"] = r[key]
    if not series:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (hist, cdf) = plt.subplots(1, 2, figsize=(11, 4))
    for label, values in series.items():
        v = np.sort(np.asarray(values))
        hist.hist(v, bins=40, alpha=0.5, label=label)
        cdf.plot(v, np.arange(1, v.size + 1) / v.size, label=label)
    hist.set(xlabel="ms from capture", ylabel="frames", title="latency histogram")
    cdf.set(xlabel="ms from capture", ylabel="fraction of frames", title="latency CDF")
    cdf.axhline(0.99, color="grey", lw=0.6, ls="--")
    hist.legend(fontsize=7)
    cdf.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


BEGIN, END = "<!-- bench:begin -->", "<!-- bench:end -->"


def _scaling_md(results: dict) -> list[str]:
    scaling = results.get("scaling") or {}
    if not scaling.get("markdown"):
        return []
    return ["", "Engine cost by input size and backbone (ONNX Runtime, random weights: speed only, "
                "same frames):", "", scaling["markdown"]]


def update_docs(results: dict, path: Path) -> None:
    """Replace the figures section of ``path`` (between the bench markers) with this run's."""
    m = results["machine"]
    block = "\n".join([BEGIN, f"Latest run: {results['date']} on {m.get('cpu', m['processor'])}, "
                       f"{m['cores']} cores, load average {m.get('load_average')}; video {results['video']} "
                       f"({results['frames']} frames), input {results['input_size']}.", "", "```",
                       table(results), "```", *_scaling_md(results), END])
    text = path.read_text() if path.exists() else f"# Benchmarks\n\n{BEGIN}\n{END}\n"
    if BEGIN not in text:
        text += f"\n{BEGIN}\n{END}\n"
    head, rest = text.split(BEGIN, 1)
    tail = rest.split(END, 1)[1] if END in rest else ""
    path.write_text(head + block + tail)
