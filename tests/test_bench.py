"""``nerveseg bench`` runs every mode on a few frames and its JSON has every field.
It measures; it asserts no speed (that is the benchmark's job, not the suite's)."""

from __future__ import annotations

import json
import re
import shutil

import numpy as np
import pytest
from video_fixtures import count_frames, write_video

from nerveseg.commands.bench.report import BEGIN, END
from nerveseg.commands.cli import main

pytest.importorskip("torch")


@pytest.fixture(scope="module")
def trained_engines(training_gate_run, training_seg_run, tmp_path_factory):
    """gate.onnx/gate.pt and unet.onnx/unet.pt side by side, from the tiny training runs."""
    folder = tmp_path_factory.mktemp("bench_models")
    for run, name in ((training_gate_run, "gate"), (training_seg_run, "unet")):
        shutil.copy(run / "best.pt", folder / f"{name}.pt")
        assert main(["export", str(folder / f"{name}.pt"), "--out", str(folder / f"{name}.onnx")]) == 0
    return folder / "gate.onnx", folder / "unet.onnx"


def test_bench_runs_every_mode_and_writes_every_field(tmp_path, trained_engines, heldout_set, capsys):
    video = write_video(tmp_path / "in.mp4", frames=30, fps=30)
    docs = tmp_path / "BENCHMARKS.md"
    docs.write_text(f"# Benchmarks\n\nhand-written notes stay\n\n{BEGIN}\nold figures\n{END}\n\nmore notes\n")
    code = main(["bench", str(video), "--gate", str(trained_engines[0]), "--seg", str(trained_engines[1]),
                 "--frames", "30", "--live-fps", "60", "--test-set", str(heldout_set), "--rounds", "2",
                 "--modes", "naive,sequential,bare,replay,live,costs,formats,soak", "--soak", "90", "--backends",
                 "torch,onnxruntime,tensorrt", "--out", str(tmp_path / "bench"), "--update-docs", str(docs)])
    assert code == 0
    results = json.loads((tmp_path / "bench" / "bench.json").read_text())
    for mode in ("naive", "sequential", "bare", "replay"):
        assert results[mode]["fps"] > 0 and results[mode]["frames"] == 30, mode
    assert results["replay"]["recorded_frames"] == 30 and len(results["replay"]["fps_rounds"]) == 2
    soak = results["soak"]
    assert soak["frames"] == 90 and soak["rss_growth_mb"] is not None and soak["threads"]
    assert not (tmp_path / "bench" / "soak.avi").exists(), "the soak recording is removed"
    # every frame's annotation delay, the first and last tenth (10,000 frames in a full soak) compared
    assert soak["window"] == 9 and 0 < soak["annotation_p99_first_ms"] and 0 < soak["annotation_p99_last_ms"]
    assert abs(soak["p99_ratio_last_first"] - soak["annotation_p99_last_ms"] / soak["annotation_p99_first_ms"]) < 0.01
    assert isinstance(soak["targets"]["met"], bool) and soak["targets"]["rss_growth_mb"] == 50.0
    assert soak["paced_fps"] is None and soak["dropped"] == 0  # a replay: every frame
    assert soak["annotation_p99_windows_ms"][0] == soak["annotation_p99_first_ms"]
    assert soak["annotation_p99_windows_ms"][-1] == soak["annotation_p99_last_ms"]
    assert len(soak["annotation_p99_windows_ms"]) == 10
    assert set(results["replay"]["stages_ms"]) == {"decode", "preprocess", "gate", "segment", "overlay", "encode"}
    assert {"p50", "p95", "p99", "p99_9", "max", "std"} <= results["bare"]["ms_per_frame"].keys()
    # One live run per display, side by side: the picture straight to the (offscreen) Qt view, and
    # each frame waiting for its own mask; delays measured to the end of the view's paint.
    # Passthrough twice: inference lowered below the display path (the default) and not lowered.
    # Under display.realtime_priority auto (the default) the passthrough rows say when the
    # display path got the real-time policy (where this account may use it).
    by_display = {r["variant"].replace(", display path real-time (10)", ""): r for r in results["live"]}
    assert set(by_display) == {"passthrough", "passthrough, inference not lowered", "per-frame"}
    assert by_display["passthrough"]["inference_nice"] == 10
    assert by_display["passthrough, inference not lowered"]["inference_nice"] == 0
    for row in results["live"]:
        got = row["display_realtime"]["capture_thread"] == "real-time (fifo)"
        assert ("display path real-time (10)" in row["variant"]) == got
        assert row["display_realtime"]["asked"] == "auto"
    for live in by_display.values():
        assert live["fps_offered"] == 60 and live["offered"] == 30 and live["processed"] + live["dropped"] == 30
        assert {"p50", "p95", "p99"} <= live["video_delay_ms"].keys() and "annotation_delay_ms" in live
        assert live["queue_high_water"] and "paint" in live["screen"] and 0 <= live["not_shown_pct"] <= 100
    passthrough = by_display["passthrough"]
    assert set(passthrough["video_delay_parts_ms"]) == {"to the display path", "to the view", "to the GUI thread",
                                                        "paint"}
    # the annotation delay is timed on the layers with a mask, when the gate passed any
    assert ("gate" in passthrough["annotation_delay_parts_ms"]) == bool(passthrough["annotation_delay_ms"])
    costs = results["costs"]
    assert set(costs["cpu_ms_per_frame"]) == {"decode", "preprocess", "gate", "segment", "overlay", "encode"}
    assert costs["cores"] >= 1 and "bound_fps" not in costs, "stages timed alone are no bound"
    assert 0 < results["replay"]["efficiency"] <= 1.01 and results["ratios"]["efficiency"] == results["replay"]["efficiency"]
    assert {"replay/naive", "replay/sequential", "replay/bare", "efficiency"} <= set(results["ratios"])
    assert count_frames(tmp_path / "bench" / "naive.avi") == 30, "the naive loop writes every frame too"
    assert all(v is not None and v > 0 for v in results["ratios"].values())
    assert not any(k.startswith("single/") for k in results["ratios"]), "the single mode did not run"
    formats = {row["format"]: row for row in results["formats"]}
    assert {"PyTorch eager FP32", "ONNX Runtime FP32"} <= formats.keys()
    for name in ("PyTorch eager FP32", "ONNX Runtime FP32"):
        row = formats[name]
        assert 0 <= row["gate_accuracy"] <= 1 and 0 <= row["nerve_iou"] <= 1 and row["size_mb"] > 0
    assert formats["ONNX Runtime FP32"]["gate_accuracy"] == formats["PyTorch eager FP32"]["gate_accuracy"]
    assert "skipped" in formats["TensorRT FP16"], "no GPU here: the row says why"
    assert results["machine"]["cores"] and results["engines"]["gate"]["sha256"]
    assert (tmp_path / "bench" / "latency.png").stat().st_size > 0
    text = docs.read_text()
    assert "hand-written notes stay" in text and "more notes" in text and "old figures" not in text
    assert "replay" in text and "ratios:" in text
    out = capsys.readouterr().out
    assert "replay/naive" in out and "statistics skip the first and last" in out
    assert re.search(r"live 60 passthrough(, display path real-time \(10\))? video", out)
    assert "live 60 per-frame annotation" in out


def test_a_soak_can_be_offered_live_at_a_rate(tmp_path, trained_engines, capsys):
    """``--soak-fps``: the soak's frames offered live from memory at that rate (newest-frame
    policy, passthrough): what was offered, processed and dropped adds up, the p99 is kept
    per window, and the printed line says the rate."""
    video = write_video(tmp_path / "in.mp4", frames=20, fps=30)
    code = main(["bench", str(video), "--gate", str(trained_engines[0]), "--seg", str(trained_engines[1]),
                 "--frames", "20", "--modes", "soak", "--soak", "80", "--soak-fps", "40",
                 "--out", str(tmp_path / "bench")])
    assert code == 0
    soak = json.loads((tmp_path / "bench" / "bench.json").read_text())["soak"]
    assert soak["paced_fps"] == 40 and soak["offered"] == 80 and soak["frames"] + soak["dropped"] == 80
    assert "offered live at 40 FPS" in soak["what"] and soak["rss_growth_mb"] is not None
    windows = soak["annotation_p99_windows_ms"]
    assert windows and all(v > 0 for v in windows) and soak["window"] * len(windows) <= soak["frames"]
    assert "(offered live at 40 FPS)" in capsys.readouterr().out


def test_min_accuracy_floor_fails_the_run(tmp_path, trained_engines, heldout_set, capsys):
    video = write_video(tmp_path / "in.mp4", frames=12, fps=30)
    code = main(["bench", str(video), "--gate", str(trained_engines[0]), "--seg", str(trained_engines[1]),
                 "--modes", "formats", "--backends", "onnxruntime", "--test-set", str(heldout_set),
                 "--min-iou", "1", "--out", str(tmp_path / "bench")])  # a mask IoU of exactly 1: never
    assert code == 1
    assert "below the floor: ONNX Runtime FP32: nerve IoU" in capsys.readouterr().out


def test_a_floor_above_one_is_refused_before_anything_runs(tmp_path, tiny_engines, capsys):
    code = main(["bench", "--min-accuracy", "1.01", "--out", str(tmp_path / "bench")])
    assert code == 2 and "--min-accuracy 1.01: must be a number within [0, 1]" in capsys.readouterr().err
    assert not (tmp_path / "bench").exists()


def test_unknown_mode_is_a_one_line_error(tmp_path, tiny_engines, capsys):
    video = write_video(tmp_path / "in.mp4", frames=4)
    code = main(["bench", str(video), "--gate", str(tiny_engines[0]), "--seg", str(tiny_engines[1]),
                 "--modes", "replay,fastest", "--out", str(tmp_path / "b")])
    assert code == 2
    from nerveseg.commands.bench_cli import MODES

    assert capsys.readouterr().err.strip().endswith(f"unknown fastest; choose from {', '.join(MODES)}")
    assert "naive" in MODES and "steadiness" in MODES


def test_scaling_times_each_backbone_at_each_size():
    from nerveseg.commands.bench.scaling import scaling, scaling_table

    frames = [np.full((120, 320, 3), v, np.uint8) for v in (40, 120, 200)]
    rows = scaling(frames, sizes=(32, 64), gates=("mobilenet_v2:0.25",), segmenters=("unet_mobilenet_v2:0.25",),
                   gate_segmenters=("unet_gate_mobilenet_v2:0.25",), threads=1, limit=3)
    assert [(r["task"], r["size"]) for r in rows] == [("classify", 32), ("segment", 32), ("gate_segment", 32),
                                                      ("classify", 64), ("segment", 64), ("gate_segment", 64)]
    assert all(r["ms"]["n"] == 3 and r["ms"]["p50"] > 0 and r["onnx_mb"] > 0 for r in rows)
    table = scaling_table(rows)
    assert "| classify | mobilenet_v2:0.25 |" in table and "64×64 p50 ms" in table


def test_ratios_set_the_live_tail_against_the_engines_alone_and_in_the_run():
    from nerveseg.commands.bench.report import ratios

    results = {"replay": {"fps": 40.0, "efficiency": 0.8}, "naive": {"fps": 10.0}, "sequential": {"fps": 20.0}, "bare": {"fps": 80.0,
               "gate_ms": {"p50": 5.0}, "segment_ms": {"p50": 7.0}},
               "live": [{"fps_offered": 30.0, "annotation_delay_ms": {"p99": 36.0},
                         "stages_ms": {"gate": {"p50": 8.0}, "segment": {"p50": 10.0}}}],
               "single_bare": {"fps": 100.0}, "single_replay": {"fps": 44.0}}
    assert ratios(results) == {"replay/naive": 4.0, "replay/sequential": 2.0, "replay/bare": 0.5, "efficiency": 0.8,
                               "live30 p99/engines alone": 3.0, "live30 p99/engines in run": 2.0,
                               "single/two bare": 1.25, "single/two replay": 1.1}


def test_replay_efficiency_cannot_exceed_one(tmp_path, tiny_engines):
    """The bound comes from the replay's own CPU and wall clocks over one window, so a run's
    efficiency is its CPU use over what its cores gave: at most 1 (plus clock noise). The
    old bound (stages timed alone, cold) gave 1.2-1.4 on a loaded machine."""
    video = write_video(tmp_path / "in.mp4", frames=90, fps=30)
    code = main(["bench", str(video), "--gate", str(tiny_engines[0]), "--seg", str(tiny_engines[1]),
                 "--frames", "30", "--modes", "replay,costs", "--rounds", "3", "--out", str(tmp_path / "bench")])
    assert code == 0
    results = json.loads((tmp_path / "bench" / "bench.json").read_text())
    replay = results["replay"]
    assert replay["cores"] >= 1 and replay["cpu_s"] > 0 and replay["wall_s"] > 0
    assert replay["efficiency"] == pytest.approx(replay["fps_wall"] / replay["bound_fps"], rel=0.01)
    assert 0 < replay["efficiency"] <= 1.01, replay
    assert 0 < results["ratios"]["efficiency"] <= 1.01
    assert results["costs"]["warm_up_frames"] == 10


def test_machine_use_of_a_busy_multithreaded_process_stays_at_most_one():
    """More busy threads than cores: CPU time per wall second cannot pass the core count."""
    import threading
    import time

    from nerveseg.commands.bench.modes import machine_use, usable_cores

    def spin(until: float) -> None:
        while time.perf_counter() < until:
            sum(range(1000))

    wall0, cpu0 = time.perf_counter(), time.process_time()
    workers = [threading.Thread(target=spin, args=(wall0 + 0.6,)) for _ in range(usable_cores() + 2)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    use = machine_use(time.perf_counter() - wall0, time.process_time() - cpu0, 60)
    assert 0 < use["efficiency"] <= 1.01, use


def test_formats_put_int8_and_openvino_beside_fp32_in_one_run(tmp_path, trained_engines, heldout_set, capsys):
    """INT8 files made in the run (``nerveseg quantize`` on the bench video) and run by
    both CPU runtimes, beside FP32: size, accuracy, IoU, ms and FPS per row; the floors
    still judge every row."""
    pytest.importorskip("openvino")
    video = write_video(tmp_path / "in.mp4", frames=12, fps=30)
    out = tmp_path / "bench"
    code = main(["bench", str(video), "--gate", str(trained_engines[0]), "--seg", str(trained_engines[1]),
                 "--modes", "formats", "--backends", "onnxruntime,openvino,int8", "--test-set", str(heldout_set),
                 "--min-iou", "1", "--out", str(out)])
    rows = {r["format"]: r for r in json.loads((out / "bench.json").read_text())["formats"]}
    assert list(rows) == ["ONNX Runtime FP32", "OpenVINO FP32", "ONNX Runtime INT8", "OpenVINO on the INT8 file"]
    for row in rows.values():
        assert "skipped" not in row, row
        assert row["ms_per_frame"] > 0 and row["fps"] > 0 and 0 <= row["gate_accuracy"] <= 1
        assert [f["backend"] for f in row["files"]] == [row["backend"]] * 2
    int8 = rows["ONNX Runtime INT8"]
    assert int8["precision"] == "int8" and int8["size_mb"] < rows["ONNX Runtime FP32"]["size_mb"]
    assert [f["path"] for f in int8["files"]] == [str(out / "int8" / "gate.int8.onnx"), str(out / "int8" / "unet.int8.onnx")]
    assert rows["OpenVINO on the INT8 file"]["files"][0]["sha256"] == int8["files"][0]["sha256"]
    # the same held-out set for every row: FP32 scores agree across runtimes
    assert rows["OpenVINO FP32"]["gate_accuracy"] == pytest.approx(rows["ONNX Runtime FP32"]["gate_accuracy"], abs=0.05)
    assert code == 1  # a mask IoU of exactly 1 on every row: never
    printed = capsys.readouterr().out
    assert "below the floor" in printed and all(f"{name}: nerve IoU" in printed for name in rows)


def test_a_segmenter_of_another_input_size_runs_in_every_mode_and_format(tmp_path, heldout_set):
    """The heavy configuration pairs a gate at 224 px with a U-Net at 512 px: the
    segmenter gets the view resized to its own size (as the pipeline's SegmentOp does) in
    the one-thread, bare and replay modes, and ``--format-replay`` replays the video with
    each format's engines, its FPS beside the engine ms and the ratios to ONNX Runtime FP32."""
    from engine_fixtures import make_gate, make_segmenter

    gate, seg = make_gate(tmp_path / "gate.onnx", size=32), make_segmenter(tmp_path / "unet.onnx", size=48)
    video = write_video(tmp_path / "in.mp4", frames=24, fps=30)
    out = tmp_path / "bench"
    backends = "onnxruntime,openvino" if _has("openvino") else "onnxruntime"
    code = main(["bench", str(video), "--gate", str(gate), "--seg", str(seg), "--frames", "24",
                 "--modes", "sequential,bare,replay,formats", "--backends", backends, "--format-replay",
                 "--test-set", str(heldout_set), "--out", str(out)])
    assert code == 0
    results = json.loads((out / "bench.json").read_text())
    assert results["bare"]["nerve_fraction"] == 0.5  # every other frame is nerve: the 48-px segmenter ran
    assert results["replay"]["recorded_frames"] == 24 and results["sequential"]["frames"] == 24
    rows = results["formats"]
    assert [r["backend"] for r in rows] == backends.split(",")
    for row in rows:
        assert "skipped" not in row, row
        assert row["replay"]["recorded_frames"] == 24 and row["replay"]["fps"] > 0
        assert (out / f"replay_{row['backend']}_fp32.avi").is_file()
    assert rows[0]["speedup"] == 1.0 and rows[0]["replay_speedup"] == 1.0
    if len(rows) > 1:
        assert rows[1]["speedup"] == round(rows[0]["ms_per_frame"] / rows[1]["ms_per_frame"], 2)


def _has(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None
