"""``nerveseg eval gate|seg MODEL --data DATA --splits DIR --out DIR``.

``MODEL`` is anything :func:`nerveseg.engines.loader.load_engine` opens (a ``.pt``
checkpoint through the torch backend, an ``.onnx`` file through ONNX Runtime, ...), so
the same code evaluates every backend. Writes ``metrics.json``, ``report.txt`` and PNGs.
"""

from __future__ import annotations

import argparse
from pathlib import Path

TASKS = {"gate": "classify", "seg": "segment"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("task", choices=tuple(TASKS), help="gate (classifier) or seg (segmenter)")
    parser.add_argument("model", metavar="MODEL", help="checkpoint (.pt) or engine (.onnx, .engine)")
    parser.add_argument("--data", required=True, help="dataset folder the split lists refer to")
    parser.add_argument("--splits", default=None, metavar="DIR",
                        help="folder with train/val/test.txt (default: splits/ beside a .pt checkpoint)")
    parser.add_argument("--split", choices=("test", "val", "train"), default="test")
    parser.add_argument("--out", required=True, help="output folder for metrics.json, report.txt, PNGs")
    parser.add_argument("--backend", default="auto", help="engine backend (default auto)")
    parser.add_argument("--threads", type=int, default=0,
                        help="inference threads (default: the backend's choice)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--threshold", type=float, default=None,
                        help="seg: nerve where sigmoid > this (default: the engine's, else 0.5)")


def splits_folder(model: Path, given: str | None) -> Path:
    """``--splits`` or the run folder's ``splits/`` beside a checkpoint."""
    from nerveseg.realtime.errors import UserError

    if given:
        return Path(given)
    beside = model.parent / "splits"
    if model.suffix in (".pt", ".pth") and (beside / "test.txt").is_file():
        return beside
    raise UserError(f"{model}: give --splits DIR (no splits/ folder beside the model)")


def run(args: argparse.Namespace) -> int:
    from nerveseg.engines.loader import load_engine
    from nerveseg.realtime.errors import UserError

    from .evaluation import run_eval
    from .splits import read_split

    model = Path(args.model)
    items = read_split(splits_folder(model, args.splits), args.split, args.data)
    if not items:
        raise UserError(f"{args.splits or model}: the {args.split} split is empty")
    engine = load_engine(model, backend=args.backend, task=TASKS[args.task], threads=args.threads)
    threshold = args.threshold
    if threshold is None:
        threshold = float(engine.meta.extra.get("threshold", 0.5))
    try:
        report = run_eval(engine, args.data, items, args.out, args.split, args.batch_size, threshold)
    finally:
        engine.close()
    print((Path(args.out) / "report.txt").read_text(), end="")
    print(f"wrote {args.out}/metrics.json, report.txt and PNGs ({report['n']} images)")
    return 0
