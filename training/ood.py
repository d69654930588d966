"""Does the gate stay silent where it should? Shifted and non-surgical test pictures.

``nerveseg eval gate MODEL --ood`` scores the engine on three kinds of picture besides
its test split, each made here from a fixed seed:

* **shifted synthetic scenes** (:data:`SHIFTS`): the generator's own scene knobs
  (:class:`~nerveseg.training.synth.scene.Scene`) pushed outside the ranges it draws
  for training: other lighting (exposure, gamma, colour of the light, sensor noise) and
  other tissue (contrast, fat, vessels, specular dots, blur). Labelled: a label can be
  right or wrong.
* **pictures that are not surgery at all** (:data:`NOT_SURGERY`): noise, gradients,
  checkerboards, text, flat colour. Any label there is wrong.

For each set: the share of frames the product leaves **silent** (an unfamiliar view: no
label, no mask), the share it paints with a **wrong** label, and the share it gets
**right**; and how often it would paint a nerve mask where there is none to paint.
"""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np

from nerveseg.engines.calibration import softmax

SIZE_RENDER = (540, 960)


def _lighting(scene, rng):
    u = rng.uniform
    return dataclasses.replace(scene, level=u(0.62, 0.8), gamma=float(rng.choice([u(0.4, 0.6), u(1.8, 2.4)])),
                               tint=(1.0, u(0.55, 0.8), u(0.4, 0.7)), noise=u(0.05, 0.09))


def _tissue(scene, rng):
    u = rng.uniform
    return dataclasses.replace(scene, contrast=u(2.2, 3.2), fat=u(0.4, 0.7), vessels=int(rng.integers(12, 25)),
                               highlights=int(rng.integers(500, 900)), blur=u(0.0, 0.1))


#: name → change of a drawn scene, outside what training draws
SHIFTS = {"other_lighting": _lighting, "other_tissue": _tissue}


def shifted_set(shift: str, per_class: int, size: int, seed: int = 0) -> tuple[np.ndarray, list[str]]:
    """``(N, size, size, 3) uint8`` views of shifted scenes, and their classes."""
    from .synth.datasets import crop_view
    from .synth.render import render_stereo
    from .synth.scene import CLASSES, random_scene

    images, labels = [], []
    for k, cls in enumerate(CLASSES):
        for i in range(per_class):
            rng = np.random.default_rng((seed, 9000 + k, i))
            scene = SHIFTS[shift](random_scene(rng, cls), rng)
            frame, mask = render_stereo(scene, *SIZE_RENDER)
            images.append(crop_view(frame, mask, size)[0])
            labels.append(cls)
    return np.stack(images), labels


def _noise(rng, s):
    return rng.integers(0, 256, (s, s, 3), dtype=np.uint8)


def _gradient(rng, s):
    ramp = np.linspace(0, 1, s)
    angle = rng.uniform(0, np.pi)
    field = np.cos(angle) * ramp[None, :] + np.sin(angle) * ramp[:, None]
    field = (field - field.min()) / max(float(np.ptp(field)), 1e-6)
    colour = rng.uniform(0.3, 1.0, 3)
    return (255 * field[..., None] * colour).astype(np.uint8)


def _checkerboard(rng, s):
    cell = int(rng.integers(4, max(5, s // 4)))
    yy, xx = np.mgrid[:s, :s] // cell
    board = ((yy + xx) % 2).astype(np.uint8) * 255
    return np.repeat(board[..., None], 3, axis=2)


def _text(rng, s):
    image = np.full((s, s, 3), int(rng.integers(180, 256)), np.uint8)
    words = ["nerveseg", "lorem ipsum", "2000 um", "PATIENT", "0123456789", "not surgery"]
    for row in range(int(rng.integers(3, 8))):
        y = int((row + 1) * s / 9)
        cv2.putText(image, str(rng.choice(words)), (int(rng.integers(0, s // 4)), y), cv2.FONT_HERSHEY_SIMPLEX,
                    s / 300, (0, 0, 0), max(1, s // 150))
    return image


def _flat(rng, s):
    return np.full((s, s, 3), rng.integers(0, 256, 3), np.uint8)


#: name → picture maker ``(rng, size) -> (size, size, 3) uint8``
NOT_SURGERY = {"noise": _noise, "gradient": _gradient, "checkerboard": _checkerboard, "text": _text,
               "flat_colour": _flat}


def not_surgery_set(count: int, size: int, seed: int = 0) -> tuple[np.ndarray, list[str]]:
    """``count`` pictures of each :data:`NOT_SURGERY` kind, ``(N, size, size, 3) uint8``, and their kinds."""
    images, kinds = [], []
    for k, (kind, make) in enumerate(NOT_SURGERY.items()):
        for i in range(count):
            images.append(make(np.random.default_rng((seed, 7000 + k, i)), size))
            kinds.append(kind)
    return np.stack(images), kinds


def outcome(engine, images: np.ndarray, labels: list[str] | None, batch: int = 16) -> dict:
    """What the product shows on ``images``: shares ``silent`` (unfamiliar), ``wrong``
    (a label shown that is not ``labels``; any label when ``labels`` is None) and
    ``right``, plus ``nerve_painted``: frames called nerve (a mask drawn) that are not."""
    cal = engine.calibration
    logits = np.concatenate([engine.run(images[i:i + batch])["logits"].astype(np.float64)
                             for i in range(0, len(images), batch)])
    judged = [cal.judge(z, image) for z, image in zip(logits, images)]
    silent = np.array([j[2] for j in judged])
    probs = softmax(logits)
    shown = [engine.classes[k] for k in probs.argmax(1)]
    right = np.array([labels is not None and s == t for s, t in zip(shown, labels or shown)])
    # a mask is drawn where the gate says nerve with the default min_confidence (0.5)
    nerve = (probs[:, engine.classes.index("nerve")] >= 0.5) & ~silent if "nerve" in engine.classes \
        else np.zeros(len(images), bool)
    truly = np.array([t == "nerve" for t in labels]) if labels is not None else np.zeros(len(images), bool)
    return {"n": len(images), "silent": float(silent.mean()), "wrong": float((~silent & ~right).mean()),
            "right": float((~silent & right).mean()), "nerve_painted": float((nerve & ~truly).mean()),
            "energy_median": float(np.median([j[0] for j in judged])),
            "view_distance_median": None if cal.view is None else float(np.median([j[1] for j in judged]))}


def ood_report(engine, test_images: np.ndarray, test_labels: list[str], count: int, seed: int = 0) -> dict:
    """:func:`outcome` on the test split and on every shifted and non-surgical set
    (``count`` per class, or per kind), the engine's calibration beside them."""
    size = engine.input_size[0]
    sets = {"test split (in distribution)": outcome(engine, test_images, test_labels)}
    for shift in SHIFTS:
        images, labels = shifted_set(shift, count, size, seed)
        sets[shift.replace("_", " ")] = outcome(engine, images, labels)
    images, kinds = not_surgery_set(count, size, seed)
    for kind in NOT_SURGERY:
        picked = np.array([k == kind for k in kinds])
        sets[f"not surgery: {kind.replace('_', ' ')}"] = outcome(engine, images[picked], None)
    cal = engine.calibration
    return {"temperature": cal.temperature, "energy_threshold": cal.energy_threshold,
            "view_threshold": None if cal.view is None else cal.view.threshold, "count": count,
            "seed": seed, "sets": sets}


def ood_lines(report: dict) -> list[str]:
    """The report's table: per set, silent / wrong label / right label / nerve painted."""
    said = [f"energy > {report['energy_threshold']:.3f}"] if report["energy_threshold"] is not None else []
    said += [f"view-statistics distance > {report['view_threshold']:.2f}"] if report.get("view_threshold") else []
    lines = ["", f"unfamiliar views ({' or '.join(said) or 'no threshold: never silent'}):",
             f"{'set':<34}{'n':>5}{'silent':>9}{'wrong':>9}{'right':>9}{'nerve painted':>15}"]
    for name, r in report["sets"].items():
        lines.append(f"{name:<34}{r['n']:>5}{r['silent']:>9.3f}{r['wrong']:>9.3f}{r['right']:>9.3f}"
                     f"{r['nerve_painted']:>15.3f}")
    lines.append("silent: flagged UNFAMILIAR VIEW (no label, no mask); wrong/right: a label shown; "
                 "nerve painted: a nerve mask drawn where there is no nerve.")
    return lines
