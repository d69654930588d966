"""What the installed environment has that a lock file does not: changed, new and missing packages.

    python scripts/lock_diff.py requirements/train-test.lock          # report, exit 0
    python scripts/lock_diff.py --check requirements/train-test.lock  # exit 1 when a locked one differs

Standard library only, so that it runs in any environment `scripts/env.sh` made.
"""
from __future__ import annotations

import argparse
import importlib.metadata
import re
import sys
from pathlib import Path

# Installers and the project itself: present in every environment, never locked.
NOT_LOCKED = {"pip", "wheel", "nerveseg"}


def normalise(name: str) -> str:
    """PEP 503 name: `PyQt6_sip` and `pyqt6-sip` are one package."""
    return re.sub(r"[-_.]+", "-", name).lower()


def read_lock(path: Path) -> dict[str, str]:
    """`name==version` lines of a pip-compile/uv lock (comments and markers ignored)."""
    pins = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        match = re.match(r"^([A-Za-z0-9][A-Za-z0-9_.-]*)==([^\s;\\]+)", line)
        if match:
            pins[normalise(match[1])] = match[2]
    return pins


def installed() -> dict[str, str]:
    """Every distribution importable by this interpreter, by normalised name."""
    return {normalise(d.metadata["Name"]): d.version for d in importlib.metadata.distributions()}


def differences(lock: dict[str, str], have: dict[str, str]) -> list[str]:
    """One line per package whose installed version is not the locked one."""
    lines = []
    for name in sorted(set(lock) | set(have)):
        if name in NOT_LOCKED or (name == "setuptools" and name not in lock):
            continue
        locked, now = lock.get(name), have.get(name)
        if locked == now:
            continue
        if locked is None:
            lines.append(f"new      {name} {now}")
        elif now is None:
            lines.append(f"missing  {name} (locked {locked})")
        else:
            lines.append(f"changed  {name} {locked} -> {now}")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("lock", type=Path)
    parser.add_argument("--check", action="store_true",
                        help="exit 1 when a locked package is missing or of another version "
                             "(packages installed by hand beside the lock are only reported)")
    args = parser.parse_args(argv)
    lines = differences(read_lock(args.lock), installed())
    locked_differ = [line for line in lines if not line.startswith("new")]
    print(f"versions against {args.lock}: "
          + (f"{len(locked_differ)} locked differ" if locked_differ else "every locked one installed"))
    for line in lines:
        print("  " + line)
    return 1 if (args.check and locked_differ) else 0


if __name__ == "__main__":
    sys.exit(main())
