"""Drawing the overlay: mask tint, its outline, and the text panel.

Everything is drawn in place on an image the caller owns. Only two kinds of pixels
change: the mask's pixels (tint and inner outline) and the text panel's box (plus, when
the surgeon has set a region of interest, its outline: see :mod:`.roi`; and with an
instance engine, each instance's box outline and tag, returned by :func:`draw_instances`).
Every other pixel stays equal to the input frame, which the tests and ``nerveseg validate`` check.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import cv2
import numpy as np

from nerveseg.engines.checks import UNIT, Range, bounded
from nerveseg.engines.preprocess import Box

FONT = cv2.FONT_HERSHEY_SIMPLEX
LABEL_COLOURS = {"nerve": (60, 255, 90), "tendon": (255, 190, 60), "opening_wound": (255, 90, 90),
                 "unfamiliar": (255, 255, 0)}
UNFAMILIAR = "UNFAMILIAR VIEW"


@dataclass(frozen=True)
class OverlayConfig:
    colour: tuple[int, int, int] = (60, 255, 90)
    opacity: float = bounded(0.45, UNIT)
    outline: bool = True
    panel: bool = True
    font_scale: float = bounded(0.0, Range(0.0, 20.0), why="0: scale with the image height")

    def __post_init__(self) -> None:
        if not 0.0 <= self.opacity <= 1.0:
            raise ValueError(f"opacity must be within [0, 1], not {self.opacity}")
        if len(self.colour) != 3 or not all(0 <= int(c) <= 255 for c in self.colour):
            raise ValueError(f"colour must be three values in 0..255, not {self.colour!r}")
        object.__setattr__(self, "colour", tuple(int(c) for c in self.colour))


def mask_bbox(mask: np.ndarray) -> Box | None:
    """The tight box around the True pixels of ``mask`` (``(h, w) bool``), or None."""
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(mask[rows[0]:rows[-1] + 1].any(axis=0))
    return Box(int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1)


@functools.lru_cache(maxsize=4)
def _solid(height: int, width: int, colour: tuple[int, int, int]) -> np.ndarray:
    """A read-only ``(height, width, 3)`` image of ``colour`` (made once, sliced per frame)."""
    solid = np.empty((height, width, 3), np.uint8)
    solid[:] = colour
    solid.flags.writeable = False
    return solid


def tint(image: np.ndarray, mask: np.ndarray, colour: tuple[int, int, int], opacity: float,
         outline: bool = True, strip: int = 32) -> None:
    """Blend ``colour`` into ``image`` (``(h, w, 3) uint8``) where ``mask`` (``(h, w) bool``)
    is True, in place; with ``outline``, the mask's inner edge is painted solid.

    Work is confined to the mask's bounding box *per strip* of ``strip`` rows: a nerve
    crossing the frame diagonally has a bounding box as large as the frame, but each
    strip's box is narrow (13 ms → 3 ms for a diagonal band on an 896 px view)."""
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return
    y0, y1 = int(rows[0]), int(rows[-1]) + 1
    m8 = mask.view(np.uint8)
    top = max(0, y0 - 1)  # one row of context above, so the erosion sees the true edge
    inner = cv2.erode(m8[top:y1 + 1], np.ones((3, 3), np.uint8), borderType=cv2.BORDER_CONSTANT,
                      borderValue=0)[y0 - top:]
    solid = _solid(*image.shape[:2], tuple(colour))
    for y in range(y0, y1, strip):
        ys = slice(y, min(y + strip, y1))
        cols = np.flatnonzero(mask[ys].any(axis=0))
        if cols.size == 0:
            continue
        xs = slice(int(cols[0]), int(cols[-1]) + 1)
        region, m = image[ys, xs], m8[ys, xs]
        blended = cv2.addWeighted(region, 1.0 - opacity, solid[ys, xs], opacity, 0.0)
        if outline:
            blended[m > inner[ys.start - y0:ys.stop - y0, xs]] = colour
        cv2.copyTo(blended, m, region)


def text_lines(label: str, confidence: float, ms: dict[str, float], fps: float, dropped: int,
               extra: list[str] | None = None) -> list[tuple[str, tuple[int, int, int]]]:
    """The panel's lines with their colours. ``label`` ``"unfamiliar"``: the gate does not
    know this view, so the panel says so and shows no class and no confidence."""
    head = UNFAMILIAR if label == "unfamiliar" else f"{label.replace('_', ' ').upper()} {confidence:.2f}"
    parts = [f"{k} {v:4.1f}" for k, v in ms.items()]
    lines = [(head, LABEL_COLOURS.get(label, (255, 255, 255))),
             (" ".join(parts[:3]) + " ms", (230, 230, 230))]
    if len(parts) > 3:
        lines.append((" ".join(parts[3:]) + " ms", (230, 230, 230)))
    lines.append((f"{fps:5.1f} FPS  dropped {dropped}", (230, 230, 230)))
    lines.extend((line, (255, 220, 120)) for line in extra or [])
    return lines


#: the panel's largest share of the picture (width, height): a corner, never the field
PANEL_MAX = (0.5, 0.3)
#: below this font scale Hershey text stops being legible at all
MIN_FONT_SCALE = 0.25


def _measure(lines, scale: float) -> tuple[int, list, int, int]:
    thickness = 1 if scale < 0.7 else 2
    pad = int(8 * scale + 4)
    sizes = [cv2.getTextSize(text, FONT, scale, thickness) for text, _ in lines]
    line_h = max(s[0][1] + s[1] for s in sizes) + pad // 2
    return thickness, sizes, line_h, pad


def draw_panel(image: np.ndarray, lines: list[tuple[str, tuple[int, int, int]]],
               font_scale: float = 0.0) -> Box:
    """Draw a dark panel with ``lines`` at the top-left of ``image``, in place; returns
    the panel's box (the only pixels it touched).

    The text scales with the picture so the panel stays within :data:`PANEL_MAX` of it;
    on a picture too small for every line at a legible size, the last lines are left
    out (the label and confidence come first and stay); on one too small for even that
    line (a thumbnail), no panel is drawn and the box is empty: the CSV still has it all."""
    h, w = image.shape[:2]
    scale = font_scale or max(0.35, h / 1400)
    thickness, sizes, line_h, pad = _measure(lines, scale)
    natural_w, natural_h = max(s[0][0] for s in sizes) + 2 * pad, line_h * len(lines) + pad
    fit = min(1.0, PANEL_MAX[0] * w / natural_w, PANEL_MAX[1] * h / natural_h)
    if fit < 1.0:
        scale = max(MIN_FONT_SCALE, scale * fit)
        thickness, sizes, line_h, pad = _measure(lines, scale)
    keep = min(len(lines), int((PANEL_MAX[1] * h - pad) // line_h))
    if keep < 1:
        return Box(0, 0, 0, 0)
    lines, sizes = lines[:keep], sizes[:keep]
    width = min(w, max(s[0][0] for s in sizes) + 2 * pad, max(1, int(PANEL_MAX[0] * w)))
    height = min(h, line_h * len(lines) + pad)
    box = Box(0, 0, width, height)
    region = box.slice(image)
    region //= 4  # darken rather than blank, so the tissue under the panel stays guessable
    y = pad // 2
    for (text, colour), ((_, text_h), baseline) in zip(lines, sizes):
        y += line_h
        cv2.putText(region, text, (pad, y - baseline - pad // 4), FONT, scale, colour, thickness,
                    cv2.LINE_AA)
    return box


#: instance classes without a colour in LABEL_COLOURS take these, by class index
PALETTE = ((255, 90, 90), (90, 170, 255), (255, 220, 60), (230, 110, 255), (60, 230, 230), (255, 150, 40))


def instance_colour(name: str, index: int) -> tuple[int, int, int]:
    """One colour per class: the gate's for names it knows (nerve stays green), else the palette."""
    return LABEL_COLOURS.get(name, PALETTE[index % len(PALETTE)])


def _outline(image: np.ndarray, box: Box, colour, thickness: int) -> list[Box]:
    """A rectangle drawn *inside* ``box`` as four solid strips; returns the strips."""
    t = min(thickness, box.width, box.height)
    strips = [Box(box.x0, box.y0, box.x1, box.y0 + t), Box(box.x0, box.y1 - t, box.x1, box.y1),
              Box(box.x0, box.y0, box.x0 + t, box.y1), Box(box.x1 - t, box.y0, box.x1, box.y1)]
    for strip in strips:
        strip.slice(image)[:] = colour
    return strips


def _label(image: np.ndarray, box: Box, text: str, colour, scale: float) -> Box:
    """``text`` on a darkened tag just above ``box`` (inside its top when there is no room);
    returns the tag's box, the only pixels touched."""
    h, w = image.shape[:2]
    (tw, th), base = cv2.getTextSize(text, FONT, scale, 1)
    pad = max(1, int(3 * scale))
    tag_h = th + base + 2 * pad
    y0 = box.y0 - tag_h if box.y0 >= tag_h else box.y0
    tag = Box(min(box.x0, max(0, w - tw - 2 * pad)), y0, 0, 0)
    tag = Box(tag.x0, tag.y0, min(w, tag.x0 + tw + 2 * pad), min(h, tag.y0 + tag_h))
    region = tag.slice(image)
    region //= 4
    # Drawn into the tag's own view, so the text cannot spill outside the returned box.
    cv2.putText(region, text, (pad, pad + th), FONT, scale, colour, 1, cv2.LINE_AA)
    return tag


def draw_instances(image: np.ndarray, instances, opacity: float, outline: bool = True,
                   font_scale: float = 0.0) -> tuple[Box, ...]:
    """Draw each instance (a :class:`~nerveseg.realtime.frames.Instances`, view pixels) in
    place: its mask tinted in its class colour, its box outlined, a "class 0.93" tag.
    The lowest scores first, so the best lie on top. Returns the outline strips and tags:
    with the masks, the only pixels changed."""
    h, w = image.shape[:2]
    scale = font_scale or max(0.35, h / 1800)
    thickness = max(1, round(h / 540))
    marks: list[Box] = []
    for k in np.argsort(instances.scores, kind="stable"):
        label = int(instances.labels[k])
        name = instances.classes[label]
        colour = instance_colour(name, label - 1)
        tint(image, instances.masks[k], colour, opacity, outline)
        x0, y0, x1, y1 = np.round(instances.boxes[k]).astype(int)
        box = Box(max(0, x0), max(0, y0), min(w, x1), min(h, y1))
        if box.width <= 0 or box.height <= 0:
            continue
        marks += _outline(image, box, colour, thickness)
        marks.append(_label(image, box, f"{name.replace('_', ' ')} {instances.scores[k]:.2f}", colour, scale))
    return tuple(marks)
