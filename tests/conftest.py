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
