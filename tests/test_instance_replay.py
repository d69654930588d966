"""An instance engine as the pipeline's segmenter: per-instance masks in view pixels, the
overlay's class tint, box and "class 0.93" tag, and its pixel contract, through real
threads, ONNX Runtime sessions and the replay command."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
from test_instance_fixtures import (SIZE, instance_data, instance_onnx, instance_run,  # noqa: F401
                                    make_always_nerve_gate, make_constant_instances)

from nerveseg.engines.loader import load_engine
from nerveseg.engines.metadata import EngineError
from nerveseg.realtime import config as cfg
from nerveseg.commands.cli import main
from nerveseg.realtime.frames import Instances
from nerveseg.realtime.overlay import draw_instances, instance_colour
from nerveseg.realtime.pipeline import NervePipeline
from nerveseg.realtime.stages import SegmentOp

BOXES = [[6, 8, 40, 30], [20, 24, 60, 60]]  # engine input pixels (64 x 64)


def _allowed(shape, masks, marks, panel=None) -> np.ndarray:
    allowed = masks.any(0) if len(masks) else np.zeros(shape, bool)
    for box in [*marks, *([panel] if panel else [])]:
        allowed[box.y0:box.y1, box.x0:box.x1] = True
    return allowed


def test_draw_instances_changes_only_masks_outlines_and_tags():
    image = np.full((120, 160, 3), 100, np.uint8)
    masks = np.zeros((2, 120, 160), bool)
    masks[0, 20:60, 10:90] = True
    masks[1, 50:110, 70:150] = True
    found = Instances(np.array([[10, 20, 90, 60], [70, 50, 150, 110]], np.float32), np.array([1, 2]),
                      np.array([0.93, 0.6], np.float32), masks, ("background", "nerve", "vessel"))
    drawn = image.copy()
    marks = draw_instances(drawn, found, opacity=0.5)
    changed = (drawn != image).any(axis=2)
    assert len(marks) == 10 and not (changed & ~_allowed(changed.shape, masks, marks)).any()
    assert changed[masks[0]].mean() > 0.9 and changed[masks[1]].mean() > 0.9
    inside = drawn[40, 40].astype(int)  # nerve only, away from outline and tag: tinted green
    green = instance_colour("nerve", 0)
    assert np.abs(inside - (np.array(green) + 100) / 2).max() <= 1
    assert instance_colour("vessel", 1) != green and found.names == ["nerve", "vessel"]
    with pytest.raises(ValueError):
        found.masks[0, 0, 0] = True  # the record is immutable


def _frames_folder(instance_data, tmp_path, count: int = 4):
    folder = tmp_path / "frames"
    folder.mkdir()
    for path in sorted((instance_data / "coco" / "images").glob("*.png"))[:count]:
        image = cv2.resize(cv2.imread(str(path)), (192, 192), interpolation=cv2.INTER_LINEAR)
        cv2.imwrite(str(folder / path.name), image)
    return folder


def test_pipeline_with_a_constant_instance_engine_keeps_the_pixel_contract(instance_data, tmp_path):
    folder = _frames_folder(instance_data, tmp_path)
    seg = make_constant_instances(tmp_path / "inst.onnx", BOXES, [1, 3], [0.93, 0.71])
    gate = make_always_nerve_gate(tmp_path / "gate.onnx")
    config = cfg.from_dict({"source": {"spec": str(folder)}, "gate": {"engine": str(gate)},
                            "segment": {"engine": str(seg), "threshold": 0.5}, "preprocess": {"eye": "full"},
                            "record": {"path": str(tmp_path / "out.avi"), "codec": "ffv1"}})
    pipeline = NervePipeline(config)
    shown = {}
    pipeline.subscribe(lambda r: shown.setdefault(r.index, r))
    summary = pipeline.run()
    assert summary["frames"] == 4 and summary["recorded_frames"] == 4 and shown
    for r in shown.values():
        found = r.seg.instances
        assert found.names == ["nerve", "tendon"] and np.allclose(found.scores, [0.93, 0.71])
        vh, vw = r.seg.gate.view.shape[:2]
        assert found.masks.shape == (2, vh, vw) and np.array_equal(r.seg.mask, found.masks.any(0))
        x0, y0, x1, y1 = found.boxes[0]  # the box scaled from 64 px input to the view
        assert x0 == pytest.approx(6 * vw / 64) and y1 == pytest.approx(30 * vh / 64)
        changed = (r.image != r.seg.gate.view).any(axis=2)
        assert not (changed & ~_allowed(changed.shape, found.masks, r.marks, r.panel)).any()
    assert json.loads((tmp_path / "out.json").read_text())["nerveseg"]["engines"]["segment"]["task"] == "instance"


def test_score_threshold_and_region_of_interest(tmp_path):
    from nerveseg.realtime.frames import Frame, GateResult
    from nerveseg.engines.preprocess import Box

    engine = load_engine(make_constant_instances(tmp_path / "inst.onnx", BOXES, [1, 2], [0.9, 0.4]))
    op = SegmentOp(engine, threshold=0.5)
    view = np.full((128, 128, 3), 90, np.uint8)
    g = GateResult(Frame(0, 0, view), view, Box(0, 0, 128, 128), view[None, ::2, ::2].copy(), "nerve",
                   0.9, np.ones(3, np.float32), True, ())
    assert op.process(g).instances.names == ["nerve"]  # 0.4 is under the threshold
    op.threshold = 0.3
    op.roi = Box(0, 0, 30, 128)  # keeps the left part of the first box only, none of the second
    found = op.process(g).instances
    x0, y0, x1, y1 = found.boxes[0]  # the engine's box (12, 16, 80, 60) ×2, clipped by the region
    assert found.names == ["nerve"] and x1 == 30 and abs(x0 - 12) <= 1 and abs(y0 - 16) <= 1 and abs(y1 - 60) <= 1
    assert not found.masks[0][:, 30:].any()


def test_segmenter_refuses_a_classifier(tiny_engines):
    with pytest.raises(EngineError, match="'segment' or 'instance' engine"):
        SegmentOp(load_engine(tiny_engines[0], task="classify"))


def test_replay_command_with_the_trained_maskrcnn(instance_onnx, instance_data, tmp_path):
    folder = _frames_folder(instance_data, tmp_path, count=3)
    gate = make_always_nerve_gate(tmp_path / "gate.onnx")
    out = tmp_path / "replay.avi"
    assert main(["replay", str(folder), "--out", str(out), "--gate", str(gate), "--seg", str(instance_onnx),
                 "--eye", "full", "--threshold", "0.05", "--no-progress"]) == 0
    summary = json.loads(out.with_suffix(".json").read_text())
    assert summary["frames"] == 3 and summary["stage_errors"] == {}
    assert summary["nerveseg"]["engines"]["segment"]["model"] == "maskrcnn_mobilenet_v3"
