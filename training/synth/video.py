"""A synthetic stereoscope recording with ground truth: scenes in sequence, each filmed
with a slowly drifting camera, focus breathing and fresh sensor noise every frame.

``OUT.mp4`` is side-by-side stereo, H.264 yuv420p; beside it ``OUT.gt/labels.csv``
(``frame,class``) and ``OUT.gt/masks/NNNNNN.png`` (left eye, 0/1, one per frame).
"""

from __future__ import annotations

import math
from fractions import Fraction
from pathlib import Path
from typing import NamedTuple

import av
import numpy as np
from tqdm import tqdm

from nerveseg.engines.errors import UserError

from .fields import Pose
from .files import prepare_dir, write_png
from .render import render_frame
from .scene import Scene, draws_classic, in_domain, random_scene

SEQUENCE = ("nerve", "tendon", "nerve", "opening_wound")
SUFFIXES = (".mp4", ".mkv", ".mov")
_PLAN, _SCENE, _NOISE = 20, 21, 22  # the "kind" in the seeds drawn here


class Shot(NamedTuple):
    """One scene on screen from frame ``start`` on, and how the camera moves meanwhile."""

    start: int
    scene: Scene
    drift: tuple[float, float, float]        # vx, vy (scene units/s), turn (rad/s)
    sway: tuple[float, float, float, float]  # amplitudes: x, y, zoom, focus
    periods: tuple[float, float, float, float]
    phases: tuple[float, float, float, float]


def plan(seed: int, frames: int, fps: float, domain: str = "wide") -> list[Shot]:
    """Shots covering ``frames`` frames: :data:`SEQUENCE` repeated, 1.2–2.2 s each, in the
    synthetic world ``domain`` (:data:`~.scene.DOMAINS`)."""
    rng = np.random.default_rng((seed, _PLAN))
    shots, start, k = [], 0, 0
    while start < frames:
        u = rng.uniform
        scene = random_scene(np.random.default_rng((seed, _SCENE, k)), SEQUENCE[k % len(SEQUENCE)],
                             classic=draws_classic(domain, np.random.default_rng((seed, _SCENE, k, 98))))
        scene = in_domain(scene, np.random.default_rng((seed, _SCENE, k, 99)), domain)
        shots.append(Shot(start, scene, drift=(u(-0.03, 0.03), u(-0.03, 0.03), u(-0.02, 0.02)),
                          sway=(u(0.0, 0.01), u(0.0, 0.01), u(0.005, 0.02), u(0.03, 0.1)),
                          periods=tuple(u(1.5, 4.0, 4)), phases=tuple(u(0, 2 * math.pi, 4))))
        start += max(1, round(u(1.2, 2.2) * fps))
        k += 1
    return shots


def camera(shot: Shot, t: float) -> tuple[Pose, float]:
    """Camera pose and focus offset ``t`` seconds into ``shot``: slow drift, a gentle sway,
    focus breathing, and a focus pull settling over the first few tenths of a second."""
    w = [math.sin(2 * math.pi * t / p + f) for p, f in zip(shot.periods, shot.phases)]
    vx, vy, turn = shot.drift
    ax, ay, az, af = shot.sway
    pose = Pose(tx=vx * t + ax * w[0], ty=vy * t + ay * w[1], angle=turn * t, zoom=1.0 + az * w[2])
    return pose, af * w[3] + 0.4 * math.exp(-t / 0.15)


def write_video(path: str | Path, seconds: float = 6.0, fps: int = 30, seed: int = 0,
                size: tuple[int, int] = (1080, 1920), crf: int = 26, progress: bool = True,
                domain: str = "wide") -> int:
    """Render and encode the video at ``path`` with its ground truth; return the frame count.

    ``size`` is the stereo ``(height, width)``; both must be even (yuv420p).
    """
    path = Path(path)
    frames = _check(path, seconds, fps, seed, size, crf)
    gt = path.parent / f"{path.stem}.gt"
    masks = prepare_dir(gt / "masks")
    shots = plan(seed, frames, fps, domain)
    height, width = size
    try:
        container = av.open(str(path), mode="w")
    except (OSError, av.FFmpegError) as exc:
        raise UserError(f"{path}: cannot write ({exc})") from None
    with container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"crf": str(crf), "preset": "medium"}
        labels = ["frame,class"]
        for index in tqdm(range(frames), desc="video", unit="frame", disable=not progress):
            shot = next(s for s in reversed(shots) if s.start <= index)
            pose, focus = camera(shot, (index - shot.start) / fps)
            rng = np.random.default_rng((seed, _NOISE, index))
            frame, mask = render_frame(shot.scene, height, width, pose, focus, rng)
            picture = av.VideoFrame.from_ndarray(frame, format="rgb24")
            picture.pts, picture.time_base = index, Fraction(1, fps)
            container.mux(stream.encode(picture))
            write_png(masks / f"{index:06d}.png", mask)
            labels.append(f"{index},{shot.scene.cls}")
        container.mux(stream.encode(None))
    (gt / "labels.csv").write_text("\n".join(labels) + "\n")
    return frames


def _check(path: Path, seconds: float, fps: int, seed: int, size: tuple[int, int], crf: int) -> int:
    if path.suffix.lower() not in SUFFIXES:
        raise UserError(f"{path}: video must end in {', '.join(SUFFIXES)}")
    if not (0 < fps <= 240) or seconds <= 0:
        raise UserError(f"{path}: need seconds > 0 and 0 < fps <= 240, not {seconds} s at {fps} fps")
    if size[0] < 64 or size[1] < 128 or size[0] % 2 or size[1] % 2:
        raise UserError(f"{path}: size {size[1]}x{size[0]} must be even and at least 128x64")
    if not 0 <= crf <= 51 or seed < 0:
        raise UserError(f"{path}: need 0 <= crf <= 51 and seed >= 0")
    prepare_dir(path.parent)
    if path.is_dir():
        raise UserError(f"{path}: is a folder")
    return max(1, round(seconds * fps))
