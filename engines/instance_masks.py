"""Reading an ``instance`` engine's outputs: box-relative masks pasted into an image.

No torch: the runtime, ``nerveseg eval`` and the tests share this. Mask R-CNN learns its
``M × M`` masks from targets that torchvision's ``project_masks_on_boxes`` samples with
``roi_align(aligned=False)``: cell ``i`` holds the ground truth at ``x0 + (i + 0.5) · w / M``
(pixel centres at integer coordinates). :func:`paste_masks` is the exact inverse, one affine
warp per instance. torchvision's own ``paste_masks_in_image`` instead grows the box by one
cell, truncates it to integers and adds a pixel (Detectron's legacy "+1"): on our thin
structures that costs mask IoU. Pasting the training targets of the synthetic set back
with each method (docs/INSTANCE.md): mean IoU 0.97 here, 0.81 with torchvision's at 128 px
(0.92 and 0.88 at 256 px); exact here for rectangles.
Masks can be pasted at any resolution: straight into the displayed view.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

MASK_THRESHOLD = 0.5  # torchvision's and COCO's cut for a mask probability


def scale_boxes(boxes: np.ndarray, from_size: tuple[int, int], to_size: tuple[int, int]) -> np.ndarray:
    """``(K, 4)`` x0, y0, x1, y1 from an image of ``from_size = (h, w)`` to one of ``to_size``."""
    sy, sx = to_size[0] / from_size[0], to_size[1] / from_size[1]
    return np.asarray(boxes, np.float32).reshape(-1, 4) * np.array([sx, sy, sx, sy], np.float32)


def _pasted(mask: np.ndarray, box, shape: tuple[int, int]):
    """``(rows, cols, values)``: the slices of an ``(h, w)`` image whose pixel centres lie in
    ``[x0, x1) × [y0, y1)`` (clipped to the image) and the mask's probabilities warped there."""
    m = mask.shape[-1]
    x0, y0, x1, y1 = (float(v) for v in box)
    sx, sy = max(x1 - x0, 1e-3) / m, max(y1 - y0, 1e-3) / m
    c0, r0 = min(max(math.ceil(x0), 0), shape[1]), min(max(math.ceil(y0), 0), shape[0])
    c1, r1 = max(min(math.ceil(x1), shape[1]), c0), max(min(math.ceil(y1), shape[0]), r0)
    if c1 == c0 or r1 == r0:
        return slice(r0, r0), slice(c0, c0), np.zeros((0, 0), np.float32)
    # Cell (i, j) lands on pixel (x0 + (j + 0.5) sx, y0 + (i + 0.5) sy), relative to (c0, r0).
    # Pixels within half a cell of the box edge lie beyond the outer cells' centres: they
    # take the outer cells' values (replicate), as the targets' sampling clamps there too.
    warp = np.array([[sx, 0, x0 + 0.5 * sx - c0], [0, sy, y0 + 0.5 * sy - r0]], np.float32)
    values = cv2.warpAffine(np.asarray(mask, np.float32), warp, (c1 - c0, r1 - r0), flags=cv2.INTER_LINEAR,
                            borderMode=cv2.BORDER_REPLICATE)
    return slice(r0, r1), slice(c0, c1), values


def paste_mask(mask: np.ndarray, box, shape: tuple[int, int]) -> np.ndarray:
    """One ``(M, M) float32`` box-relative probability map → ``(h, w) float32`` image, zero
    away from the box. ``box``: x0, y0, x1, y1 in the image's pixels (pixel edges)."""
    out = np.zeros(shape, np.float32)
    rows, cols, values = _pasted(mask, box, shape)
    out[rows, cols] = values
    return out


def paste_masks(masks: np.ndarray, boxes: np.ndarray, shape: tuple[int, int],
                threshold: float = MASK_THRESHOLD) -> np.ndarray:
    """``(K, 1, M, M)`` (or ``(K, M, M)``) probabilities and ``(K, 4)`` boxes in the pixels of
    an ``(h, w)`` image → ``(K, h, w) bool`` masks (probability > ``threshold``). Only the
    pixels around each box are computed, so pasting at view resolution stays cheap."""
    masks = np.asarray(masks)
    masks = masks.reshape(len(masks), *masks.shape[-2:])
    out = np.zeros((len(masks), *shape), bool)
    for k, (mask, box) in enumerate(zip(masks, np.asarray(boxes, np.float32).reshape(-1, 4))):
        rows, cols, values = _pasted(mask, box, shape)
        out[k, rows, cols] = values > threshold
    return out
