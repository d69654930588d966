"""``nerveseg quantize``: real ONNX Runtime static QDQ INT8 of the shipped sample engines,
calibrated on frames of the sample video through the pipeline's preprocessor, checked
against FP32 on a held-out synthetic set; metadata and provenance carried and extended;
a drop beyond the limit is refused; the input is never overwritten."""

from __future__ import annotations

import json
import shutil

import numpy as np
import onnx
import pytest
from fault_fixtures import REPO

from nerveseg.commands.cli import main
from nerveseg.engines.loader import load_engine
from nerveseg.engines.metadata import META_KEY, file_sha256

pytest.importorskip("onnx")
SAMPLES = REPO / "samples" / "models"
VIDEO = REPO / "samples" / "stereo_sample.mp4"


@pytest.fixture(scope="module")
def test_set(tmp_path_factory):
    """A small held-out synthetic set (seed 9001, as bench's): 60 gate images, 20 masks."""
    from nerveseg.commands.bench.formats import held_out_set

    folder = tmp_path_factory.mktemp("held-out")
    made, _ = held_out_set(None, per_class=20, seg_count=20)
    shutil.copytree(made, folder, dirs_exist_ok=True)
    shutil.rmtree(made)
    return folder


def _meta(path):
    props = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    return json.loads(props[META_KEY])


def _quantize(tmp_path, engine, *extra):
    out = tmp_path / f"{engine.stem}.int8.onnx"
    return out, main(["quantize", str(engine), "--out", str(out), "--calib", str(VIDEO), *extra])


@pytest.fixture(scope="module")
def int8_seg(tmp_path_factory, test_set):
    folder = tmp_path_factory.mktemp("int8")
    # 60 gate images: one image is 1.7 points, so the 0.5-point default (meant for the
    # command's own 300-image set) would judge one image's flip; allow two here.
    out, code = _quantize(folder, SAMPLES / "gate_seg.onnx", "--test-set", str(test_set), "--max-drop", "0.034")
    return out, code


def test_an_int8_engine_is_written_with_its_parent_metadata_extended(int8_seg, capsys):
    out, code = int8_seg
    assert code == 0 and out.is_file()
    parent, child = _meta(SAMPLES / "gate_seg.onnx"), _meta(out)
    for key in ("model", "task", "classes", "input_size", "mean", "std", "recipe_hash", "revision"):
        assert child[key] == parent[key], key
    extra = child["extra"]
    assert extra["precision"] == "int8"
    assert extra["parent"]["sha256"] == file_sha256(SAMPLES / "gate_seg.onnx")
    calib = extra["quantization"]["calibration"]
    assert calib["sha256"] == file_sha256(VIDEO) and calib["frames"] > 100
    assert extra["quantization"]["fp32_nodes"] and extra["quantization"]["method"] == "onnxruntime static QDQ"
    check = extra["accuracy_check"]
    assert check["passed"] and set(check["fp32"]) == {"gate_accuracy", "nerve_iou"}
    for key, drop in check["drop"].items():
        assert drop == pytest.approx(check["fp32"][key] - check["int8"][key], abs=1e-4)
        assert drop <= check["max_drop"][key]
    # really INT8: quantize/dequantize pairs around int8 weights, and a smaller file
    graph = onnx.load(str(out)).graph
    assert sum(n.op_type == "QuantizeLinear" for n in graph.node) > 20
    assert any(t.data_type == onnx.TensorProto.INT8 for t in graph.initializer)
    assert out.stat().st_size < 0.6 * (SAMPLES / "gate_seg.onnx").stat().st_size


@pytest.mark.parametrize("backend", ["onnxruntime", "openvino"])
def test_the_int8_engine_runs_and_agrees_with_fp32(int8_seg, backend):
    if backend == "openvino":
        pytest.importorskip("openvino")
    from nerveseg.realtime.sample_frames import load_frames

    out, _ = int8_seg
    frames = load_frames(VIDEO, (224, 224), 8)
    with load_engine(out, backend, task="gate_segment") as int8, \
            load_engine(SAMPLES / "gate_seg.onnx", "onnxruntime") as fp32:
        a, b = int8.run(frames), fp32.run(frames)
        assert (a["logits"].argmax(1) == b["logits"].argmax(1)).mean() >= 0.75
        agree = ((a["mask_logits"] > 0) == (b["mask_logits"] > 0)).mean()
        assert agree > 0.95


def test_a_drop_beyond_the_limit_is_refused_and_nothing_written(tmp_path, test_set, capsys):
    """Quantizing the gate's first convolution too (--keep-first 0) costs it tens of
    points on this set: refused, exit 1; with --keep-failed written and marked."""
    out, code = _quantize(tmp_path, SAMPLES / "gate.onnx", "--test-set", str(test_set), "--keep-first", "0",
                          "--calib-frames", "16", "--calib-every", "4")
    err = capsys.readouterr().err
    assert code == 1 and not out.exists()
    assert "not written: gate accuracy drops" in err and "more than 0.005" in err
    assert [p.name for p in tmp_path.iterdir()] == []  # no partial file left behind
    out, code = _quantize(tmp_path, SAMPLES / "gate.onnx", "--test-set", str(test_set), "--keep-first", "0",
                          "--calib-frames", "16", "--calib-every", "4", "--keep-failed")
    assert code == 1 and out.is_file()
    check = _meta(out)["extra"]["accuracy_check"]
    assert check["passed"] is False and check["failed"][0].startswith("gate accuracy drops")


def test_quantize_refuses_to_overwrite_its_input(tmp_path, capsys):
    engine = shutil.copy(SAMPLES / "unet.onnx", tmp_path / "unet.onnx")
    before = file_sha256(engine)
    code = main(["quantize", str(engine), "--out", str(engine), "--calib", str(VIDEO), "--exist-ok"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "unet.onnx" in err[0], err
    assert file_sha256(engine) == before


@pytest.mark.parametrize("argv, words", [
    (["{unet}", "--out", "{tmp}/a.onnx", "--calib", "{tmp}/nothing.mp4"], "nothing.mp4"),
    (["{unet}", "--out", "{tmp}/a.engine", "--calib", "{video}"], "--out must be an .onnx file"),
    (["{unet}", "--out", "{tmp}/a.onnx", "--calib", "{video}", "--max-drop", "2"], "--max-drop 2.0: must be within"),
    (["{tmp}/missing.onnx", "--out", "{tmp}/a.onnx", "--calib", "{video}"], "missing.onnx: engine file not found"),
    (["{unet}", "--out", "{tmp}/exists.onnx", "--calib", "{video}"], "exists.onnx"),
])
def test_bad_quantize_arguments_fail_in_one_line(tmp_path, capsys, argv, words):
    (tmp_path / "exists.onnx").write_bytes(b"keep me")
    values = {"unet": SAMPLES / "unet.onnx", "tmp": tmp_path, "video": VIDEO}
    code = main(["quantize", *[a.format(**values) for a in argv]])
    err = [line for line in capsys.readouterr().err.strip().splitlines() if not line.startswith("INFO ")]
    assert code == 2 and len(err) == 1 and words in err[0], err
    assert (tmp_path / "exists.onnx").read_bytes() == b"keep me" and not (tmp_path / "a.onnx").exists()


def test_an_int8_engine_is_not_quantized_again(int8_seg, tmp_path, capsys):
    out, _ = int8_seg
    code = main(["quantize", str(out), "--out", str(tmp_path / "again.onnx"), "--calib", str(VIDEO)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and "already int8; quantize its FP32 parent" in err[-1]
    assert np.all([not p.name.startswith("again") for p in tmp_path.iterdir()])


def test_the_output_tail_stays_fp32(int8_seg):
    """A segmenter's head convolution and the upsampling of its logits to the mask's size,
    and the gate's last layer, are left in FP32 (``--keep-last 1``): every graph output
    comes from an FP32 node, not from a dequantization of 8-bit logits."""
    out, _ = int8_seg
    kept = _meta(out)["extra"]["quantization"]["fp32_nodes"]
    graph = onnx.load(str(out)).graph
    made_by = {o: n for n in graph.node for o in n.output}
    for output in graph.output:
        node = made_by[output.name]
        assert node.op_type != "DequantizeLinear" and node.name in kept, (output.name, node.op_type)
    ops = {n.name: n.op_type for n in graph.node}
    assert {"Resize", "Conv", "Gemm"} <= {ops[name] for name in kept if name in ops}


def test_the_output_tail_walks_back_through_pass_on_ops_only(tmp_path):
    """Conv -> Add -> Resize -> Sigmoid -> output: the tail is Sigmoid and Resize; the
    addition is not the output's own and ends the walk (the Conv before it stays INT8).
    Conv -> Resize -> output with two weighted layers asked for: both convolutions."""
    from onnx import TensorProto, helper

    from nerveseg.commands.quantize import output_tail

    w = helper.make_tensor("w", TensorProto.FLOAT, [1, 1, 1, 1], [1.0])
    scales = helper.make_tensor("scales", TensorProto.FLOAT, [4], [1, 1, 2, 2])

    def model(nodes, name):
        graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 4, 4])],
                                  [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], [w, scales])
        path = tmp_path / name
        onnx.save(helper.make_model(graph), str(path))
        return path

    add = model([helper.make_node("Conv", ["x", "w"], ["c"], name="conv"),
                 helper.make_node("Add", ["c", "x"], ["a"], name="add"),
                 helper.make_node("Resize", ["a", "", "scales"], ["r"], name="resize"),
                 helper.make_node("Sigmoid", ["r"], ["y"], name="sigmoid")], "add.onnx")
    assert output_tail(add, 1) == ["sigmoid", "resize"]
    two = model([helper.make_node("Conv", ["x", "w"], ["c1"], name="conv1"),
                 helper.make_node("Conv", ["c1", "w"], ["c2"], name="conv2"),
                 helper.make_node("Resize", ["c2", "", "scales"], ["y"], name="resize")], "two.onnx")
    assert output_tail(two, 1) == ["resize", "conv2"]
    assert output_tail(two, 2) == ["resize", "conv2", "conv1"]
    assert output_tail(two, 0) == []
