"""Experiment files for ``train region`` and ``train instance`` (their own parsers): the
file fills what was not typed, typed flags win, unknown keys and missing essentials are
one-line errors, and the run folder keeps the resolved experiment with the revision."""

from __future__ import annotations

import json

import pytest
import yaml
from conftest import _training_cli
from test_instance_fixtures import instance_data  # noqa: F401  (fixture)

from nerveseg.commands.cli import main

pytest.importorskip("torch")


@pytest.fixture(scope="module")
def region_set(tmp_path_factory):
    out = tmp_path_factory.mktemp("regions")
    _training_cli("synth", "regions", str(out), "--count", "12", "--size", "64", "--seed", "4", "--no-progress")
    return out


def test_region_run_from_an_experiment_file(region_set, tmp_path):
    exp = tmp_path / "region.yaml"
    exp.write_text(yaml.safe_dump({
        "family": "region",
        "model": {"width": 0.25},
        "data": {"root": str(region_set), "size": 32},
        "schedule": {"epochs": 3, "batch_size": 8, "lr": "3e-3", "lr_schedule": "constant"},
        "run": {"threads": 1, "out": str(tmp_path / "from_file")},
        "region": {"augment": False},
    }))
    run = tmp_path / "typed"
    assert main(["train", "region", "--config", str(exp), "--out", str(run), "--epochs", "1"]) == 0
    config = yaml.safe_load((run / "config.yaml").read_text())
    assert config["epochs"] == 1, "the typed flag wins over the file"
    assert config["size"] == 32 and config["lr"] == 3e-3 and config["augment"] is False, "the file's values"
    assert config["lr_schedule"] == "constant"
    assert config["batch_size"] == 8 and config["data"] == str(region_set)
    assert config["dice_weight"] == 1.0 and config["seed"] == 0, "defaults where neither says"
    assert not (tmp_path / "from_file").exists(), "--out typed wins over run.out"
    experiment = yaml.safe_load((run / "experiment.yaml").read_text())
    assert experiment["schedule"]["epochs"] == 1 and experiment["region"]["augment"] is False
    assert experiment["data"]["root"] == str(region_set) and experiment["provenance"]["revision"]
    assert (run / "experiment.source.yaml").read_text() == exp.read_text()
    # The resolved file reruns the same experiment.
    again = tmp_path / "again"
    assert main(["train", "region", "--config", str(run / "experiment.yaml"), "--out", str(again)]) == 0
    rerun = yaml.safe_load((again / "config.yaml").read_text())
    assert {k: rerun[k] for k in ("epochs", "size", "lr", "augment", "batch_size")} == \
        {k: config[k] for k in ("epochs", "size", "lr", "augment", "batch_size")}


def test_unknown_keys_and_missing_essentials_are_one_line_errors(region_set, tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"schedule": {"epochz": 3}}))
    assert main(["train", "region", str(region_set), "--out", str(tmp_path / "r"), "--config", str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.endswith("unknown key schedule.epochz for `nerveseg train region` (did you mean 'schedule.epochs'?)")
    assert str(bad) in err and len(err.splitlines()) == 1
    bad.write_text("schedule:\n  lr: fast\n  lr_schedule: step\n")
    assert main(["train", "region", str(region_set), "--out", str(tmp_path / "r"), "--config", str(bad)]) == 2
    assert capsys.readouterr().err.strip().endswith("schedule.lr: 'fast' is not a valid float")
    bad.write_text("schedule:\n  lr_schedule: step\n")
    assert main(["train", "region", str(region_set), "--out", str(tmp_path / "r"), "--config", str(bad)]) == 2
    assert capsys.readouterr().err.strip().endswith("schedule.lr_schedule: 'step' is not one of cosine, constant")
    wrong = tmp_path / "wrong.yaml"
    wrong.write_text(yaml.safe_dump({"family": "instance"}))
    assert main(["train", "region", str(region_set), "--out", str(tmp_path / "r"), "--config", str(wrong)]) == 2
    assert "family 'instance', but this is `nerveseg train region`" in capsys.readouterr().err
    assert main(["train", "region", str(region_set)]) == 2
    assert "give --out (or run.out in the experiment file)" in capsys.readouterr().err
    assert main(["train", "instance", "--out", str(tmp_path / "i")]) == 2
    assert "give data (or data.root in the experiment file)" in capsys.readouterr().err


def test_instance_run_from_an_experiment_file(instance_data, tmp_path):  # noqa: F811
    exp = tmp_path / "instance.yaml"
    exp.write_text(yaml.safe_dump({"data": {"root": str(instance_data / "coco"), "size": 64},
                                   "schedule": {"epochs": 1, "batch_size": 2},
                                   "augment": {"rotate": 0.0},
                                   "instance": {"warmup": 2, "max_iters": 1}}))
    run = tmp_path / "run"
    typed = ["--size", "64", "--width", "0.5", "--threads", "1"]  # warm-up, iterations, batch: the file's
    assert main(["train", "instance", "--config", str(exp), "--out", str(run), *typed]) == 0
    config = yaml.safe_load((run / "config.yaml").read_text())
    assert config["max_iters"] == 1 and config["warmup"] == 2 and config["rotate"] == 0.0 and config["epochs"] == 1
    assert config["hflip"] == 0.5, "a default the file leaves alone"
    assert yaml.safe_load((run / "experiment.yaml").read_text())["instance"]["max_iters"] == 1
    assert json.loads((run / "history.json").read_text())
