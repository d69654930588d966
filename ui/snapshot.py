"""Snapshots: the annotated frame as a PNG that says which engines made it.

The provenance goes into PNG ``tEXt`` chunks (key ``nerveseg``, JSON), so a snapshot
pulled out of a case folder still names its model and file hashes. Qt-free: written
from a worker thread, never the GUI thread.
"""

from __future__ import annotations

import json
import struct
import zlib
from pathlib import Path

import cv2
import numpy as np

TEXT_KEY = "nerveseg"


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_bytes(image: np.ndarray, text: dict[str, str]) -> bytes:
    """``image``: ``(h, w, 3) uint8 RGB`` → PNG bytes with one ``tEXt`` chunk per item
    (Latin-1; pass JSON for anything richer)."""
    ok, encoded = cv2.imencode(".png", np.ascontiguousarray(image[..., ::-1]))
    if not ok:
        raise ValueError("PNG encoding failed")
    data = encoded.tobytes()
    ihdr_end = 8 + 8 + 13 + 4  # signature, IHDR length+type, IHDR data, CRC
    chunks = b"".join(_chunk(b"tEXt", k.encode("latin-1") + b"\0" + v.encode("latin-1"))
                      for k, v in text.items())
    return data[:ihdr_end] + chunks + data[ihdr_end:]


def save_snapshot(path: Path, image: np.ndarray, provenance: dict, frame: int, source: str) -> Path:
    """Write the snapshot PNG (parent folders created); returns ``path``."""
    info = json.dumps({"engines": provenance, "frame": frame, "source": source}, separators=(",", ":"),
                      ensure_ascii=True)
    data = png_bytes(image, {TEXT_KEY: info})
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def read_png_text(path: Path) -> dict[str, str]:
    """The ``tEXt`` items of a PNG file."""
    data = Path(path).read_bytes()
    out, pos = {}, 8
    while pos + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        if kind == b"tEXt":
            key, _, value = data[pos + 8:pos + 8 + length].partition(b"\0")
            out[key.decode("latin-1")] = value.decode("latin-1")
        pos += 12 + length
    return out
