"""Shared by the instance tests: a tiny synthetic set, one tiny Mask R-CNN run and its ONNX
engine (made once per session however many test modules ask), and hand-built engines.

Kept out of conftest.py (another engineer's file); imported by ``tests/test_instance*.py``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from nerveseg.engines.metadata import EngineMeta

SIZE = 64
CLASSES = ("background", "nerve", "vessel", "tendon")
_MADE: dict[str, Path] = {}
# A few iterations of the light model at 64 px, one thread (two threads on two shared
# cores spend most of their time waiting on each other).
TINY = ["--size", str(SIZE), "--width", "0.5", "--batch-size", "2", "--threads", "1", "--warmup", "2",
        "--max-iters", "2"]


def _once(key: str, make) -> Path:
    if key not in _MADE:
        _MADE[key] = make()
    return _MADE[key]


@pytest.fixture
def instance_data(tmp_path_factory) -> Path:
    """``nerveseg synth instances`` at 64 px, 10 images (``coco/`` and ``folders/``)."""
    def make() -> Path:
        from nerveseg.training.synth.instances import write_instances

        root = tmp_path_factory.mktemp("instance_data")
        write_instances(root, 10, SIZE, seed=5, progress=False)
        return root

    return _once("data", make)


@pytest.fixture
def instance_run(instance_data, tmp_path_factory) -> Path:
    """Run folder of a 2-epoch, 2-iterations-per-epoch training from the COCO set."""
    def make() -> Path:
        from nerveseg.commands.cli import main

        out = tmp_path_factory.mktemp("instance_run")
        assert main(["train", "instance", str(instance_data / "coco"), "--out", str(out), "--epochs", "2",
                     *TINY]) == 0
        return out

    return _once("run", make)


@pytest.fixture
def instance_onnx(instance_run) -> Path:
    """The tiny run's best.pt through the export chain."""
    def make() -> Path:
        from nerveseg.training.exporters import export

        export(instance_run / "best.pt", instance_run / "maskrcnn.onnx")
        return instance_run / "maskrcnn.onnx"

    return _once("onnx", make)


def make_constant_instances(path: Path, boxes, labels, scores, size: int = SIZE) -> Path:
    """An ``instance`` engine that answers every frame with the same instances: ``boxes``
    (input pixels), ``labels``, ``scores``, and full-box masks (all ones inside the box)."""
    k = len(scores)
    values = {"boxes": np.asarray(boxes, np.float32).reshape(k, 4), "labels": np.asarray(labels, np.int64),
              "scores": np.asarray(scores, np.float32), "masks": np.ones((k, 1, 28, 28), np.float32)}
    # Each output is a constant plus 0 × (a reduction of the image), so the graph uses its input.
    nodes = [helper.make_node("Cast", ["image"], ["f"], to=TensorProto.FLOAT),
             helper.make_node("ReduceMax", ["f"], ["m"], keepdims=0),
             helper.make_node("Mul", ["m", "zero"], ["z"])]
    inits = [numpy_helper.from_array(np.array(0.0, np.float32), "zero")]
    outputs = []
    for name, value in values.items():
        inits.append(numpy_helper.from_array(value, f"{name}_c"))
        if value.dtype == np.int64:
            nodes += [helper.make_node("Cast", ["z"], [f"{name}_z"], to=TensorProto.INT64),
                      helper.make_node("Add", [f"{name}_c", f"{name}_z"], [name])]
        else:
            nodes.append(helper.make_node("Add", [f"{name}_c", "z"], [name]))
        elem = TensorProto.INT64 if value.dtype == np.int64 else TensorProto.FLOAT
        outputs.append(helper.make_tensor_value_info(name, elem, list(value.shape)))
    from engine_fixtures import save_onnx

    image = helper.make_tensor_value_info("image", TensorProto.UINT8, [1, size, size, 3])
    meta = EngineMeta(model="constant_instances", task="instance", classes=CLASSES, input_size=(size, size),
                      recipe_hash="test", revision="test")
    return save_onnx(helper.make_graph(nodes, "constant_instances", [image], outputs, inits), meta, path)


def make_always_nerve_gate(path: Path, size: int = 32) -> Path:
    """A gate that calls every frame nerve (the synthetic frames are darker than the tiny
    test gate's brightness rule)."""
    from engine_fixtures import GATE_CLASSES, save_onnx

    logits = numpy_helper.from_array(np.array([[9.0, 0.0, 0.0]], np.float32), "c")
    nodes = [helper.make_node("Cast", ["image"], ["f"], to=TensorProto.FLOAT),
             helper.make_node("ReduceMean", ["f"], ["m"], axes=[1, 2], keepdims=0),  # (N, 3)
             helper.make_node("Mul", ["m", "zero"], ["z"]),
             helper.make_node("Add", ["c", "z"], ["logits"])]
    zero = numpy_helper.from_array(np.array(0.0, np.float32), "zero")
    image = helper.make_tensor_value_info("image", TensorProto.UINT8, ["N", size, size, 3])
    out = helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 3])
    meta = EngineMeta(model="always_nerve", task="classify", classes=GATE_CLASSES, input_size=(size, size),
                      recipe_hash="test", revision="test")
    return save_onnx(helper.make_graph(nodes, "always_nerve", [image], [out], [logits, zero]), meta, path)
