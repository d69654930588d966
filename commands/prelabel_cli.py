"""``nerveseg prelabel DATASET --out LABELS``: the engines' labels and masks, for a person to correct.

Runs the runtime's own gate and segmenter stages (:class:`~nerveseg.realtime.stages.GateOp`,
:class:`~nerveseg.realtime.stages.SegmentOp`, engines and thresholds from ``--config`` and
the flags, as ``nerveseg replay``) on each image of ``DATASET/images`` (what ``nerveseg
extract`` writes) or ``DATASET``, taking the image as the view (it was cropped already).
As at run time, a frame the gate does not call nerve gets no mask; ``--segment-all`` masks
every frame (an annotator then sees what the segmenter finds where the gate said no).
Writes ``LABELS/coco``, ``LABELS/cvat``, ``LABELS/supervisely``, ``LABELS/classes`` (the gate's
answers as class folders; :mod:`.annotation_formats`) and ``LABELS/prelabel.json`` (per image: gate class, confidence, mask pixels; the engines).
Runtime install only: no torch.
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from nerveseg.engines import interrupts
from nerveseg.engines.errors import UserError
from nerveseg.engines.preprocess import PreprocessConfig
from nerveseg.realtime import config as cfg
from nerveseg.realtime.frames import Frame
from nerveseg.realtime.pipeline import Engines
from nerveseg.realtime.replay_cli import add_engine_choice_arguments, overrides
from nerveseg.realtime.stages import GateOp, SegmentOp

from .annotation_formats import WRITERS, Prelabel, write_json

SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
# The image is the view already: no eye, no border, no square cut again.
AS_VIEW = PreprocessConfig(layout="mono", border="none", square=False)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("dataset", type=Path, metavar="DATASET",
                        help="folder of images (DATASET/images from nerveseg extract, or the images themselves)")
    parser.add_argument("--out", required=True, type=Path, metavar="LABELS", help="folder to create")
    parser.add_argument("--formats", nargs="+", choices=sorted(WRITERS), default=sorted(WRITERS),
                        help="annotation formats to write (default: all)")
    parser.add_argument("--segment-all", action="store_true",
                        help="mask every image, not only those the gate calls nerve")
    add_engine_choice_arguments(parser)
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def images_of(dataset: Path) -> list[Path]:
    folder = dataset / "images" if (dataset / "images").is_dir() else dataset
    if not folder.is_dir():
        raise UserError(f"{dataset}: not a folder of images")
    found = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in SUFFIXES)
    if not found:
        raise UserError(f"{folder}: no images ({', '.join(SUFFIXES)})")
    names = [p.name for p in found]
    if len(set(names)) != len(names):
        raise UserError(f"{folder}: image names must be unique")
    return found


def run(args: argparse.Namespace) -> int:
    images = images_of(args.dataset)
    extra = {"eye": None, "codec": None}  # the replay options prelabel does not have
    config = cfg.load(args.config, overrides(argparse.Namespace(**vars(args), **extra)))
    engines = Engines.load(config)
    gate = GateOp(engines.gate, AS_VIEW, config.gate.nerve_class, config.gate.min_confidence)
    seg = SegmentOp(engines.segment, config.segment.threshold, nerve_class=config.gate.nerve_class)
    labels = []
    for i, path in enumerate(tqdm(images, desc="prelabel", unit="img", disable=args.no_progress)):
        interrupts.check_stop()
        labels.append(label_one(gate, seg, i, path, args.segment_all))
    mask_class = config.gate.nerve_class
    for name in args.formats:
        WRITERS[name](args.out / name, labels, mask_class, tuple(engines.gate.classes))
    write_json(args.out / "prelabel.json", summary(args, config, engines, labels))
    masked = sum(bool(p.mask.any()) for p in labels)
    print(f"{args.out}: {len(labels)} images pre-labelled ({masked} with a {mask_class} mask) as "
          f"{', '.join(args.formats)}")
    return 0


def label_one(gate: GateOp, seg: SegmentOp, index: int, path: Path, segment_all: bool) -> Prelabel:
    """The runtime's answer for one image file: gate class and confidence, mask ``(H, W) bool``."""
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise UserError(f"{path}: cannot read as an image")
    frame = Frame(index, time.perf_counter_ns(), cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
    g = gate.process(frame)
    if segment_all and not g.is_nerve:
        g = dataclasses.replace(g, is_nerve=True)
    mask = seg.process(g).mask
    if mask is None:
        mask = np.zeros(bgr.shape[:2], bool)
    return Prelabel(path, np.ascontiguousarray(mask, dtype=bool), g.label, g.confidence)


def summary(args, config, engines, labels: list[Prelabel]) -> dict:
    return {"format": "nerveseg-prelabel", "dataset": str(args.dataset), "formats": list(args.formats),
            "segment_all": args.segment_all, "threshold": config.segment.threshold,
            "min_confidence": config.gate.min_confidence, "engines": engines.provenance(),
            "images": [{"file": p.image.name, "gate": p.label, "confidence": round(p.confidence, 4),
                        "mask_pixels": int(p.mask.sum())} for p in labels]}
