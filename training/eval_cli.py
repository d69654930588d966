"""``nerveseg eval gate|seg|region|instance MODEL [MODEL ...] --data DATA --splits DIR --out DIR``.

``MODEL`` is anything :func:`nerveseg.engines.loader.load_engine` opens (a ``.pt``
checkpoint through the torch backend, an ``.onnx`` file through ONNX Runtime, ...), so
the same code evaluates every backend. One model: ``metrics.json``, ``report.txt`` and
PNGs in ``--out``. Several: the same per model in ``--out/<name>/``, all on the same
split items, plus a side-by-side ``comparison.txt`` and ``comparison.json``.
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

from nerveseg.engines.interrupts import deferred_signals, stop_reason
from nerveseg.engines.loader import BACKEND_CHOICES

from . import seen

TASKS = {"gate": "classify", "seg": "segment", "region": "region_segment", "instance": "instance"}
log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("task", choices=tuple(TASKS),
                        help="gate (classifier), seg (segmenter), region (region-conditioned segmenter, "
                             "scored per region) or instance (Mask R-CNN)")
    parser.add_argument("model", metavar="MODEL", nargs="+",
                        help="checkpoints (.pt) or engines (.onnx, .engine); several: a comparison table")
    parser.add_argument("--data", required=True, help="dataset folder the split lists refer to")
    parser.add_argument("--splits", default=None, metavar="DIR",
                        help="folder with train/val/test.txt (default: splits/ beside .pt checkpoints)")
    parser.add_argument("--split", choices=("test", "val", "train", "all"), default="test",
                        help="which list of --splits to score; all: every image of --data, a held-out set of "
                             "its own that no model trained on (no --splits needed)")
    parser.add_argument("--out", required=True, help="output folder for metrics.json, report.txt, PNGs")
    parser.add_argument("--backend", default="auto", choices=BACKEND_CHOICES,
                        help="engine backend (default auto; see docs/TENSORRT.md)")
    parser.add_argument("--threads", type=int, default=0,
                        help="inference threads (default: the backend's choice)")
    parser.add_argument("--batch-size", type=int, default=16, help="images per engine call")
    parser.add_argument("--threshold", type=float, default=None,
                        help="seg: nerve where sigmoid > this (default: the engine's, else 0.5)")
    parser.add_argument("--ood", action="store_true",
                        help="gate: also score shifted synthetic scenes and pictures that are not surgery; "
                             "how often the product stays silent (unfamiliar view) or paints a wrong label")
    parser.add_argument("--ood-count", type=int, default=30,
                        help="--ood: pictures per class of each shifted set and per kind of non-surgery picture")


def shared_items(models: list[Path], given: str | None, split: str, data: str) -> list[str]:
    """The ``split`` items every model is scored on; models whose own ``splits/`` differ
    are refused (their numbers would not compare), and so are lists that put one image
    (by content) or one recording on two sides (:func:`.splits.check_leaks`)."""
    from nerveseg.engines.errors import UserError

    from .splits import read_scored, splits_folder

    if split == "all":
        from .importers import import_dataset

        if given:
            raise UserError(f"--split all scores every image of {data}: it takes no --splits ({given})")
        items = list(import_dataset(data, "auto").by_item())
        if not items:
            raise UserError(f"{data}: no images to score")
        return items
    folders = [splits_folder(model, given) for model in models]
    items = read_scored(folders[0], split, data)
    for model, folder in zip(models[1:], folders[1:]):
        if folder != folders[0] and read_scored(folder, split, data) != items:
            raise UserError(f"{models[0]} and {model} come with different {split} splits "
                            f"({folders[0]}, {folder}); give --splits DIR to score both on one")
    if not items:
        raise UserError(f"{folders[0]}: the {split} split is empty")
    return items


def run(args: argparse.Namespace) -> int:
    """0 evaluated; 2 bad input; 130 interrupted (INCOMPLETE left where a report was not finished)."""
    from .compare import comparison, counted, unique_names, write

    models = [Path(m) for m in args.model]
    items = shared_items(models, args.splits, args.split, args.data)
    names = unique_names(models)
    outs = [Path(args.out)] if len(models) == 1 else [Path(args.out) / name for name in names]
    began = time.time()
    reports = evaluate_all(models, outs, items, args)
    if len(models) == 1:
        print((outs[0] / "report.txt").read_text(), end="")
        written = sorted(p.name for p in outs[0].iterdir() if p.is_file() and p.stat().st_mtime >= began - 1)
        print(f"wrote {args.out}/: {', '.join(written)} ({counted(reports[0])})")
        return 0
    table = write(comparison(reports, names, outs), args.out)
    print(table.read_text(), end="")
    print(f"wrote {Path(args.out) / 'comparison.txt'}, {Path(args.out) / 'comparison.json'} and "
          + ", ".join(f"{out}/" for out in outs))
    return 0


def evaluate_all(models: list[Path], outs: list[Path], items: list[str], args) -> list[dict]:
    """Each model into its folder. Every folder (and, for several models, the comparison)
    says INCOMPLETE until its report replaces it; a run stopped part way (Ctrl-C, SIGTERM,
    a failure) leaves INCOMPLETE where a report was not finished, never an earlier run's."""
    from .evaluation import write_incomplete

    folders = outs + ([Path(args.out)] if len(models) > 1 else [])
    for out in folders:
        write_incomplete(out, {"models": [str(m) for m in models], "split": args.split, "data": args.data},
                         STARTED, comparison=out not in outs)
    reports: list[dict] = []
    try:
        for model, out in zip(models, outs):
            reports.append(evaluate_one(model, out, items, args))
    except (Exception, KeyboardInterrupt) as exc:
        why = stop_reason(exc)
        done = [str(m) for m in models[:len(reports)]]
        with deferred_signals() as held:
            for out in folders[len(reports):]:
                write_incomplete(out, {"models": [str(m) for m in models], "evaluated": done, "split": args.split,
                                       "data": args.data}, why, comparison=out not in outs)
            held.clear()
        raise
    return reports


STARTED = "still running, or stopped without a chance to say so (killed, crashed)"


def evaluate_one(model: Path, out: Path, items: list[str], args) -> dict:
    """Load ``model`` as a ``TASKS[args.task]`` engine and :func:`run_eval` it into ``out``."""
    from nerveseg.engines.loader import load_engine

    from .evaluation import run_eval
    from .region.evaluate import region_eval

    engine = load_engine(model, backend=args.backend, task=TASKS[args.task], threads=args.threads)
    threshold = args.threshold
    if threshold is None:
        threshold = float(engine.meta.extra.get("threshold", 0.5))
    try:
        check = seen.check_unseen(engine.meta, model, args.data, items, args.split)
        if not check["checked"]:
            log.info("%s: not checked against the images it learned from (%s)", model, check["reason"])
        elif not check["complete"]:
            log.warning("%s: none of these images is one it learned from, but it was fine-tuned from %s, "
                        "which kept no such record", model, ", ".join(check["unknown"]))
        if args.task == "region":
            return region_eval(engine, args.data, items, out, args.split, args.batch_size, threshold)
        report = run_eval(engine, args.data, items, out, args.split, args.batch_size, threshold)
        if getattr(args, "ood", False):
            report["ood"] = write_ood(engine, Path(args.data), items, out, args.ood_count)
        return report
    finally:
        engine.close()




def write_ood(engine, root: Path, items: list[str], out: Path, count: int) -> dict:
    """``out/ood.json`` and the table appended to ``out/report.txt`` (:mod:`.ood`)."""
    import json

    import numpy as np

    from nerveseg.engines.errors import UserError
    from nerveseg.engines.interrupts import write_atomic

    from .data import label_of, read_rgb
    from .ood import ood_lines, ood_report

    if engine.meta.task != "classify":
        raise UserError(f"{engine.provenance.path}: --ood scores a gate (nerveseg eval gate ... --ood)")
    images = np.stack([read_rgb(root / item, engine.input_size) for item in items])
    report = ood_report(engine, images, [engine.classes[label_of(item, engine.classes)] for item in items], count)
    write_atomic(out / "ood.json", json.dumps(report, indent=1))
    write_atomic(out / "report.txt", (out / "report.txt").read_text() + "\n".join(ood_lines(report)) + "\n")
    return report
