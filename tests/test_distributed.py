"""torchrun: two CPU processes (gloo) train the tiny gate; both finish, rank 0 writes a
checkpoint that loads; plus the single-process helpers (device choice, reductions)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch


def test_torchrun_two_processes_gloo(training_gate_data, tmp_path):
    out = tmp_path / "run"
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
               "-m", "nerveseg.commands.cli", "train", "gate", str(training_gate_data), "--out", str(out),
               "--epochs", "1", "--size", "32", "--width", "0.25", "--batch-size", "4", "--threads", "1",
               "--device", "cpu", "--rotate", "0"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, capture_output=True, text=True, timeout=240, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "rank 0/2 done" in done.stdout and "rank 1/2 done" in done.stdout, done.stdout
    assert done.stdout.count("best_val_accuracy=") == 1  # the summary: rank 0 only

    from nerveseg.training.checkpoint import model_from_checkpoint

    model, meta, ckpt = model_from_checkpoint(out / "last.pt")
    assert ckpt["epoch"] == 0 and meta.classes == ("nerve", "opening_wound", "tendon")
    assert model(torch.zeros(2, 32, 32, 3, dtype=torch.uint8)).shape == (2, 3)
    assert "world" not in ckpt["args"]
    log = (out / "train.log").read_text()
    assert log.count("epoch 1/1") == 1  # one log: rank 0's
    # Each process trained on half the 24 training images: 3 batches of 4.
    assert "24 train, 6 val" in log


def test_single_process_helpers_are_no_ops():
    from nerveseg.training import distributed

    where = distributed.setup("cpu")
    assert where.main and not where.enabled and where.device == torch.device("cpu")
    assert distributed.all_reduce_sums([1.5, 2.0], where.device) == [1.5, 2.0]
    model = torch.nn.Linear(2, 2)
    assert distributed.wrap(model, where) is model and distributed.unwrap(model) is model
    assert not distributed.use_amp(type("A", (), {"amp": True})(), where.device)  # never on the CPU
    if not torch.cuda.is_available():
        with pytest.raises(Exception, match="--device cuda: no CUDA device"):
            distributed.pick_device("cuda")
