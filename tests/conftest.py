"""Shared fixtures. Qt tests run offscreen; engines are tiny real ONNX files."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
# The suite trains and exports from whatever working tree it runs in (uncommitted work
# included): exports are allowed and marked dirty. tests/test_rebuildable.py unsets it.
os.environ.setdefault("NERVESEG_ALLOW_DIRTY", "1")


@pytest.fixture
def tiny_engines(tmp_path):
    """(gate.onnx, seg.onnx): tiny real ONNX engines with predictable rules."""
    from engine_fixtures import make_gate, make_segmenter

    return make_gate(tmp_path / "gate.onnx"), make_segmenter(tmp_path / "seg.onnx")


@pytest.fixture(scope="module")
def one_torch_thread():
    """One torch thread for a module's tiny models: on a shared two-core machine two
    spinning OpenMP threads took four times as long. Use as ``pytestmark``."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# --- training: tiny datasets (the synthetic generator makes the real ones) --------------


def _train_band(size: int, rng: np.random.Generator, width: float) -> np.ndarray:
    """A bool ``(size, size)`` mask of a straight band at a random angle and offset."""
    yy, xx = np.mgrid[:size, :size].astype(np.float64)
    angle = rng.uniform(0, np.pi)
    offset = rng.uniform(-0.2, 0.2) * size
    distance = (xx - size / 2) * np.sin(angle) - (yy - size / 2) * np.cos(angle) - offset
    return np.abs(distance) < width / 2


def _train_tissue(size: int, rng: np.random.Generator) -> np.ndarray:
    """Grey noisy background, ``(size, size) float``."""
    return 90 + 15 * rng.standard_normal((size, size))


def _train_write_rgb(path: Path, grey: np.ndarray) -> None:
    import cv2

    path.parent.mkdir(parents=True, exist_ok=True)
    image = np.clip(grey, 0, 255).astype(np.uint8)
    cv2.imwrite(str(path), np.repeat(image[..., None], 3, axis=2))


def write_gate_data(root: Path, seed: int, per_class: int = 12) -> Path:
    """``root/<class>/*.png``, 48 px: nerve band / dark blobs / wide band, drawn from ``seed``."""
    rng = np.random.default_rng(seed)
    size = 48
    for index in range(per_class):
        grey = _train_tissue(size, rng)
        grey[_train_band(size, rng, 4)] = 230
        _train_write_rgb(root / "nerve" / f"n{index:02d}.png", grey)
        grey = _train_tissue(size, rng)
        for _ in range(3):
            y, x = rng.integers(8, size - 8, 2)
            grey[y - 5:y + 5, x - 5:x + 5] = 15
        _train_write_rgb(root / "opening_wound" / f"w{index:02d}.png", grey)
        grey = _train_tissue(size, rng)
        grey[_train_band(size, rng, 16)] = 190
        _train_write_rgb(root / "tendon" / f"t{index:02d}.png", grey)
    return root


def write_seg_data(root: Path, seed: int, per_dataset: int = 10) -> Path:
    """Supervisely ``root/<ds>/img`` + ``masks_machine`` (0/1), 48 px, two datasets, from ``seed``."""
    import cv2

    rng = np.random.default_rng(seed)
    size = 48
    for ds in ("clip_a", "clip_b"):
        (root / ds / "masks_machine").mkdir(parents=True)
        for index in range(per_dataset):
            mask = _train_band(size, rng, 5)
            grey = _train_tissue(size, rng)
            grey[mask] = 220
            _train_write_rgb(root / ds / "img" / f"f{index:03d}.png", grey)
            cv2.imwrite(str(root / ds / "masks_machine" / f"f{index:03d}.png"), mask.astype(np.uint8))
    return root


@pytest.fixture(scope="session")
def training_gate_data(tmp_path_factory) -> Path:
    """``DATA/<class>/*.png``, 48 px, 12 images per class (nerve band / dark blobs / wide band)."""
    return write_gate_data(tmp_path_factory.mktemp("gate_data"), seed=7)


@pytest.fixture(scope="session")
def training_seg_data(tmp_path_factory) -> Path:
    """Supervisely ``DATA/<ds>/img`` + ``masks_machine`` (0/1), 48 px, two datasets of 10."""
    return write_seg_data(tmp_path_factory.mktemp("seg_data"), seed=11)


@pytest.fixture(scope="session")
def heldout_set(tmp_path_factory) -> Path:
    """``classify/`` and ``segment/`` as the two sets above, drawn from other seeds: images the
    tiny training runs never learned from (an engine is not scored on those: training/seen.py)."""
    root = tmp_path_factory.mktemp("heldout")
    write_gate_data(root / "classify", seed=107, per_class=6)
    write_seg_data(root / "segment", seed=111, per_dataset=5)
    return root


# --- GPU tests and the TensorRT engine cache (issue 4) -----------------------------

def gpu_skip_reason() -> str | None:
    """Why TensorRT tests cannot run here (None: they can). One probe per session."""
    from nerveseg.engines.environment import probe

    problem = probe().tensorrt_problem()
    return f"needs an NVIDIA GPU with TensorRT and cuda-python: {problem}" if problem else None


def pytest_collection_modifyitems(config, items):
    """Skip every ``@pytest.mark.gpu`` test, with the reason, where TensorRT cannot run."""
    gpu_items = [item for item in items if "gpu" in item.keywords]
    reason = gpu_skip_reason() if gpu_items else None
    if reason:
        for item in gpu_items:
            item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture(autouse=True)
def _engine_cache(tmp_path, monkeypatch):
    """Each test gets its own TensorRT engine cache, never the user's ~/.cache."""
    monkeypatch.setenv("NERVESEG_ENGINE_CACHE", str(tmp_path / "engine-cache"))


# Tiny, fast training settings shared by the training/export tests.
TRAINING_TINY = ["--size", "32", "--width", "0.25", "--batch-size", "8", "--threads", "1"]


def _training_cli(*argv: str) -> None:
    from nerveseg.commands.cli import main

    assert main(list(argv)) == 0


@pytest.fixture(scope="session")
def training_gate_run(training_gate_data, tmp_path_factory) -> Path:
    """Run folder of a 2-epoch, 32 px gate training (best.pt, last.pt, splits/, curves.png)."""
    out = tmp_path_factory.mktemp("gate_run")
    _training_cli("train", "gate", str(training_gate_data), "--out", str(out), "--epochs", "2",
                  *TRAINING_TINY)
    return out


@pytest.fixture(scope="session")
def training_seg_run(training_seg_data, tmp_path_factory) -> Path:
    """Run folder of a 2-epoch, 32 px U-Net training on :func:`training_seg_data`."""
    out = tmp_path_factory.mktemp("seg_run")
    _training_cli("train", "seg", str(training_seg_data), "--out", str(out), "--epochs", "2",
                  "--lr", "3e-3", *TRAINING_TINY)
    return out
