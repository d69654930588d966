"""Experiment files: sections, precedence (defaults < YAML < flags < --set), did-you-mean
errors naming their source, and the copy in the run folder with the git revision."""

from __future__ import annotations

import argparse

import pytest
import yaml

from nerveseg.commands.cli import main
from nerveseg.training import cli, experiment
from nerveseg.training.experiment import namespace_from_cli


def _parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    return namespace_from_cli(parser.parse_args(list(argv)))


def _write(path, body: dict):
    path.write_text(yaml.safe_dump(body))
    return path


def test_precedence_defaults_yaml_flags_set(tmp_path):
    exp = _write(tmp_path / "exp.yaml", {
        "family": "seg", "data": {"root": "data/seg", "size": 96},
        "schedule": {"lr": "1e-3", "epochs": 4, "batch_size": 4},  # YAML reads 1e-3 as a string
        "augment": {"rotate": 0}, "run": {"out": "runs/x"}})
    args = _parse("seg", "--config", str(exp), "--epochs", "6", "--lr", "5e-4", "--set", "schedule.lr=2e-3",
                  "--set", "data.classes=[background, nerve]")
    assert (args.data, args.out, args.size, args.batch_size) == ("data/seg", "runs/x", 96, 4)  # YAML
    assert args.epochs == 6 and args.lr == pytest.approx(2e-3)  # flag beats YAML, --set beats flag
    assert args.rotate == 0.0 and args.hflip == 0.5  # YAML, then the default
    assert args.model == "unet_mobilenet_v2" and args.task == "segment"  # the family's defaults
    assert args.classes == ["background", "nerve"] and args.device == "auto" and args.amp is True


@pytest.mark.parametrize("body, message", [
    ({"schedule": {"lr_shedule": "cosine"}}, "exp.yaml: unknown key schedule.lr_shedule (did you mean 'lr_schedule'?)"),
    ({"augmentation": {}}, "exp.yaml: unknown section 'augmentation' (did you mean 'augment'?)"),
    ({"schedule": {"epochs": "many"}}, "exp.yaml: schedule.epochs = 'many': expected int"),
    ({"family": "seg"}, "exp.yaml: family 'seg', but this is `nerveseg train gate`"),
])
def test_bad_files_fail_in_one_line(tmp_path, capsys, body, message):
    exp = _write(tmp_path / "exp.yaml", {"data": {"root": str(tmp_path)}, **body})
    assert main(["train", "gate", "--config", str(exp), "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]


def test_set_errors_name_set(tmp_path, capsys):
    assert main(["train", "gate", str(tmp_path), "--out", str(tmp_path / "r"), "--set", "data.sise=64"]) == 2
    assert "--set: unknown key data.sise (did you mean 'size'?)" in capsys.readouterr().err
    with pytest.raises(Exception, match="expected SECTION.KEY=VALUE"):
        experiment.parse_set(["schedule.lr"])
    with pytest.raises(Exception, match="give the run folder"):
        _parse("gate", str(tmp_path))


def test_run_folder_holds_the_resolved_experiment_with_revision(training_gate_data, tmp_path):
    exp = _write(tmp_path / "exp.yaml", {
        "family": "gate", "model": {"width": 0.25}, "data": {"root": str(training_gate_data), "size": 32},
        "schedule": {"epochs": 1, "batch_size": 8}, "run": {"threads": 2}})
    out = tmp_path / "run"
    assert main(["train", "gate", "--config", str(exp), "--out", str(out), "--set", "augment.rotate=0"]) == 0
    saved = yaml.safe_load((out / "experiment.yaml").read_text())
    assert saved["provenance"]["revision"] and saved["provenance"]["source"] == str(exp)
    assert saved["model"] == {"name": "mobilenet_v2", "width": 0.25, "pretrained": None, "init": None}
    assert saved["schedule"]["unfreeze_from"] == "features.0.0" and saved["augment"]["rotate"] == 0
    assert (out / "experiment.source.yaml").read_text() == exp.read_text()
    again = _parse("gate", "--config", str(out / "experiment.yaml"))  # rerunnable as it is
    assert again.out == str(out) and again.epochs == 1 and again.width == 0.25
    assert yaml.safe_load((out / "config.yaml").read_text())["rotate"] == 0  # the flat copy too
