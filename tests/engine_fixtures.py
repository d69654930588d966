"""Tiny hand-built ONNX engines with real nerveseg metadata, for fast pipeline tests.

They run in real ONNX Runtime sessions and follow the engine I/O contract exactly
(``image`` uint8 NHWC in; ``logits`` / ``mask_logits`` out) with simple, predictable
rules, so a test can make a frame "nerve" or not by its brightness:

* gate: the mean brightness of the view decides; bright (> ~128) → ``nerve``,
  dark → ``opening_wound``.
* segmenter: a pixel is nerve where its channel mean is above 200.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from nerveseg.engines.metadata import META_KEY, EngineMeta

GATE_CLASSES = ("nerve", "opening_wound", "tendon")


def save_onnx(graph, meta: EngineMeta | None, path: Path) -> Path:
    """``graph`` as a checked opset-17 model with nerveseg metadata (unless ``meta`` is None)."""
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    if meta is not None:
        model.metadata_props.add(key=META_KEY, value=meta.to_json())
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def _image_input(size: int):
    return helper.make_tensor_value_info("image", TensorProto.UINT8, ["N", size, size, 3])


def make_gate(path: Path, size: int = 32, meta: bool = True, task: str = "classify") -> Path:
    """logits = [m - 128, 128 - m, -50] scaled, where m is the mean pixel value."""
    w = numpy_helper.from_array(np.array([[0.1, -0.1, 0.0]] * 3, np.float32) / 3.0, "w")
    b = numpy_helper.from_array(np.array([-12.8, 12.8, -5.0], np.float32), "b")
    nodes = [
        helper.make_node("Cast", ["image"], ["f"], to=TensorProto.FLOAT),
        helper.make_node("ReduceMean", ["f"], ["m"], axes=[1, 2], keepdims=0),
        helper.make_node("MatMul", ["m", "w"], ["mw"]),
        helper.make_node("Add", ["mw", "b"], ["logits"]),
    ]
    out = helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 3])
    graph = helper.make_graph(nodes, "tiny_gate", [_image_input(size)], [out], [w, b])
    m = EngineMeta(model="tiny_gate", task=task, classes=GATE_CLASSES, input_size=(size, size),
                   recipe_hash="test", revision="test")
    return save_onnx(graph, m if meta else None, path)


def make_segmenter(path: Path, size: int = 32, meta: bool = True) -> Path:
    """mask_logits = (channel mean - 200) / 10, as (N, 1, H, W)."""
    c = numpy_helper.from_array(np.array(200.0, np.float32), "c")
    s = numpy_helper.from_array(np.array(0.1, np.float32), "s")
    nodes = [
        helper.make_node("Cast", ["image"], ["f"], to=TensorProto.FLOAT),
        helper.make_node("ReduceMean", ["f"], ["g"], axes=[3], keepdims=1),
        helper.make_node("Sub", ["g", "c"], ["d"]),
        helper.make_node("Mul", ["d", "s"], ["l"]),
        helper.make_node("Transpose", ["l"], ["mask_logits"], perm=[0, 3, 1, 2]),
    ]
    out = helper.make_tensor_value_info("mask_logits", TensorProto.FLOAT, ["N", 1, size, size])
    graph = helper.make_graph(nodes, "tiny_seg", [_image_input(size)], [out], [c, s])
    m = EngineMeta(model="tiny_unet", task="segment", classes=("background", "nerve"),
                   input_size=(size, size), recipe_hash="test", revision="test")
    return save_onnx(graph, m if meta else None, path)
