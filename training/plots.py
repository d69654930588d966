"""PNG figures (matplotlib Agg, no torch): confusion matrix, ROC curves, training curves."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only: never open a window, works headless
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: str | Path) -> Path:
    path = Path(path)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    fig.clf()
    _pyplot().close(fig)
    return path


def confusion_png(cm, classes: Sequence[str], path: str | Path, title: str = "") -> Path:
    """Counts with the row-normalised fraction (per-class sensitivity on the diagonal)."""
    plt = _pyplot()
    cm = np.asarray(cm)
    rows = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(1.6 + 1.3 * len(classes), 1.2 + 1.2 * len(classes)))
    ax.imshow(rows, cmap="Blues", vmin=0, vmax=1)
    for (i, j), count in np.ndenumerate(cm):
        ax.text(j, i, f"{count}\n{rows[i, j]:.2f}", ha="center", va="center",
                color="white" if rows[i, j] > 0.6 else "black", fontsize=9)
    ax.set_xticks(range(len(classes)), classes, rotation=30, ha="right")
    ax.set_yticks(range(len(classes)), classes)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title or "confusion matrix")
    return _save(fig, path)


def roc_png(roc: dict[str, dict], aucs: dict[str, float], path: str | Path, title: str = "") -> Path:
    """One-vs-rest ROC per class; ``roc[name] = {"fpr": [...], "tpr": [...]}``."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5, 4.5))
    for name, curve in roc.items():
        auc = aucs.get(name)
        label = f"{name} (AUC {auc:.3f})" if auc is not None and auc == auc else f"{name} (AUC n/a)"
        ax.plot(curve["fpr"], curve["tpr"], label=label)
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":", linewidth=1)
    ax.set_xlabel("1 - specificity (FPR)")
    ax.set_ylabel("sensitivity (TPR)")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.01)
    ax.legend(loc="lower right", fontsize=8)
    ax.set_title(title or "ROC (one-vs-rest)")
    return _save(fig, path)


def pr_png(curves: dict[str, list], aps: dict[str, float], path: str | Path, title: str = "") -> Path:
    """Precision against recall per class; ``curves[name]`` holds the precision at recall
    0, 0.01, ..., 1 (COCO's interpolated points; None throughout for a class with no objects)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5, 4.5))
    for name, precision in curves.items():
        recall = np.linspace(0, 1, len(precision))
        values = np.array([np.nan if p is None else p for p in precision], dtype=float)
        ap = aps.get(name)
        label = f"{name} (AP50 {ap:.3f})" if ap is not None and ap >= 0 else f"{name} (AP50 n/a)"
        ax.plot(recall, values, label=label)
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.01)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper right", fontsize=8)
    ax.set_title(title or "precision-recall", fontsize=10)
    return _save(fig, path)


def curves_png(history: list[dict], metric: str, path: str | Path, title: str = "") -> Path:
    """Train/val loss and the val ``metric`` per epoch; a dotted line marks a phase change.

    ``history`` rows hold ``epoch``, ``phase``, ``train_loss``, ``val_loss``,
    ``train_<metric>`` (optional) and ``val_<metric>``.
    """
    plt = _pyplot()
    epochs = [row["epoch"] + 1 for row in history]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    left.plot(epochs, [row["train_loss"] for row in history], "o-", label="train")
    left.plot(epochs, [row["val_loss"] for row in history], "o-", label="val")
    left.set_ylabel("loss")
    for key in (f"train_{metric}", f"val_{metric}"):
        if all(key in row for row in history):
            right.plot(epochs, [row[key] for row in history], "o-", label=key.split("_")[0])
    right.set_ylabel(metric)
    for ax in (left, right):
        for before, after in zip(history, history[1:]):
            if before.get("phase") != after.get("phase"):
                ax.axvline(after["epoch"] + 0.5, color="grey", linestyle=":")
        ax.set_xlabel("epoch")
        ax.legend()
        ax.grid(alpha=0.3)
    fig.suptitle(title or f"training: loss and {metric}")
    return _save(fig, path)


def histogram_png(values: Sequence[float], path: str | Path, label: str, title: str = "") -> Path:
    """Distribution of per-image values in [0, 1] (e.g. IoU), with the mean marked."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.hist(values, bins=np.linspace(0, 1, 21), color="tab:blue", edgecolor="white")
    if len(values):
        ax.axvline(float(np.mean(values)), color="tab:red", label=f"mean {np.mean(values):.3f}")
        ax.legend()
    ax.set_xlabel(label)
    ax.set_ylabel("images")
    ax.set_title(title or f"per-image {label}")
    return _save(fig, path)


def reliability_png(curves: dict[str, dict], path: str | Path, title: str = "") -> Path:
    """Reliability diagram: accuracy against confidence per bin, one line per ``curves``
    entry (``{"label": engines.calibration.reliability(...)}``), the diagonal = perfect."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":", label="perfectly calibrated")
    for (label, r), colour in zip(curves.items(), ("tab:red", "tab:blue", "tab:green")):
        points = [(c, a) for c, a in zip(r["confidence"], r["accuracy"]) if c is not None]
        if points:
            xs, ys = zip(*points)
            ax.plot(xs, ys, marker="o", color=colour, label=f"{label} (ECE {r['ece']:.3f})")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("confidence (top class)")
    ax.set_ylabel("accuracy")
    ax.set_title(title or "reliability")
    ax.legend(loc="upper left", fontsize=8)
    return _save(fig, path)
