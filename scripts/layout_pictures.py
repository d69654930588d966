"""Draw one picture per stereo layout for docs/SOURCES.md: the frame as the device sends
it, each eye's box (left: green, right: blue) and, in yellow, the view the engines see
(``eye: left``, automatic border crop). Run: ``.venv/bin/python scripts/layout_pictures.py docs/img``."""

from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np

from nerveseg.engines.preprocess import PreprocessConfig, Preprocessor, eye_box

EYE_W, EYE_H = 320, 180


def eye(seed: int, label: str) -> np.ndarray:
    """A stand-in eye image: grey tissue, a glare edge, a bright band, its name."""
    rng = np.random.default_rng(seed)
    grey = cv2.GaussianBlur(rng.normal(120, 40, (EYE_H, EYE_W)).astype(np.float32), (0, 0), 9)
    image = np.repeat(np.clip(grey, 0, 255).astype(np.uint8)[..., None], 3, axis=2)
    image[:, :18] = 255
    cv2.line(image, (0, 100), (EYE_W, 70), (235, 235, 235), 9)
    cv2.putText(image, label, (30, 40), cv2.FONT_HERSHEY_SIMPLEX, 1.0, (20, 20, 20), 2, cv2.LINE_AA)
    return image


def frames() -> dict[str, np.ndarray]:
    left, right = eye(1, "LEFT"), eye(2, "RIGHT")
    return {
        "side-by-side": np.concatenate([left, right], axis=1),
        "side-by-side-half": np.concatenate([left[:, ::2], right[:, ::2]], axis=1),
        "top-bottom": np.concatenate([left, right], axis=0),
        "mono": left,
    }


def picture(layout: str, frame: np.ndarray) -> np.ndarray:
    out = frame.copy()
    h, w = frame.shape[:2]
    for which, colour in (("left", (60, 220, 60)), ("right", (60, 120, 255))):
        if layout == "mono" and which == "right":
            continue
        b = eye_box(h, w, which, layout)
        cv2.rectangle(out, (b.x0 + 2, b.y0 + 2), (b.x1 - 3, b.y1 - 3), colour, 2)
    pre = Preprocessor(PreprocessConfig(layout=layout, eye="left"), (64, 64))
    view, _, box = pre(frame)
    if layout == "side-by-side-half":  # the box is in the stretched eye's pixels
        box = box._replace(x0=box.x0 // 2, x1=box.x1 // 2)
    cv2.rectangle(out, (box.x0 + 5, box.y0 + 5), (box.x1 - 6, box.y1 - 6), (255, 220, 0), 2)
    cv2.putText(out, layout, (8, h - 10), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (255, 220, 0), 2, cv2.LINE_AA)
    return out


def main(folder: str) -> list[Path]:
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for layout, frame in frames().items():
        path = out / f"layout_{layout}.png"
        cv2.imwrite(str(path), cv2.cvtColor(picture(layout, frame), cv2.COLOR_RGB2BGR))
        written.append(path)
    return written


if __name__ == "__main__":
    for path in main(sys.argv[1] if len(sys.argv) > 1 else "docs/img"):
        print(path)
