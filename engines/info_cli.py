"""``nerveseg info``: what an engine file says about itself."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from .loader import BACKEND_CHOICES


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("engine", type=Path, help="an .onnx, .pt or TensorRT .engine file")
    parser.add_argument("--backend", default="auto", choices=BACKEND_CHOICES, help="backend to load it with")


def run(args: argparse.Namespace) -> int:
    from .loader import load_engine

    engine = load_engine(args.engine, args.backend)
    print(json.dumps({"provenance": engine.provenance.to_dict(),
                      "metadata": json.loads(engine.meta.to_json())}, indent=2))
    return 0
