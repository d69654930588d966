"""The steady overlay: hysteresis on the gate's nerve decision, a running average of the
mask's probabilities; the defaults change nothing."""

from __future__ import annotations

import numpy as np
import pytest

from nerveseg.realtime import config as cfg
from nerveseg.realtime.steady import Hysteresis, MaskSmoother, SteadyConfig


def decisions(config: SteadyConfig, probs: list[float]) -> list[bool]:
    h = Hysteresis(config)
    return [h.update(p) for p in probs]


def test_the_defaults_are_the_gate_s_own_decision():
    assert SteadyConfig().off
    probs = [0.9, 0.2, 0.7, 0.49, 0.51, 0.1]
    assert decisions(SteadyConfig(), probs) == [p >= 0.5 for p in probs]


def test_one_noisy_frame_neither_paints_nor_erases_the_label():
    c = SteadyConfig(enter=0.6, leave=0.4, frames_in=2, frames_out=3)
    # steady nerve with single dips, then a real end
    probs = [0.9, 0.9, 0.1, 0.9, 0.3, 0.9, 0.2, 0.2, 0.2, 0.2]
    assert decisions(c, probs) == [True] * 8 + [False, False]
    # not nerve with single spikes, then a real start
    probs = [0.1, 0.9, 0.1, 0.95, 0.2, 0.8, 0.8, 0.8]
    assert decisions(c, probs) == [False] * 6 + [True, True]
    # inside the band nothing changes, whichever side it is on
    assert decisions(c, [0.9, 0.5, 0.45, 0.55, 0.41] * 3) == [True] * 15
    assert decisions(c, [0.1, 0.5, 0.45, 0.55, 0.59] * 3) == [False] * 15


def test_the_mask_average_weights_the_newest_frame_most_and_restarts():
    s = MaskSmoother(0.6)
    a, b = np.zeros((4, 4), np.float32), np.ones((4, 4), np.float32)
    assert np.allclose(s.update(a), 0.0)
    assert np.allclose(s.update(b), 0.6)
    assert np.allclose(s.update(b), 0.84)
    s.reset()
    assert np.allclose(s.update(a), 0.0), "restarted: nothing carried over"
    assert np.allclose(s.update(np.ones((2, 2), np.float32)), 1.0), "a new size restarts too"
    assert MaskSmoother(1.0).update(b) is b, "alpha 1: no average, no copy"


@pytest.mark.parametrize("raw, words", [
    ({"enter": 0.4, "leave": 0.6}, "leave <= enter"),
    ({"frames_in": 0}, "1..100"),
    ({"alpha": 0.3}, r"\[0.5, 1\]"),
])
def test_bad_knobs_are_refused(tmp_path, raw, words):
    from nerveseg.engines.errors import UserError

    with pytest.raises(UserError, match=words):
        cfg.from_dict({"steady": raw})


def test_a_replay_with_the_steady_overlay_on(tmp_path, tiny_engines):
    """Real engines, real pipeline: the knobs in the YAML reach the gate and the segmenter."""
    from video_fixtures import write_video

    from nerveseg.realtime.pipeline import Engines, NervePipeline
    from nerveseg.engines.loader import load_engine

    video = write_video(tmp_path / "v.mp4", frames=16, nerve_every=1)
    config = cfg.from_dict({"source": {"spec": str(video)},
                            "steady": {"enter": 0.6, "leave": 0.4, "frames_in": 2, "frames_out": 3, "alpha": 0.6}})
    engines = Engines(load_engine(tiny_engines[0], task="classify"), load_engine(tiny_engines[1], task="segment"))
    pipeline = NervePipeline(config, engines=engines)
    assert pipeline.ops.gate.steady.frames_in == 2 and pipeline.ops.segment._smoother.alpha == 0.6
    summary = pipeline.run()
    assert summary["frames"] == 16 and summary["segmented_frames"] >= 14


def test_bench_scores_the_steady_overlay_against_the_video_s_truth(tmp_path, tiny_engines, capsys):
    import json

    from video_fixtures import write_truth, write_video

    from nerveseg.commands.cli import main

    video = write_video(tmp_path / "v.mp4", frames=24, nerve_every=3)
    write_truth(video, 24, 3)
    out = tmp_path / "bench"
    assert main(["bench", str(video), "--gate", str(tiny_engines[0]), "--seg", str(tiny_engines[1]),
                 "--modes", "steadiness", "--out", str(out)]) == 0
    result = json.loads((out / "bench.json").read_text())["steadiness"]
    assert set(result) == {"off", "steady"} and result["steady"]["config"]["frames_in"] == 2
    for r in result.values():
        assert r["frames"] == 24 and 0.0 <= r["label_accuracy"] <= 1.0 and r["label_changes_per_s"] >= 0
    # nerve every third frame: off follows every change, the band holds through the short gaps
    assert result["off"]["label_changes_per_s"] > result["steady"]["label_changes_per_s"]
    assert "steadiness off:" in capsys.readouterr().out
    plain = write_video(tmp_path / "plain.mp4", frames=6)
    assert main(["bench", str(plain), "--gate", str(tiny_engines[0]), "--seg", str(tiny_engines[1]),
                 "--modes", "steadiness", "--out", str(tmp_path / "b2")]) == 0
    assert "no ground truth" in json.loads((tmp_path / "b2" / "bench.json").read_text())["steadiness"]["skipped"]


def test_a_flickering_camera_is_made_from_a_video_with_truth(tmp_path, tiny_engines):
    """``bench --perturb``: the frames flicker (exposure, noise, blur), the same frames for
    both variants, geometry untouched; the tiny gate (which reads mean brightness) flickers
    on them and the steady overlay calms it."""
    import json

    from video_fixtures import write_truth, write_video

    from nerveseg.commands.bench.steadiness import perturbed
    from nerveseg.commands.cli import main

    frames = [np.full((40, 60, 3), v, np.uint8) for v in (100, 150, 200)]
    a, b = perturbed(frames, 0.5), perturbed(frames, 0.5)
    assert all(np.array_equal(x, y) for x, y in zip(a, b)), "seeded: both variants see the same frames"
    assert all(x.shape == f.shape and not np.array_equal(x, f) for x, f in zip(a, frames))
    assert all(np.array_equal(x, f) for x, f in zip(perturbed(frames, 0.0), frames))
    video = write_video(tmp_path / "v.mp4", frames=30)
    write_truth(video, 30, 2)
    out = tmp_path / "bench"
    assert main(["bench", str(video), "--gate", str(tiny_engines[0]), "--seg", str(tiny_engines[1]),
                 "--modes", "steadiness", "--perturb", "0.8", "--out", str(out)]) == 0
    result = json.loads((out / "bench.json").read_text())["steadiness"]
    assert {r["perturb"] for r in result.values()} == {0.8} and all(r["frames"] == 30 for r in result.values())
    assert main(["bench", str(video), "--modes", "steadiness", "--perturb", "2", "--out", str(tmp_path / "x")]) == 2
