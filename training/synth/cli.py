"""``nerveseg synth``: write synthetic training sets and a sample video.

    nerveseg synth classify OUT --per-class 200 --size 256 --seed 0
    nerveseg synth segment OUT --count 300 --negatives 0.1
    nerveseg synth video OUT.mp4 --seconds 6 --fps 30
    nerveseg synth all OUT            # OUT/classify, OUT/segment, OUT/sample.mp4
    nerveseg synth sheet docs/img/synth_examples.png
    nerveseg synth instances OUT --count 300 --size 256   # OUT/coco + OUT/folders (per class)
    nerveseg synth regions OUT --count 200 --size 128   # region-conditioned set (regions.py)
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

from nerveseg.engines.errors import UserError

from .scene import DOMAINS

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="synth_command", metavar="WHAT", required=True)
    classify = sub.add_parser("classify", help="class folders: OUT/{nerve,opening_wound,tendon}/*.png")
    classify.add_argument("out", type=Path, metavar="OUT", help="output folder (created if missing)")
    classify.add_argument("--per-class", type=int, default=200, help="images per class (default 200)")
    segment = sub.add_parser("segment", help="Supervisely project with nerve masks (masks_machine)")
    segment.add_argument("out", type=Path, metavar="OUT", help="output folder (created if missing)")
    segment.add_argument("--count", type=int, default=300, help="images (default 300)")
    segment.add_argument("--negatives", type=float, default=0.0,
                         help="fraction of tendon/wound images with empty masks (default 0)")
    segment.add_argument("--name", default="synthetic", help="dataset folder name (default synthetic)")
    video = sub.add_parser("video", help="side-by-side stereo H.264 video with ground truth beside it")
    video.add_argument("out", type=Path, metavar="OUT.mp4", help="output video file")
    _video_options(video)
    every = sub.add_parser("all", help="all three with defaults: OUT/classify, OUT/segment, OUT/sample.mp4")
    every.add_argument("out", type=Path, metavar="OUT", help="output folder (created if missing)")
    every.add_argument("--per-class", type=int, default=200, help="classification images per class")
    every.add_argument("--count", type=int, default=300, help="segmentation images")
    every.add_argument("--negatives", type=float, default=0.0, help="segmentation negatives fraction")
    _video_options(every)
    instances = sub.add_parser("instances", help="multi-class instance set (nerve/vessel/tendon): OUT/coco "
                               "(COCO JSON) and OUT/folders (per-class image/mask folders)")
    instances.add_argument("out", type=Path, metavar="OUT", help="output folder (created if missing)")
    instances.add_argument("--count", type=int, default=300, help="images (default 300)")
    instances.add_argument("--size", type=int, default=256, help="image side in px (default 256)")
    sheet = sub.add_parser("sheet", help="contact sheet PNG: frames and training crops of each class")
    sheet.add_argument("out", type=Path, metavar="OUT.png", help="output PNG file")
    for command in (classify, segment, every):
        command.add_argument("--size", type=int, default=256, help="stored image side in px (default 256)")
        command.add_argument("--render-size", type=_size, default=(540, 960), metavar="WxH",
                             help="stereo frame size rendered before cropping (default 960x540)")
    for command in (classify, segment, every, video):
        command.add_argument("--domain", choices=DOMAINS, default="wide",
                             help="wide: the training world; target: a setting held out of training "
                                  "(docs/SIM2REAL.md); classic: the narrower world before it, in which the "
                                  "first engines were trained; mixed: wide with a quarter of classic items "
                                  "(default wide)")
    for command in (classify, segment, video, every, sheet, instances):
        command.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
        command.add_argument("--no-progress", action="store_true", help="no progress bars")
    _regions_parser(sub)


def _regions_parser(sub) -> None:
    regions = sub.add_parser("regions", help="region-conditioned set: images, nested regions, per-region masks")
    regions.add_argument("out", type=Path, metavar="OUT", help="output folder (created if missing)")
    regions.add_argument("--count", type=int, default=200, help="images (2-3 regions each; default 200)")
    regions.add_argument("--size", type=int, default=128, help="image side in px (default 128)")
    regions.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    regions.add_argument("--no-progress", action="store_true", help="no progress bars")


def _video_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seconds", type=float, default=6.0, help="length (default 6)")
    parser.add_argument("--fps", type=int, default=30, help="frame rate (default 30)")
    parser.add_argument("--video-size", type=_size, default=(1080, 1920), metavar="WxH",
                        help="stereo frame size (default 1920x1080)")
    parser.add_argument("--crf", type=int, default=26, help="x264 quality, lower is larger (default 26)")


def _size(text: str) -> tuple[int, int]:
    """``"1920x1080"`` → ``(1080, 1920)``: (height, width), as the writers take it."""
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not WIDTHxHEIGHT, e.g. 960x540") from None
    if width < 32 or height < 16:
        raise argparse.ArgumentTypeError(f"{text}: too small (at least 32x16)")
    return height, width


def run(args: argparse.Namespace) -> int:
    from . import write_classification, write_segmentation, write_video

    progress = not args.no_progress
    what = args.synth_command
    out = Path(args.out)
    if what == "all" and out.suffix:
        raise UserError(f"{out}: `synth all` writes a folder; give a folder name")
    started = time.perf_counter()
    if what == "regions":
        from .regions import write_regions

        samples = write_regions(out, args.count, args.size, args.seed, progress)
        log.info("region set: %s (%d images, %d regions) in %.1f s", out, args.count, samples,
                 time.perf_counter() - started)
        return 0
    if what == "instances":
        from .instances import write_instances

        totals = write_instances(out, args.count, args.size, args.seed, progress)
        log.info("instance set: %s (%d images; instances %s)", out, args.count, totals)
        return 0
    if what == "sheet":
        from .sheet import write_sheet

        log.info("contact sheet: %s", write_sheet(out, args.seed))
        return 0
    if what in ("classify", "all"):
        target = out / "classify" if what == "all" else out
        write_classification(target, args.per_class, args.size, args.seed, args.render_size, progress,
                             args.domain)
        log.info("classification set: %s (%d per class)", target, args.per_class)
        _print_stats(target)
    if what in ("segment", "all"):
        target = out / "segment" if what == "all" else out
        write_segmentation(target, args.count, args.size, args.seed, args.negatives,
                           getattr(args, "name", "synthetic"), args.render_size, progress, args.domain)
        log.info("segmentation set: %s (%d images)", target, args.count)
        _print_stats(target)
    if what in ("video", "all"):
        target = out / "sample.mp4" if what == "all" else out
        frames = write_video(target, args.seconds, args.fps, args.seed, args.video_size, args.crf, progress,
                             args.domain)
        log.info("video: %s (%d frames, %.1f MB)", target, frames, target.stat().st_size / 1e6)
    log.info("done in %.1f s", time.perf_counter() - started)
    return 0


def _print_stats(root: Path) -> None:
    """Print the look statistics the writer measured beside the real frames' ranges."""
    import json

    from .stats import STATS_FILE, table

    print(f"{root}: look of the rendered one-eye frames, median [min-max] "
          f"(real frames: issue 15; {root / STATS_FILE})")
    print(table(json.loads((root / STATS_FILE).read_text())))
