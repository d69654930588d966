"""The new segmenters through `nerveseg export` and `nerveseg replay`, and the region of
interest fed to a region-conditioned engine as its second input."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch
from video_fixtures import count_frames, write_video

from nerveseg.engines.base import Engine
from nerveseg.engines.loader import load_engine
from nerveseg.engines.metadata import IMAGENET_MEAN, IMAGENET_STD, EngineMeta, Provenance
from nerveseg.commands.cli import main
from nerveseg.realtime.frames import Frame, GateResult
from nerveseg.engines.preprocess import Box
from nerveseg.realtime.roi import Polygon, region_raster
from nerveseg.realtime.stages import SegmentOp
from nerveseg.training import models
from nerveseg.training.checkpoint import save_checkpoint
from nerveseg.training.exporters import export


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def exported(tmp_path, task: str, name: str, size: int = 32):
    """A randomly initialised ``name`` (width 0.25) as a checkpoint, through the export chain."""
    kwargs = {"width_mult": 0.25} if "width_mult" in models.get_spec(task, name).defaults else {}
    torch.manual_seed(0)
    model = models.NormalizedModel(models.build_model(task, name, 1, **kwargs), IMAGENET_MEAN, IMAGENET_STD)
    meta = EngineMeta(model=name, task=task, classes=("background", "nerve"), input_size=(size, size),
                      extra={"arch_kwargs": kwargs, "threshold": 0.5})
    ckpt = save_checkpoint(tmp_path / f"{name}.pt", model.eval(), meta, arch=name, arch_kwargs=kwargs, args={})
    onnx_path = tmp_path / f"{name}.onnx"
    export(ckpt, onnx_path)
    return onnx_path


@pytest.mark.parametrize("task, name", [("segment", "deeplabv3plus_mobilenet_v2"), ("segment", "double_unet"),
                                        ("region_segment", "region_unet_mobilenet_v2")])
def test_replay_with_a_new_segmenter(tmp_path, tiny_engines, task, name):
    onnx_path = exported(tmp_path, task, name)
    assert load_engine(onnx_path, backend="onnxruntime", task=task).meta.extra["parity"]["frames"] >= 4
    video = write_video(tmp_path / "in.mp4", frames=8)
    out = tmp_path / "replay.avi"
    assert main(["replay", str(video), "--out", str(out), "--gate", str(tiny_engines[0]), "--seg", str(onnx_path),
                 "--no-progress"]) == 0
    assert count_frames(out) == 8
    rows = list(csv.DictReader(out.with_suffix(".csv").open()))
    assert [r["segmented"] for r in rows[::2]] == ["True"] * 4  # the tiny gate calls even frames nerve


class _Recorder(Engine):
    """A region engine that records the region it is given and segments all of it."""

    def __init__(self, size=(16, 24)):
        meta = EngineMeta(model="recorder", task="region_segment", classes=("background", "nerve"), input_size=size)
        self.provenance = Provenance("recorder", "0" * 64, "test", meta)
        self.seen = []

    def run(self, batch, *, region=None):
        self.seen.append(region)
        inside = np.ones(batch.shape[:3], bool) if region is None else region[..., 0] > 0
        return {"mask_logits": np.where(inside, 10.0, -10.0).astype(np.float32)[:, None]}


def _gate_result(view: np.ndarray) -> GateResult:
    frame = Frame(0, 0, view)
    return GateResult(frame, view, Box(0, 0, view.shape[1], view.shape[0]), np.zeros((1, 16, 24, 3), np.uint8),
                      "nerve", 1.0, np.ones(1, np.float32), True, ())


def test_the_region_of_interest_is_the_region_engines_second_input():
    engine = _Recorder()
    op = SegmentOp(engine)
    view = np.zeros((60, 90, 3), np.uint8)
    whole = op.process(_gate_result(view))
    assert engine.seen[-1] is None and whole.mask.all()  # no region drawn: the whole field
    for roi in (Box(9, 6, 45, 30), Polygon(((0, 0), (80, 10), (30, 55)))):
        op.roi = roi
        seg = op.process(_gate_result(view))
        assert np.array_equal(engine.seen[-1], region_raster(roi, view.shape, (16, 24)))
        assert engine.seen[-1].shape == (1, 16, 24, 1) and engine.seen[-1].dtype == np.uint8
        assert seg.mask.any() and seg.mask.shape == view.shape[:2]
    op.process(_gate_result(view))
    assert engine.seen[-1] is engine.seen[-2]  # the same region: the cached raster
