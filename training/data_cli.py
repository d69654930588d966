"""``nerveseg data check|split DATA``: validate a dataset, or write shared split lists.

``check`` imports ``DATA`` with the layout's importer (see
:mod:`nerveseg.training.importers`), prints the per-class report and exits 2 with one
line naming the bad files; ``--skip-bad`` reports and lists them instead. ``split``
writes ``train/val/test.txt`` that every model family then reuses with ``--splits``.
torch is never imported.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="data_command", metavar="ACTION", required=True)
    check = sub.add_parser("check", help="validate a dataset and print counts per class",
                           description="Validate DATA and print its layout and counts per class.")
    split = sub.add_parser("split", help="write train/val/test lists every model family can reuse",
                           description="Validate DATA and write OUT/{train,val,test}.txt (7 : 1.5 : 1.5, "
                                       "stratified by class or Supervisely dataset; identical images and "
                                       "frames of one recording (DATA/groups.csv, or names like "
                                       "<video>_frame<N>) always on one side).")
    for command in (check, split):
        _data_options(command)
    check.add_argument("--out", default=None, metavar="DIR",
                       help="also write DIR/import_report.json and DIR/skipped.txt")
    split.add_argument("--out", required=True, metavar="DIR", help="folder for the three lists")
    split.add_argument("--seed", type=int, default=0, help="split seed (default 0)")


def _data_options(p: argparse.ArgumentParser) -> None:
    from .importers import IMPORTERS

    p.add_argument("data", help="dataset folder")
    p.add_argument("--layout", default="auto", choices=("auto", *IMPORTERS),
                   help="dataset layout (default: detected from the folder names)")
    p.add_argument("--classes", nargs="+", default=None, metavar="NAME",
                   help="class names in order (default: the layout's own list)")
    p.add_argument("--annotations", default=None, metavar="FILE", help="COCO JSON (default: found in DATA)")
    p.add_argument("--skip-bad", action="store_true",
                   help="go on without bad files and write the list of what was skipped")


def load(args) -> "ImportedDataset":  # noqa: F821 (imported lazily)
    from .importers import import_dataset

    return import_dataset(args.data, args.layout, classes=args.classes, skip_bad=args.skip_bad,
                          annotations=args.annotations)


def write_outputs(dataset, out: Path) -> Path | None:
    """``out/import_report.json`` and, if anything was skipped, ``out/skipped.txt``."""
    from .importers import write_skipped

    out.mkdir(parents=True, exist_ok=True)
    (out / "import_report.json").write_text(json.dumps(dataset.to_dict(), indent=1))
    return write_skipped(out / "skipped.txt", dataset)


def run(args: argparse.Namespace) -> int:
    from .importers import format_report
    from .splits import dataset_splits, write_splits

    dataset = load(args)
    skipped = write_outputs(dataset, Path(args.out)) if args.out else None
    print(format_report(dataset, skipped), end="")
    if args.data_command == "split":
        splits = dataset_splits(None, dataset, args.seed)
        write_splits(args.out, splits)
        print(f"wrote {args.out}/train.txt, val.txt, test.txt: "
              + ", ".join(f"{len(v)} {k}" for k, v in splits.items()))
    return 0
