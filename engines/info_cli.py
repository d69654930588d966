"""``nerveseg info [MODEL]``: what an engine file says about itself; without a file,
which engines a run uses by default and where they come from."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from .loader import BACKEND_CHOICES


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("engine", type=Path, nargs="?",
                        help="an .onnx, .pt or TensorRT .engine file (none: the default engines)")
    parser.add_argument("--backend", default="auto", choices=BACKEND_CHOICES, help="backend to load it with")


def run(args: argparse.Namespace) -> int:
    from .defaults import GATE, SEGMENTER, models_folder
    from .loader import load_engine

    if args.engine is not None:
        engines = {"engine": (args.engine, "given on the command line")}
    else:
        folder, origin = models_folder()
        engines = {"gate": (folder / GATE, origin), "segment": (folder / SEGMENTER, origin)}
    report = {}
    for role, (path, origin) in engines.items():
        with load_engine(path, args.backend) as engine:
            report[role] = {"from": origin, "provenance": engine.provenance.to_dict(),
                            "calibration": engine.calibration.describe(),
                            "metadata": readable(json.loads(engine.meta.to_json()))}
    print(json.dumps(report["engine"] if args.engine is not None else report, indent=2))
    return 0


def readable(meta: dict) -> dict:
    """The metadata with the record of seen images (thousands of digests) cut to its counts."""
    seen = (meta.get("extra") or {}).get("seen")
    if isinstance(seen, dict):
        meta["extra"]["seen"] = {k: v for k, v in seen.items() if k not in ("trained", "validated")}
    return meta
