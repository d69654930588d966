"""Regions of interest: where the surgeon wants the nerve looked for, in view pixels.

A region is a :class:`~nerveseg.engines.preprocess.Box` (a dragged rectangle) or a
:class:`Polygon` (clicked corners). Both are immutable, so the UI thread may swap the
segmenter's region while frames are in flight: each frame records the region it used.

Text form (the CSV's ``roi`` column): a box is ``x0,y0,x1,y1``; a polygon is its
corners ``x,y`` separated by spaces. :func:`parse_roi` reads both back.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Union

import cv2
import numpy as np

from nerveseg.engines.preprocess import Box


@dataclass(frozen=True)
class Polygon:
    """A closed polygon; ``points``: at least three ``(x, y)`` integer corners."""

    points: tuple[tuple[int, int], ...]

    def __post_init__(self) -> None:
        points = tuple((int(x), int(y)) for x, y in self.points)
        if len(set(points)) < 3:
            raise ValueError(f"a polygon region needs at least 3 distinct corners, not {len(set(points))}")
        object.__setattr__(self, "points", points)

    @property
    def bbox(self) -> Box:
        xs, ys = zip(*self.points)
        return Box(min(xs), min(ys), max(xs) + 1, max(ys) + 1)


Roi = Union[Box, Polygon]


def check_roi(roi: Roi | None) -> Roi | None:
    """``roi`` if it is a usable region (or None); ValueError otherwise."""
    if roi is None or isinstance(roi, Polygon):
        return roi
    if isinstance(roi, Box):
        if roi.width <= 0 or roi.height <= 0:
            raise ValueError(f"a region needs a positive width and height, not {tuple(roi)}")
        return roi
    raise ValueError(f"a region is a Box or a Polygon, not {type(roi).__name__}")


def roi_mask(roi: Roi, shape: tuple[int, int]) -> np.ndarray:
    """``(h, w) bool``: True inside ``roi`` (clipped to the image)."""
    h, w = shape[:2]
    mask = np.zeros((h, w), np.uint8)
    if isinstance(roi, Box):
        mask[max(roi.y0, 0):max(roi.y1, 0), max(roi.x0, 0):max(roi.x1, 0)] = 1
    else:
        cv2.fillPoly(mask, [np.array(roi.points, np.int32)], 1)
    return mask.view(bool)


def region_raster(roi: Roi, view_shape: tuple[int, int], size: tuple[int, int]) -> np.ndarray:
    """``roi`` (view pixels, view ``(h, w)``) as a ``region_segment`` engine's input at its
    ``size = (H, W)``: ``(1, H, W, 1) uint8``, 1 inside (nearest-neighbour, as masks are resized)."""
    inside = roi_mask(roi, view_shape).view(np.uint8)
    return cv2.resize(inside, (size[1], size[0]), interpolation=cv2.INTER_NEAREST)[None, :, :, None]


def restrict(mask: np.ndarray, roi: Roi, inside: np.ndarray | None = None) -> np.ndarray:
    """``mask`` (``(h, w) bool``) with everything outside ``roi`` cleared (a new array).
    ``inside``: ``roi_mask(roi, mask.shape)`` if the caller has it cached."""
    if isinstance(roi, Box) and inside is None:
        out = np.zeros_like(mask)
        clipped = Box(max(roi.x0, 0), max(roi.y0, 0), max(roi.x1, 0), max(roi.y1, 0))
        clipped.slice(out)[...] = clipped.slice(mask)
        return out
    return mask & (roi_mask(roi, mask.shape) if inside is None else inside)


def draw_roi(image: np.ndarray, roi: Roi, colour: tuple[int, int, int], thickness: int = 1) -> None:
    """The region's outline, drawn in place on ``image`` (``(h, w, 3) uint8``), on its
    inner edge so a region along the border stays visible."""
    if isinstance(roi, Box):
        cv2.rectangle(image, (roi.x0, roi.y0), (roi.x1 - 1, roi.y1 - 1), colour, thickness)
    else:
        cv2.polylines(image, [np.array(roi.points, np.int32)], True, colour, thickness, cv2.LINE_AA)


def roi_bounds(roi: Roi, thickness: int, shape: tuple[int, int]) -> Box:
    """The box :func:`draw_roi` may touch with ``thickness`` in a view of ``shape`` ``(h, w)``."""
    if isinstance(roi, Box):
        x0, y0, x1, y1 = roi
    else:
        xs, ys = [x for x, _ in roi.points], [y for _, y in roi.points]
        x0, y0, x1, y1 = min(xs), min(ys), max(xs) + 1, max(ys) + 1
    pad = thickness + 1  # the line's half width and its anti-aliasing
    h, w = shape
    return Box(max(0, x0 - pad), max(0, y0 - pad), min(w, x1 + pad), min(h, y1 + pad))


def roi_text(roi: Roi | None) -> str:
    if roi is None:
        return ""
    if isinstance(roi, Box):
        return "{},{},{},{}".format(*roi)
    return " ".join(f"{x},{y}" for x, y in roi.points)


def parse_roi(text: str) -> Roi | None:
    """The region written by :func:`roi_text` (``""``: None)."""
    text = text.strip()
    if not text:
        return None
    if " " in text:
        points = tuple(tuple(int(v) for v in p.split(",")) for p in text.split())
        if any(len(p) != 2 for p in points):
            raise ValueError(f"polygon corners are x,y pairs, not {text!r}")
        return Polygon(points)
    values = tuple(int(v) for v in text.split(","))
    if len(values) != 4:
        raise ValueError(f"a rectangle is x0,y0,x1,y1, not {text!r}")
    return Box(*values)
