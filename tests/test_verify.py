"""``nerveseg verify`` on CPU engines: identical engines pass, perturbed copies fail the
thresholds they should, and reports carry the numbers and per-engine timings."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from nerveseg.engines.base import Engine
from nerveseg.engines.loader import load_engine
from nerveseg.engines.metadata import Provenance
from nerveseg.engines.sample_frames import synthetic_frames
from nerveseg.realtime.sample_frames import load_frames
from nerveseg.engines.verify import Thresholds, compare, format_report
from nerveseg.commands.cli import main


def perturbed(src, dst, name, delta):
    """A copy of the ONNX file ``src`` with initializer ``name`` shifted by ``delta``
    (metadata kept: the copy is a valid, slightly different engine)."""
    model = onnx.load(str(src))
    for i, init in enumerate(model.graph.initializer):
        if init.name == name:
            model.graph.initializer[i].CopyFrom(numpy_helper.from_array(numpy_helper.to_array(init) + delta, name))
    onnx.save(model, str(dst))
    return dst


def verify(*args):
    return main(["verify", *map(str, args)])


def test_an_engine_agrees_with_itself(tiny_engines, tmp_path, capsys):
    gate, seg = tiny_engines
    report_path = tmp_path / "r.json"
    assert verify(seg, seg, "--n", 12, "--json", report_path) == 0
    assert "PASS" in capsys.readouterr().out
    report = json.loads(report_path.read_text())
    assert report["ok"] and report["mask_iou"] == 1.0 and report["max_abs_diff"] == {"mask_logits": 0.0}
    assert report["frames"] == 12 and report["gate_agreement"] is None
    assert report["a"]["backend"] == "onnxruntime" and {"mean", "p50", "p95"} <= report["ms"]["b"].keys()
    assert verify(gate, gate, "--n", 12) == 0


def test_a_perturbed_segmenter_fails_the_iou_threshold(tiny_engines, tmp_path, capsys):
    seg = tiny_engines[1]
    # Threshold 200 → 206 in channel-mean units: every pixel between the two flips.
    shifted = perturbed(seg, tmp_path / "shifted.onnx", "c", 6.0)
    report_path = tmp_path / "r.json"
    assert verify(seg, shifted, "--n", 16, "--json", report_path) == 1
    out = capsys.readouterr().out
    assert "FAIL: mask IoU" in out
    report = json.loads(report_path.read_text())
    assert report["mask_iou"] < 0.98 and report["max_abs_diff"]["mask_logits"] == pytest.approx(0.6, abs=1e-4)
    # The same pair passes a loose IoU threshold: the thresholds are options.
    assert verify(seg, shifted, "--n", 16, "--min-iou", 0.1) == 0


def test_a_tiny_perturbation_passes_iou_but_not_a_strict_logit_bound(tiny_engines, tmp_path):
    seg = tiny_engines[1]
    nudged = perturbed(seg, tmp_path / "nudged.onnx", "c", 0.001)
    assert verify(seg, nudged, "--n", 16) == 0
    assert verify(seg, nudged, "--n", 16, "--max-diff", 1e-6) == 1


def test_a_perturbed_gate_fails_the_agreement_threshold(tiny_engines, tmp_path, capsys):
    gate = tiny_engines[0]
    # Moves the nerve/wound decision from brightness 128 to 150: frames in between flip.
    biased = perturbed(gate, tmp_path / "biased.onnx", "b", np.array([-2.2, 2.2, 0.0], np.float32))
    assert verify(gate, biased, "--n", 64) == 1
    assert "FAIL: gate agreement" in capsys.readouterr().out


def test_verify_reads_frames_from_a_video_through_the_pipeline_preprocessing(tiny_engines, tmp_path, capsys):
    from video_fixtures import write_video

    video = write_video(tmp_path / "in.mp4", frames=10)
    report_path = tmp_path / "r.json"
    assert verify(tiny_engines[0], tiny_engines[0], "--frames", video, "--n", 6, "--json", report_path) == 0
    report = json.loads(report_path.read_text())
    assert report["frames"] == 6 and report["frames_source"] == str(video)
    frames = load_frames(video, (32, 32), 100)
    assert frames.shape == (10, 32, 32, 3) and frames.dtype == np.uint8


def test_engines_that_cannot_be_compared_are_a_one_line_error(tiny_engines, tmp_path, capsys):
    gate, seg = tiny_engines
    assert verify(gate, seg) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "classes" in err[0] and str(seg) in err[0]
    assert verify(gate, tmp_path / "missing.onnx") == 2
    assert verify(gate, gate, "--frames", tmp_path / "empty_dir_that_is_missing") == 2


class NumpySegmenter(Engine):
    """A backend written in numpy with the tiny segmenter's rule: verify compares any
    two engines behind the interface, whatever runs them. Reuses its output buffer, as
    TensorRT does, so a verify that kept views instead of copies would see wrong data."""

    def __init__(self, reference: Engine, offset: float = 0.0):
        self.provenance = Provenance("numpy", "0" * 64, "numpy", reference.meta)
        self.offset = offset
        self.out = np.empty((1, 1, 32, 32), np.float32)

    def run(self, batch, *, region=None):
        self.out[0, 0] = (batch[0].astype(np.float32).mean(axis=2) - 200.0 - self.offset) * 0.1
        return {"mask_logits": self.out}


def test_compare_works_across_backends_and_copes_with_reused_buffers(tiny_engines):
    ort = load_engine(tiny_engines[1], "onnxruntime", task="segment")
    frames = synthetic_frames(20, (32, 32))
    report = compare(ort, NumpySegmenter(ort), frames)
    assert report.ok and report.mask_iou > 0.999 and report.max_abs_diff["mask_logits"] < 1e-4
    same = compare(NumpySegmenter(ort), NumpySegmenter(ort, offset=6.0), frames)
    assert not same.ok and same.max_abs_diff["mask_logits"] == pytest.approx(0.6, abs=1e-4)
    assert "FAIL" in format_report(same)


def test_thresholds_default_to_the_fp16_requirement():
    t = Thresholds()
    assert (t.min_agreement, t.min_iou, t.max_abs_diff, t.mask_logit) == (0.99, 0.98, None, 0.0)


@pytest.mark.filterwarnings("ignore:You are using the legacy TorchScript-based ONNX export")
def test_verify_onnx_against_its_torch_checkpoint(tmp_path):
    """ORT vs the torch backend on the same model (a 32 px MobileNetV2 gate exported here
    with the legacy exporter: quick, and independent of `nerveseg export`)."""
    pytest.importorskip("nerveseg.training.torch_backend", reason="torch backend not written yet")
    torch = pytest.importorskip("torch")
    from nerveseg.engines.metadata import META_KEY, EngineMeta
    from nerveseg.training.checkpoint import save_checkpoint
    from nerveseg.training.models import NormalizedModel, build_model

    torch.manual_seed(0)
    meta = EngineMeta(model="mobilenet_v2", task="classify", classes=("nerve", "opening_wound", "tendon"),
                      input_size=(32, 32))
    model = NormalizedModel(build_model("classify", "mobilenet_v2", 3, width_mult=0.25), meta.mean, meta.std).eval()
    ckpt = save_checkpoint(tmp_path / "gate.pt", model, meta, arch="mobilenet_v2",
                           arch_kwargs={"width_mult": 0.25})
    path = tmp_path / "gate.onnx"
    torch.onnx.export(model, (torch.zeros(1, 32, 32, 3, dtype=torch.uint8),), str(path), input_names=["image"],
                      output_names=["logits"], dynamic_axes={"image": {0: "N"}, "logits": {0: "N"}}, dynamo=False)
    exported = onnx.load(str(path))
    exported.metadata_props.add(key=META_KEY, value=meta.to_json())
    onnx.save(exported, str(path))
    assert verify(path, ckpt, "--n", 8, "--max-diff", 1e-3) == 0
