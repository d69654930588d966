"""The OpenVINO backend (engines/openvino_backend.py) on the real runtime: the same .onnx
files and metadata as ONNX Runtime, the same refusals in the same words, outputs within
tolerance of ONNX Runtime's, the region keyword, offline, and ``--backend auto`` timing
it against ONNX Runtime and keeping the faster one."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest
from engine_fixtures import _image_input, make_gate, make_segmenter, save_onnx
from fault_fixtures import REPO
from onnx import TensorProto, helper, numpy_helper
from test_faults_engines import BAD_ENGINES
from video_fixtures import write_video

from nerveseg.commands.cli import main
from nerveseg.engines import backend_choice
from nerveseg.engines.environment import Environment, probe
from nerveseg.engines.loader import load_engine
from nerveseg.engines.metadata import EngineError, EngineMeta

pytest.importorskip("openvino")
from nerveseg.engines.openvino_backend import OpenVinoEngine, device_for  # noqa: E402

SAMPLES = REPO / "samples" / "models"
CPU_ONLY = Environment(None, "no CUDA device (no NVIDIA driver found)")


def make_region_segmenter(path, size: int = 32):
    """mask_logits = (channel mean - 200) / 10 inside ``region``, -10 outside."""
    consts = [numpy_helper.from_array(np.array(v, np.float32), n) for n, v in
              (("c", 200.0), ("s", 0.1), ("one", 1.0), ("ten", 10.0))]
    nodes = [
        helper.make_node("Cast", ["image"], ["f"], to=TensorProto.FLOAT),
        helper.make_node("ReduceMean", ["f"], ["g"], axes=[3], keepdims=1),
        helper.make_node("Sub", ["g", "c"], ["d"]),
        helper.make_node("Mul", ["d", "s"], ["l"]),
        helper.make_node("Cast", ["region"], ["rf"], to=TensorProto.FLOAT),
        helper.make_node("Min", ["rf", "one"], ["r"]),
        helper.make_node("Mul", ["l", "r"], ["inside"]),
        helper.make_node("Sub", ["r", "one"], ["out"]),
        helper.make_node("Mul", ["out", "ten"], ["outside"]),
        helper.make_node("Add", ["inside", "outside"], ["m"]),
        helper.make_node("Transpose", ["m"], ["mask_logits"], perm=[0, 3, 1, 2]),
    ]
    region = helper.make_tensor_value_info("region", TensorProto.UINT8, ["N", size, size, 1])
    out = helper.make_tensor_value_info("mask_logits", TensorProto.FLOAT, ["N", 1, size, size])
    graph = helper.make_graph(nodes, "tiny_region", [_image_input(size), region], [out], consts)
    meta = EngineMeta(model="tiny_region", task="region_segment", classes=("background", "nerve"),
                      input_size=(size, size))
    return save_onnx(graph, meta, path)


def _frames(size, n=4, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, size, size, 3), dtype=np.uint8)


@pytest.mark.parametrize("name, task", [("gate", "classify"), ("unet", "segment"), ("gate_seg", "gate_segment")])
def test_the_sample_engines_run_on_openvino_within_tolerance_of_onnx_runtime(name, task):
    path = SAMPLES / f"{name}.onnx"
    with load_engine(path, "openvino", task=task) as ov, load_engine(path, "onnxruntime", task=task) as ort:
        assert ov.meta == ort.meta and ov.provenance.sha256 == ort.provenance.sha256
        assert ov.provenance.backend == "openvino" and ov.provenance.device.startswith("cpu:")
        frames = _frames(ov.input_size[0])
        a, b = ov.run(frames), ort.run(frames)
        assert set(a) == set(b)
        for key in a:
            assert a[key].shape == b[key].shape and a[key].dtype == np.float32
            # f32 on CPUs without BF16; BF16 where the plugin chooses it is looser
            tol = 1e-3 if ov.provenance.device.endswith("f32") else 0.25
            assert np.abs(a[key] - b[key]).max() < tol * max(1.0, np.abs(b[key]).max())
        if "mask_logits" in a:
            same = (a["mask_logits"] > 0) == (b["mask_logits"] > 0)
            assert same.mean() > 0.999
        if "logits" in a:
            assert (a["logits"].argmax(1) == b["logits"].argmax(1)).all()


def test_outputs_are_fresh_arrays_the_caller_may_keep(tiny_engines):
    with load_engine(tiny_engines[1], "openvino", task="segment") as seg:
        bright = seg.run(np.full((1, 32, 32, 3), 250, np.uint8))["mask_logits"]
        kept = bright.copy()
        seg.run(np.zeros((1, 32, 32, 3), np.uint8))
        assert np.array_equal(bright, kept) and bright.min() > 0


def test_region_engine_segments_inside_the_region_only(tmp_path):
    path = make_region_segmenter(tmp_path / "region.onnx")
    bright = np.full((2, 32, 32, 3), 250, np.uint8)
    region = np.zeros((2, 32, 32), np.uint8)
    region[:, 8:16, 8:16] = 255
    with load_engine(path, "openvino", task="region_segment") as ov, load_engine(path, "onnxruntime") as ort:
        whole = ov.run(bright)["mask_logits"]
        part = ov.run(bright, region=region)["mask_logits"]
        assert (whole > 0).all()
        assert ((part[:, 0] > 0) == (region > 0)).all()
        assert np.allclose(part, ort.run(bright, region=region)["mask_logits"], atol=1e-4)
        with pytest.raises(ValueError, match="does not fit the batch"):
            ov.run(bright, region=region[:1])


def test_an_engine_without_a_region_input_refuses_a_region(tiny_engines):
    with load_engine(tiny_engines[1], "openvino", task="segment") as seg:
        batch = np.zeros((1, 32, 32, 3), np.uint8)
        assert seg.run(batch, region=None)["mask_logits"].shape == (1, 1, 32, 32)
        with pytest.raises(ValueError, match=r"engine \(openvino\) takes no region input"):
            seg.run(batch, region=np.ones((1, 32, 32), np.uint8))


@pytest.mark.parametrize("case", sorted(BAD_ENGINES))
def test_bad_engine_file_is_refused_by_openvino_in_the_same_one_line(tmp_path, case, capsys):
    """The ONNX Runtime backend's refusals (tests/test_faults_engines.py), word for word."""
    which, spoil, expected = BAD_ENGINES[case]
    gate, seg = make_gate(tmp_path / "gate.onnx"), make_segmenter(tmp_path / "seg.onnx")
    spoil(gate if which == "gate" else seg)
    video = write_video(tmp_path / "in.mp4", frames=3)
    code = main(["replay", str(video), "--out", str(tmp_path / "o.avi"), "--gate", str(gate), "--seg", str(seg),
                 "--backend", "openvino", "--no-progress"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and expected in err[0] and f"{which}.onnx" in err[0], err


def test_a_file_without_nerveseg_metadata_is_refused(tmp_path):
    bare = make_segmenter(tmp_path / "bare.onnx", meta=False)
    with pytest.raises(EngineError, match=r"bare\.onnx: ONNX file has no nerveseg metadata"):
        OpenVinoEngine(bare)


def test_replay_with_openvino_names_it_in_the_summary(tmp_path, tiny_engines):
    video = write_video(tmp_path / "in.mp4", frames=6)
    out = tmp_path / "o.avi"
    assert main(["replay", str(video), "--out", str(out), "--gate", str(tiny_engines[0]), "--seg",
                 str(tiny_engines[1]), "--backend", "openvino", "--no-progress"]) == 0
    summary = json.loads(out.with_suffix(".json").read_text())
    assert summary["frames"] == 6
    for stage in ("gate", "segment"):
        said = summary["nerveseg"]["engines"][stage]
        assert said["backend"] == "openvino" and said["reason"] == "requested" and said["device"].startswith("cpu:")


def test_the_gpu_plugin_is_used_only_where_openvino_lists_a_gpu():
    assert device_for(["CPU"]) == "CPU"
    assert device_for(["CPU", "GPU"]) == "GPU" and device_for(["CPU", "GPU.0", "GPU.1"]) == "GPU"
    assert device_for(["CPU", "NPU"]) == "CPU"
    assert Environment(openvino="2026.4.1", openvino_devices=("CPU", "GPU.0")).openvino_device() == "Intel GPU"
    # this machine: whatever the runtime lists decides, and the provenance says which plugin ran
    with OpenVinoEngine(SAMPLES / "gate.onnx") as gate:
        assert gate.provenance.device.split(":")[0] == device_for(probe().openvino_devices).lower()


def test_openvino_writes_nothing_under_home_and_starts_no_telemetry(tmp_path, tiny_engines):
    """Plain ``import openvino`` writes a client id under ~/intel and sends an event (its
    converter's telemetry); through nerveseg the converter gets its no-op stub instead."""
    home = tmp_path / "home"
    home.mkdir()
    code = ("import sys, numpy as np\nfrom nerveseg.engines.loader import load_engine\n"
            "e = load_engine(sys.argv[1], 'openvino')\ne.run(np.zeros((1, 32, 32, 3), np.uint8))\n"
            "import openvino.tools.ovc.telemetry_utils as used\n"
            "from openvino_telemetry.main import Telemetry\n"
            "print(used.tm.__name__, Telemetry._SingletonMetaClass__single_instance)")
    env = {k: v for k, v in os.environ.items() if k not in ("NERVESEG_ENGINE_CACHE", "CI")}
    env.update(HOME=str(home), XDG_CACHE_HOME=str(home / ".cache"))
    result = subprocess.run([sys.executable, "-c", code, str(tiny_engines[1])], env=env, cwd=REPO,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["openvino.tools.ovc.telemetry_stub", "None"]
    assert [p for p in home.rglob("*") if p.is_file()] == []


def test_auto_keeps_the_backend_with_the_lower_median_of_that_same_measurement(tmp_path):
    path = SAMPLES / "unet.onnx"
    loaded = []

    def load(name):
        loaded.append(name)
        return load_engine(path, name, task="segment")

    engine, reason, figures = backend_choice.fastest(path, ["openvino", "onnxruntime"], 0, load)
    assert set(figures) == {"openvino", "onnxruntime"} and loaded == ["openvino", "onnxruntime"]
    assert engine.provenance.backend == min(figures, key=figures.get)
    for name, label in backend_choice.LABELS.items():
        assert f"{label} {figures[name]:.2f} ms" in reason
    # a second start reads the decision back and loads only the winner
    loaded.clear()
    again, reason2, figures2 = backend_choice.fastest(path, ["openvino", "onnxruntime"], 0, load)
    assert loaded == [engine.provenance.backend] and figures2 == figures and "cached measurement" in reason2
    cached = json.loads(backend_choice.cache_path().read_text())
    assert [e["winner"] for e in cached.values()] == [engine.provenance.backend]


def test_auto_on_this_cpu_measures_both_and_says_the_figures(tiny_engines):
    env = probe()
    if env.gpu is not None:
        pytest.skip("a CUDA device here: auto takes the GPU backends first")
    gate = load_engine(tiny_engines[0], "auto", task="classify")
    reason = gate.provenance.reason
    assert reason.startswith("auto: no CUDA device") and "the fastest here" in reason, reason
    ms = {label: float(value) for label, value in re.findall(r"(OpenVINO|ONNX Runtime) ([\d.]+) ms", reason)}
    assert set(ms) == {"OpenVINO", "ONNX Runtime"}, reason
    chosen = backend_choice.LABELS[gate.provenance.backend]
    assert ms[chosen] == min(ms.values())
    # without OpenVINO there is nothing to compare: ONNX Runtime, no measurement
    plain = load_engine(tiny_engines[0], "auto", task="classify", env=CPU_ONLY)
    assert plain.provenance.backend == "onnxruntime" and "measured" not in plain.provenance.reason


def test_an_unreadable_choice_cache_is_measured_again_and_rewritten(tiny_engines):
    backend_choice.cache_path().parent.mkdir(parents=True, exist_ok=True)
    backend_choice.cache_path().write_text("{not json")
    engine = load_engine(tiny_engines[1], "auto", task="segment")
    assert "measured here" in engine.provenance.reason or probe().gpu is not None
    if probe().gpu is None:
        assert len(json.loads(backend_choice.cache_path().read_text())) == 1


def test_a_runtime_that_refuses_the_graph_leaves_the_other_and_is_named(tmp_path):
    """An ONNX Runtime contrib op (com.microsoft Inverse) that OpenVINO does not know:
    auto keeps ONNX Runtime and says why OpenVINO is not in the measurement."""
    eye = numpy_helper.from_array(np.eye(32, dtype=np.float32), "eye")
    nodes = [helper.make_node("Cast", ["image"], ["f"], to=TensorProto.FLOAT),
             helper.make_node("ReduceMean", ["f"], ["g"], axes=[3], keepdims=1),
             helper.make_node("Transpose", ["g"], ["t"], perm=[0, 3, 1, 2]),
             helper.make_node("Add", ["t", "eye"], ["m"]),
             helper.make_node("Inverse", ["m"], ["mask_logits"], domain="com.microsoft")]
    out = helper.make_tensor_value_info("mask_logits", TensorProto.FLOAT, ["N", 1, 32, 32])
    graph = helper.make_graph(nodes, "contrib", [_image_input(32)], [out], [eye])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17),
                                                    helper.make_opsetid("com.microsoft", 1)])
    model.ir_version = 8
    meta = EngineMeta(model="contrib", task="segment", classes=("background", "nerve"), input_size=(32, 32))
    model.metadata_props.add(key="nerveseg", value=meta.to_json())
    path = tmp_path / "contrib.onnx"
    path.write_bytes(model.SerializeToString())
    try:
        OpenVinoEngine(path).close()
        pytest.skip("this OpenVINO reads com.microsoft FastGelu: nothing to refuse")
    except EngineError:
        pass
    engine, reason, figures = backend_choice.fastest(path, ["openvino", "onnxruntime"], 0,
                                                     lambda n: load_engine(path, n, task="segment"))
    assert engine.provenance.backend == "onnxruntime" and list(figures) == ["onnxruntime"]
    assert "OpenVINO could not load it (" in reason and "contrib.onnx" in reason
    assert "No conversion rule found for operations: com.microsoft.Inverse" in reason
    assert not backend_choice.cache_path().exists()  # measured again once the install is fixed


def test_a_corrupt_file_is_one_line_on_the_real_stderr(tmp_path):
    """Through OpenVINO's ONNX frontend only: the other frontends it would try on a file
    it cannot parse (TensorFlow's) write their own errors straight to the process's stderr."""
    gate = make_gate(tmp_path / "gate.onnx")
    data = bytearray(gate.read_bytes())
    data[int(len(data) * 0.35):int(len(data) * 0.35) + 64] = b"\xff" * 64
    gate.write_bytes(bytes(data))
    video = write_video(tmp_path / "in.mp4", frames=3)
    result = subprocess.run([sys.executable, "-m", "nerveseg.commands.cli", "replay", str(video), "--out",
                             str(tmp_path / "o.avi"), "--gate", str(gate), "--seg",
                             str(make_segmenter(tmp_path / "seg.onnx")), "--backend", "openvino", "--no-progress"],
                            cwd=REPO, capture_output=True, text=True, timeout=120)
    lines = [line for line in result.stderr.splitlines() if line.strip() and not line.startswith("INFO ")]
    assert result.returncode == 2 and len(lines) == 1, result.stderr
    assert "gate.onnx: not a loadable ONNX model" in lines[0]


def test_an_instance_engine_is_refused_and_auto_keeps_onnx_runtime(tmp_path):
    """Mask R-CNN engines: OpenVINO turned "no detection" into one garbage detection
    (tests/test_instance.py caught it), so it refuses them and auto says why."""
    outputs = {"boxes": (TensorProto.FLOAT, np.zeros((0, 4), np.float32)),
               "labels": (TensorProto.INT64, np.zeros((0,), np.int64)),
               "scores": (TensorProto.FLOAT, np.zeros((0,), np.float32)),
               "masks": (TensorProto.FLOAT, np.zeros((0, 1, 28, 28), np.float32))}
    nodes = [helper.make_node("Cast", ["image"], ["f"], to=TensorProto.FLOAT),
             helper.make_node("ReduceMax", ["f"], ["peak"], keepdims=0)]
    nodes += [helper.make_node("Identity", [f"{name}_none"], [name]) for name in outputs]
    graph = helper.make_graph(
        nodes, "no_detections", [_image_input(32)],
        [helper.make_tensor_value_info(n, t, list(v.shape)) for n, (t, v) in outputs.items()],
        [numpy_helper.from_array(v, f"{n}_none") for n, (_, v) in outputs.items()])
    meta = EngineMeta(model="none", task="instance", classes=("background", "nerve"), input_size=(32, 32))
    path = save_onnx(graph, meta, tmp_path / "instance.onnx")
    with pytest.raises(EngineError, match=r"instance\.onnx: the OpenVINO backend does not run 'instance' engines"):
        load_engine(path, "openvino", task="instance")
    if probe().gpu is None:
        engine = load_engine(path, "auto", task="instance")
        assert engine.provenance.backend == "onnxruntime" and "OpenVINO could not load it" in engine.provenance.reason
        assert engine.run(np.zeros((1, 32, 32, 3), np.uint8))["scores"].shape == (0,)


def test_openvino_divides_the_gate_logits_by_the_temperature(tmp_path):
    """The calibration every backend applies (engines/calibration.py), here too."""
    from test_calibration import calibrated_gate

    plain, calibrated = calibrated_gate(tmp_path, 2.0, None)
    frames = np.random.default_rng(0).integers(0, 256, (4, 32, 32, 3), dtype=np.uint8)
    raw = load_engine(plain, "openvino").run(frames)["logits"]
    cal = load_engine(calibrated, "openvino")
    assert cal.calibration.temperature == 2.0
    np.testing.assert_allclose(cal.run(frames)["logits"], raw / 2.0, rtol=1e-5)
    np.testing.assert_allclose(raw, load_engine(plain, "onnxruntime").run(frames)["logits"], rtol=1e-4, atol=1e-4)
