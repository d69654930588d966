"""The install layout: one `nerveseg` namespace, every sub-package shipped, and the
runtime commands free of the training stack."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TOP = {"realtime", "training", "engines", "ui", "commands"}


def test_every_package_folder_is_listed_in_pyproject():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(config["packages"])
    on_disk = {"nerveseg." + ".".join(init.parent.relative_to(ROOT).parts)
               for top in TOP for init in (ROOT / top).rglob("__init__.py")}
    assert on_disk - listed == set(), "sub-packages missing from pyproject [tool.setuptools] packages"
    assert {config["package-dir"][f"nerveseg.{t}"] for t in TOP} == TOP


def test_runtime_commands_do_not_import_torch_or_tensorrt():
    code = ("import sys; from nerveseg.commands.cli import build_parser; build_parser(); "
            "import nerveseg.realtime.pipeline, nerveseg.engines.onnxruntime_backend; "
            "print(sorted(m for m in ('torch', 'tensorrt', 'torchvision') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
