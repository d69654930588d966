"""The report's figures: matplotlib (Agg), each rendered once to PNG bytes that the HTML
embeds as base64 and the PDF places on a page. Confusion matrices and ROC curves are the
training report's own (:mod:`nerveseg.training.plots`)."""

from __future__ import annotations

import io
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nerveseg.training import plots

DPI = 100


@dataclass(frozen=True)
class Figure:
    id: str
    caption: str
    png: bytes


def _pyplot():
    return plots._pyplot()  # Agg, never a window


def _png(fig) -> bytes:
    buffer = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buffer, format="png", dpi=DPI)
    _pyplot().close(fig)
    return buffer.getvalue()


def _via_file(draw, *args, **kwargs) -> bytes:
    """A figure from a :mod:`~nerveseg.training.plots` function that writes a file."""
    with tempfile.TemporaryDirectory(prefix="nerveseg-fig-") as folder:
        path = Path(folder) / "figure.png"
        draw(*args, path=path, **kwargs)
        return path.read_bytes()


def confusion(fig_id: str, report: dict, title: str) -> Figure:
    png = _via_file(plots.confusion_png, report["confusion_matrix"], report["classes"], title=title)
    return Figure(fig_id, f"{title}: counts and row fraction (diagonal: sensitivity).", png)


def roc(fig_id: str, report: dict, title: str) -> Figure:
    aucs = {name: stats["auc"] for name, stats in report["per_class"].items()}
    png = _via_file(plots.roc_png, report["roc"], aucs, title=title)
    return Figure(fig_id, f"{title}: one-vs-rest ROC curves with their AUC.", png)


def versus_published(fig_id: str, rows: list[tuple[str, float, dict[str, float | None]]]) -> Figure:
    """``rows``: ``(metric, published, {series: ours or None})``."""
    plt = _pyplot()
    names = list(dict.fromkeys(k for _, _, ours in rows for k in ours))
    fig, ax = plt.subplots(figsize=(7.5, 3.6))
    width = 0.8 / (1 + len(names))
    x = np.arange(len(rows))
    ax.bar(x, [p for _, p, _ in rows], width, label="published (original study)", color="0.65")
    lowest = 0.0
    for k, name in enumerate(names, start=1):
        values = [ours.get(name) for _, _, ours in rows]
        bars = ax.bar(x + k * width, [v if v is not None else 0 for v in values], width, label=name)
        for bar, v in zip(bars, values):
            ax.text(bar.get_x() + bar.get_width() / 2, max(v or 0, 0) + 0.01, "n/a" if v is None else f"{v:.2f}",
                    ha="center", fontsize=7)
        lowest = min([lowest] + [v for v in values if v is not None])  # MCC can be negative
    ax.axhline(0, color="black", linewidth=0.8)
    ax.set_xticks(x + width * len(names) / 2, [m for m, _, _ in rows])
    ax.set_ylim(lowest - 0.05 if lowest < 0 else 0, 1.25)
    ax.legend(fontsize=8, loc="upper center", ncol=1 + len(names))
    ax.set_title("this run beside the original study's published figures")
    return Figure(fig_id, "Headline metrics of this run beside the original study's published figures "
                          "(those come from other data and are for reference only).", _png(fig))


def per_image(fig_id: str, seg: dict, title: str) -> Figure:
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(8, 3.2))
    for ax, key in zip(axes, ("iou", "dice")):
        values = seg["per_image"][key]
        ax.hist(values, bins=np.linspace(0, 1, 21), color="tab:blue", edgecolor="white")
        s = seg[key]
        if s["mean"] is not None and s["mean"] == s["mean"]:
            ax.axvline(s["mean"], color="tab:red", label=f"mean {s['mean']:.3f}")
            if s["ci_low"] is not None and s["ci_low"] == s["ci_low"]:  # not nan: n ≥ 2
                ax.axvspan(s["ci_low"], s["ci_high"], color="tab:red", alpha=0.15,
                           label=f"95% CI [{s['ci_low']:.3f}, {s['ci_high']:.3f}]")
            ax.legend(fontsize=8)
        ax.set_xlim(0, 1)
        ax.set_xlabel(f"per-image {'IoU' if key == 'iou' else 'Dice'}")
        ax.set_ylabel("images")
    fig.suptitle(title)
    method = seg.get("intervals", {}).get("means", "bootstrap percentile interval")
    return Figure(fig_id, f"{title}: per-image IoU and Dice, mean and 95% CI ({method}).", _png(fig))


def examples(fig_id: str, samples: list, title: str) -> Figure:
    """``samples``: ``(view, truth, prediction)``; truth green, prediction magenta, both yellow."""
    plt = _pyplot()
    n = max(1, len(samples))
    fig, axes = plt.subplots(n, 2, figsize=(6, 3 * n), squeeze=False)
    for row, (view, truth, pred) in zip(axes, samples):
        row[0].imshow(view)
        colours = np.zeros((*truth.shape, 3), np.uint8)
        colours[truth] = (60, 220, 60)
        colours[pred] = (230, 60, 230)
        colours[truth & pred] = (255, 230, 0)
        row[1].imshow(colours)
        row[0].set_title("input view", fontsize=9)
        row[1].set_title("truth only green, prediction only magenta, both yellow", fontsize=8)
    for ax in axes.ravel():
        ax.axis("off")
    fig.suptitle(title)
    return Figure(fig_id, f"{title}: examples of truth against prediction.", _png(fig))


def pixels_per_frame(fig_id: str, displayed: dict, recordings: dict) -> Figure:
    plt = _pyplot()
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(8, 5), sharex=True)
    top.plot(displayed["per_frame"]["frame"], displayed["per_frame"]["changed"], ".-", label="displayed")
    rec = recordings["per_frame"]
    top.plot(rec["frame"], rec["lossless_changed"], ".--", label="recorded, lossless (ffv1)")
    top.set_ylabel("pixels changed\noutside the overlay")
    top.set_ylim(bottom=-0.5, top=max(4, top.get_ylim()[1]))
    top.legend(fontsize=8)
    psnr = [np.nan if p is None else p for p in rec["psnr_db"]]
    bottom.plot(rec["frame"], psnr, ".-", color="tab:purple")
    bottom.set_ylabel(f"{recordings['codec_loss']['codec']} vs ffv1\nPSNR (dB)")
    bottom.set_xlabel("frame")
    return Figure(fig_id, "Per frame: pixels that differ from the input outside the overlay (must be 0), and the "
                          "recording codec's loss against the lossless recording of the same run (PSNR; a gap "
                          "means identical).", _png(fig))


def pixel_example(fig_id: str, shown: dict, recorded: dict | None) -> Figure:
    """Input view, displayed frame, the overlay region with any outside change in red,
    and the codec's |Δ| against the lossless recording (×10)."""
    plt = _pyplot()
    panels = 4 if recorded is not None else 3
    fig, axes = plt.subplots(1, panels, figsize=(3.2 * panels, 3.4))
    outside = (np.abs(shown["displayed"].astype(int) - shown["raw"]).max(axis=2) > 0) & ~shown["allowed"]
    region = np.zeros((*shown["allowed"].shape, 3), np.uint8)
    region[shown["allowed"]] = (90, 90, 90)
    region[outside] = (255, 0, 0)
    images = [(shown["raw"], "input view"), (shown["displayed"], "displayed"),
              (region, f"overlay (grey); changed outside: {int(outside.sum())} (red)")]
    if recorded is not None:
        diff = np.abs(recorded["recorded"].astype(int) - recorded["lossless"]).max(axis=2)
        images.append((np.clip(diff * 10, 0, 255).astype(np.uint8), "codec |Δ| vs lossless ×10"))
    for ax, (image, label) in zip(axes, images):
        ax.imshow(image, cmap="magma" if image.ndim == 2 else None, vmin=0, vmax=255)
        ax.set_title(label, fontsize=8)
        ax.axis("off")
    return Figure(fig_id, f"Frame {shown['index']}: the overlay may change only the grey pixels; any change "
                          f"outside them is red.", _png(fig))


def delay_distribution(fig_id: str, name: str, delay: dict, check: dict) -> Figure:
    """Histogram with p50/p95/p99 and the threshold, and the empirical CDF."""
    plt = _pyplot()
    values = np.array(delay["per_frame"]["delay_ms"], float)
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.4))
    if values.size:
        left.hist(values, bins=min(40, max(5, values.size // 4)), color="tab:blue", edgecolor="white")
        for key, style in (("p50", ":"), ("p95", "--"), ("p99", "-.")):
            left.axvline(delay["stats"][key], color="black", linestyle=style, linewidth=1,
                         label=f"{key} {delay['stats'][key]:.1f} ms")
        ordered = np.sort(values)
        right.step(ordered, np.arange(1, ordered.size + 1) / ordered.size, where="post")
    threshold = check["threshold_ms"]
    top = float(values.max()) * 1.1 if values.size else threshold
    for ax in (left, right):
        label = f"threshold {threshold:.1f} ms ({check['statistic']})"
        if threshold <= 2 * top:
            ax.axvline(threshold, color="tab:red", linewidth=2, label=label)
        else:  # far off to the right: say so rather than squash the distribution
            ax.text(0.98, 0.5, f"{label} →", transform=ax.transAxes, ha="right", color="tab:red", fontsize=8)
        ax.set_xlim(0, max(top, threshold * 1.05) if threshold <= 2 * top else top)
        ax.set_xlabel(f"{name} (ms)")
    left.set_ylabel("frames")
    left.legend(fontsize=7)
    right.set_ylabel("fraction of frames ≤ x")
    right.set_ylim(0, 1.02)
    fig.suptitle(f"{name}: {'PASS' if check['passed'] else 'FAIL'}")
    return Figure(fig_id, f"{name}: distribution over the frames shown, percentiles and the acceptance "
                          f"threshold (red).", _png(fig))


def delay_series(fig_id: str, name: str, delay: dict, check: dict) -> Figure:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(9, 2.8))
    values = delay["per_frame"]["delay_ms"]
    ax.plot(delay["per_frame"]["frame"], values, ".-", markersize=3)
    threshold, top = check["threshold_ms"], max(values, default=0.0) * 1.1
    if threshold <= 2 * top:
        ax.axhline(threshold, color="tab:red", label="threshold")
        ax.legend(fontsize=8)
    else:
        ax.text(0.99, 0.95, f"threshold {threshold:.1f} ms ↑", transform=ax.transAxes, ha="right", va="top",
                color="tab:red", fontsize=8)
    ax.set_ylim(0, max(top, threshold * 1.05) if threshold <= 2 * top else top)
    ax.set_xlabel("frame")
    ax.set_ylabel(f"{name} (ms)")
    return Figure(fig_id, f"{name} of each frame shown, in order (frames never shown are counted in the "
                          f"table, not plotted).", _png(fig))


def delay_parts(fig_id: str, parts: dict[str, dict[str, float]]) -> Figure:
    """Stacked bars: the median of each part of the delay, per delay kind."""
    plt = _pyplot()
    kinds = [k for k, v in parts.items() if v]
    fig, ax = plt.subplots(figsize=(10, 1.2 + 0.6 * max(2, len(kinds))))
    colours = plt.get_cmap("tab20").colors
    for row, kind in enumerate(kinds):
        left = 0.0
        for k, (part, ms) in enumerate(parts[kind].items()):
            ax.barh(row, ms, left=left, color=colours[k % len(colours)], label=part if row == 0 else None)
            left += ms
    ax.set_yticks(range(len(kinds)), kinds)
    ax.set_xlabel("ms (median of each part)")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return Figure(fig_id, "Where the delay goes: the median of each part, from capture to the paint "
                          "(queues are waits between threads).", _png(fig))


def output_example(fig_id: str, shown: dict) -> Figure:
    """What the surgeon sees: one displayed frame beside its input."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(8, 4.2))
    for ax, (image, label) in zip(axes, ((shown["raw"], "input view"), (shown["displayed"], "displayed"))):
        ax.imshow(image)
        ax.set_title(label, fontsize=9)
        ax.axis("off")
    return Figure(fig_id, f"Frame {shown['index']} of the video as the surgeon sees it: the nerve mask and the "
                          f"text panel over the unchanged picture.", _png(fig))
