"""The layers point one way (docs/ARCHITECTURE.md): import-linter checks the contracts
in pyproject.toml over every import, lazy ones inside functions included."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def test_import_contracts_are_kept():
    # In a child process: import-linter reconfigures logging (dictConfig), which would
    # silence every logger of the test session. It reads pyproject.toml from its cwd.
    run = subprocess.run([sys.executable, "-c", "import sys; from importlinter.cli import lint_imports; "
                          "sys.exit(lint_imports(no_cache=True))"], cwd=REPO, capture_output=True, text=True)
    out = run.stdout + run.stderr
    assert run.returncode == 0, out[out.find("Broken contracts"):] or out
    assert "Contracts: 7 kept, 0 broken." in out


@pytest.mark.parametrize("package", ["engines", "realtime", "ui", "commands", "training"])
def test_every_package_folder_is_installed_under_the_namespace(package):
    import importlib

    module = importlib.import_module(f"nerveseg.{package}")
    assert Path(module.__file__).resolve().parent == REPO / package
