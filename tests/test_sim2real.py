"""docs/SIM2REAL.md's experiment script, end to end on tiny models: target sets drawn from
the held-out generator setting, fine-tuning with --init, fixed test parts, intervals."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def test_sim2real_script_runs_and_reports_curves_with_intervals(training_gate_run, training_seg_run, tmp_path):
    out = tmp_path / "exp"
    done = subprocess.run([sys.executable, str(REPO / "scripts/sim2real.py"), str(training_gate_run / "best.pt"),
                           str(training_seg_run / "best.pt"), "--out", str(out), "--shots", "0,3",
                           "--epochs", "1", "--size", "32"], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    results = json.loads((out / "results.json").read_text())
    for task in ("gate", "seg"):
        assert [r["shots"] for r in results[task]] == [0, 3]
        for row in results[task]:
            low, high = row["ci95"]
            assert 0 <= low <= row["value"] <= high <= 1 and row["n_test"] == 60
    # The fixed test part is never trained on: disjoint from every train list.
    for task in ("gate", "seg"):
        split = out / "splits" / f"{task}_3"
        train = set(split.joinpath("train.txt").read_text().split())
        test = set(split.joinpath("test.txt").read_text().split())
        assert len(train) == 3 and len(test) == 60 and not train & test
    # N = 0 is the base model as it is; N = 3 a fine-tuned one started from it.
    assert not (out / "runs" / "gate_0").exists() and (out / "runs" / "gate_3" / "best.pt").is_file()
    import cv2

    assert cv2.imread(str(out / "sim2real.png")) is not None
    assert "| 3 |" in done.stdout and "labelled target frames" in done.stdout
    # The figure again with another base model's curves beside (here: the same results).
    before = (out / "sim2real.png").stat().st_mtime_ns
    again = subprocess.run([sys.executable, str(REPO / "scripts/sim2real.py"), "-", "-", "--out", str(out), "--replot",
                            "--baseline", str(out / "results.json"), "--names", "a,b"],
                           capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stderr[-2000:]
    assert (out / "sim2real.png").stat().st_mtime_ns > before and not (out / "runs" / "gate_0").exists()
    # The target set is the held-out domain: tinted (practically grey is the training world).
    stats = json.loads((out / "data" / "classify" / "synth_stats.json").read_text())
    assert np.median([c["colour"]["median"] for c in stats["classes"].values()]) > 8
