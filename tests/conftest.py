"""Shared fixtures. Qt tests run offscreen; engines are tiny real ONNX files."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


@pytest.fixture
def tiny_engines(tmp_path):
    """(gate.onnx, seg.onnx): tiny real ONNX engines with predictable rules."""
    from engine_fixtures import make_gate, make_segmenter

    return make_gate(tmp_path / "gate.onnx"), make_segmenter(tmp_path / "seg.onnx")


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
