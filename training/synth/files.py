"""Writing outputs: checked folders and PNGs whose failures read as one-line user errors."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from nerveseg.engines.errors import UserError


def prepare_dir(path: Path) -> Path:
    """Create ``path`` (and parents) or raise :class:`UserError` naming it."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise UserError(f"{path}: exists and is not a folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"{path}: cannot create folder ({exc.strerror or exc})") from None
    probe = path / ".nerveseg-write-test"
    try:
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise UserError(f"{path}: not writable ({exc.strerror or exc})") from None
    return path


def write_png(path: Path, image: np.ndarray) -> None:
    """Write ``(H, W, 3) uint8 RGB`` or ``(H, W) uint8`` as PNG; byte-identical for equal input."""
    if image.ndim == 3:
        image = image[..., ::-1]  # OpenCV writes BGR
    ok, data = cv2.imencode(".png", np.ascontiguousarray(image))
    if not ok:
        raise UserError(f"{path}: PNG encoding failed")
    try:
        Path(path).write_bytes(data.tobytes())
    except OSError as exc:
        raise UserError(f"{path}: cannot write ({exc.strerror or exc})") from None
