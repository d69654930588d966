"""``nerveseg extract VIDEO --every 1s --out DATASET``: frames to label, cut as the runtime cuts.

The original study's first step: one frame per interval of a recording, each cropped
exactly as the runtime crops its input (:class:`~nerveseg.engines.preprocess.Preprocessor`:
the eye, the blown-out border, the square; found on the first frame and kept for the run),
near-duplicates dropped (a 64-bit difference hash within ``--max-distance`` bits of a frame
already kept: a camera that did not move gives nothing new to label). Writes::

    DATASET/images/<video>_<frame>.png   (S, S, 3) the view, at the view's size or --size
    DATASET/extract.json                 source, interval, crop, and per frame: index,
                                         time, hash; the dropped ones and what they repeat

``DATASET/images`` is the image half of the ``pairs`` and COCO layouts: ``nerveseg prelabel``
or an annotator adds the masks. Runtime install only (PyAV, OpenCV): no torch.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import av
import cv2
import numpy as np
from tqdm import tqdm

from nerveseg.engines import interrupts, outputs
from nerveseg.engines.errors import UserError
from nerveseg.engines.preprocess import Preprocessor
from nerveseg.realtime import config as cfg
from nerveseg.realtime.sources import video_file_arg

INDEX = "extract.json"
EVERY = re.compile(r"^(\d+(?:\.\d+)?)(s|f)$")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("video", type=video_file_arg, metavar="VIDEO", help="recorded video file")
    parser.add_argument("--out", required=True, type=Path, metavar="DATASET", help="dataset folder to create")
    parser.add_argument("--every", default="1s", type=_every, metavar="INTERVAL",
                        help="one frame per interval: seconds (1s, 0.5s) or frames (30f) (default 1s)")
    parser.add_argument("--max-distance", type=int, default=4, metavar="BITS",
                        help="a frame whose 64-bit difference hash is within BITS of a kept one is a "
                             "near-duplicate, dropped (default 4)")
    parser.add_argument("--keep-duplicates", action="store_true", help="keep every due frame")
    parser.add_argument("--size", type=int, default=None,
                        help="store the view resized to SIZE x SIZE px (default: the view's own size)")
    parser.add_argument("--config", type=Path, help="YAML run configuration: its preprocess section crops")
    parser.add_argument("--eye", choices=["left", "right", "full"], help="which part of a stereo frame to use")
    parser.add_argument("--layout", choices=["auto", "side-by-side", "side-by-side-half", "top-bottom", "mono"],
                        help="how a frame holds the eyes (default: auto, from the frame's shape)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def _every(text: str) -> tuple[float, str]:
    """``"1s"`` → ``(1.0, "s")``, ``"30f"`` → ``(30.0, "f")``."""
    match = EVERY.match(text.strip().lower())
    if not match or float(match.group(1)) <= 0:
        raise argparse.ArgumentTypeError(f"{text!r}: an interval is a positive number of seconds (1s, 0.5s) "
                                         f"or frames (30f)")
    return float(match.group(1)), match.group(2)


def dhash(image: np.ndarray) -> int:
    """64-bit difference hash of an ``(H, W, 3) uint8`` image: the sign of each horizontal
    step of its 9 × 8 grey thumbnail (robust to noise, compression and small brightness
    changes; a moved camera changes many bits)."""
    grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    small = cv2.resize(grey, (9, 8), interpolation=cv2.INTER_AREA).astype(np.int16)
    bits = (small[:, 1:] > small[:, :-1]).ravel()
    return int(np.packbits(bits).view(">u8")[0])


def nearest(code: int, kept: list[int]) -> tuple[int, int]:
    """``(index, Hamming distance)`` of the kept hash closest to ``code`` (``(-1, 65)``: none)."""
    best = (-1, 65)
    for i, other in enumerate(kept):
        d = (code ^ other).bit_count()
        if d < best[1]:
            best = (i, d)
    return best


def run(args: argparse.Namespace) -> int:
    if args.max_distance > 64:
        raise UserError(f"--max-distance {args.max_distance}: at most 64 (bits of a 64-bit hash)")
    config = cfg.load(args.config, {"preprocess": {"eye": args.eye, "layout": args.layout}})
    images = outputs.claim_folder(args.out) / "images"
    images.mkdir(parents=True, exist_ok=True)
    index = {"format": "nerveseg-extract", "source": str(args.video), "every": list(args.every),
             "max_distance": None if args.keep_duplicates else args.max_distance, "size": args.size, "complete": False,
             "frames": [], "dropped": []}
    try:
        _extract(args, config.preprocess, images, index)
        index["complete"] = True
    finally:  # an interrupted run says so: complete stays false
        outputs.write_text_atomic(args.out / INDEX, json.dumps(index, indent=1) + "\n")
    kept, dropped = len(index["frames"]), len(index["dropped"])
    print(f"{args.out}: {kept} frames kept, {dropped} near-duplicates dropped "
          f"(crop {index['view']['width']}x{index['view']['height']} at x={index['view']['x']}, "
          f"y={index['view']['y']} of {index['frame_size']})")
    return 0


def _open(path: Path):
    """The opened container of ``path`` and its first video stream (one-line errors)."""
    try:
        container = av.open(str(path))
    except (OSError, av.FFmpegError) as exc:
        raise UserError(f"{path}: cannot open as a video ({' '.join(str(exc).split())[:160]})") from None
    if not container.streams.video:
        container.close()
        raise UserError(f"{path}: has no video stream")
    return container, container.streams.video[0]


def _frames(container, stream):
    """``(index, time in s, rate, (H, W, 3) uint8 RGB)`` of every frame of ``stream``."""
    from nerveseg.realtime.sources.rgb import RgbConverter

    rate = float(stream.average_rate or 0) or 30.0
    rgb = RgbConverter()  # one converter for the file, not a thread pool per frame
    i = 0
    try:
        for i, frame in enumerate(container.decode(stream)):
            t = float(frame.time) if frame.time is not None else i / rate
            yield i, t, rate, rgb(frame)
    except av.FFmpegError as exc:  # a damaged file: what came before is kept, and said
        raise UserError(f"{container.name}: cannot decode past frame {i} "
                        f"({' '.join(str(exc).split())[:160]})") from None


class _Picker:
    """The frames due (one per interval) that are not near-duplicates of a kept one."""

    def __init__(self, args, preprocess, images: Path, index: dict):
        self.args, self.images, self.index = args, images, index
        self.prep = Preprocessor(preprocess, (args.size or 224,) * 2)
        self.kept: list[int] = []
        self.next_at = 0.0

    def due(self, i: int, t: float) -> bool:
        """Frame ``i`` at ``t`` s is the first at or after the next interval mark."""
        step, unit = self.args.every
        position = t if unit == "s" else float(i)
        if position < self.next_at - 1e-6:
            return False
        while self.next_at <= position + 1e-6:
            self.next_at += step
        return True

    def offer(self, i: int, t: float, rate: float, frame: np.ndarray) -> None:
        """Crop frame ``i`` as the runtime does; write it unless it repeats a kept one."""
        args, index = self.args, self.index
        view, _, box = self.prep(frame)
        index.setdefault("view", {"x": box.x0, "y": box.y0, "width": box.width, "height": box.height})
        index.setdefault("frame_size", f"{frame.shape[1]}x{frame.shape[0]}")
        index.setdefault("fps", rate)
        code = dhash(view)
        j, distance = nearest(code, self.kept)
        record = {"frame": i, "time_s": round(t, 4), "dhash": f"{code:016x}"}
        if j >= 0 and distance <= args.max_distance and not args.keep_duplicates:
            index["dropped"].append({**record, "repeats": index["frames"][j]["file"], "distance": distance})
            return
        image = view if not args.size else cv2.resize(view, (args.size, args.size), interpolation=cv2.INTER_AREA)
        name = f"{args.video.stem}_{i:06d}.png"
        if not cv2.imwrite(str(self.images / name), cv2.cvtColor(image, cv2.COLOR_RGB2BGR)):
            raise UserError(f"{self.images / name}: cannot write")
        self.kept.append(code)
        index["frames"].append({**record, "file": f"images/{name}"})


def _extract(args, preprocess, images: Path, index: dict) -> None:
    picker = _Picker(args, preprocess, images, index)
    container, stream = _open(args.video)
    with container, tqdm(desc="extract", unit="frame", disable=args.no_progress) as bar:
        for i, t, rate, frame in _frames(container, stream):
            interrupts.check_stop()
            bar.update()
            if picker.due(i, t):
                picker.offer(i, t, rate, frame)
    if not index["frames"]:
        raise UserError(f"{args.video}: no frame decoded")
