"""What a synthetic stereoscope scene contains, and how a random one is drawn.

A :class:`Scene` is a frozen, hashable record of parameters in scene units (one unit =
one eye height, origin at the view centre). Fine detail (texture grids, highlight and
vessel positions) is not stored: it is drawn from ``Scene.seed`` in a fixed order when
the scene is rendered, so a scene is a few numbers and renders identically at any size.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

CLASSES = ("nerve", "opening_wound", "tendon")
GLARE_SIDES = ("outer", "top", "bottom")  # "outer": left edge of the left eye, right of the right
# "wide": the training world. "target": a setting held out of training (docs/SIM2REAL.md):
# another microscope, zoomed in past the training range (x1.7-2.6), warm-tinted, darker
# at the edges, with a harder tone curve.
# "classic": the generator before the wide world (the shipped engines' training world), for
# held-out sets that measure engines trained on it.
DOMAINS = ("wide", "target", "classic", "mixed")
CLASSIC_SHARE = 0.25            # "mixed": the share of items drawn in the classic world


def draws_classic(domain: str, rng: np.random.Generator) -> bool:
    """Whether an item of ``domain`` is drawn in the classic world: always in "classic",
    a :data:`CLASSIC_SHARE` of items in "mixed" (the wide world plus the narrower one the
    first engines knew, so an engine trained on it keeps both), never otherwise."""
    return domain == "classic" or (domain == "mixed" and bool(rng.uniform() < CLASSIC_SHARE))


@dataclass(frozen=True)
class Band:
    """A bright band along a gently curved centre line: the nerve, or its look-alike tendon.

    The centre line, in the band's frame ``(u along, w across)`` about ``centre`` turned by
    ``angle``, is ``w = curvature / 2 · u²``. ``half_width`` (scene units) is modulated by
    ``1 + wobble · sin(2π u / wobble_period + phase)``.
    """

    kind: str                   # "nerve" | "tendon"
    centre: tuple[float, float]
    angle: float
    curvature: float
    half_width: float
    wobble: float
    wobble_period: float
    phase: float
    level: float                # brightness of the band, 0..1
    texture: float              # nerve: striation contrast; tendon: gloss strength
    gloss_offset: float         # tendon: glossy streak position across, in half-widths
    elevation: float            # depth above the tissue (moves it in and out of focus)


@dataclass(frozen=True)
class Wound:
    """Dark cavities: where a smooth field plus elliptical envelopes exceeds ``threshold``."""

    centres: tuple[tuple[float, float], ...]
    radii: tuple[tuple[float, float], ...]
    threshold: float
    darkness: float             # 0..1, how dark the cavity floor is
    rim: float                  # brightness of the wet rim
    depth: float                # how far the floor sits below focus


@dataclass(frozen=True)
class Scene:
    """All parameters of one scene; ``seed`` drives the fine detail."""

    cls: str
    seed: int
    level: float                # mean tissue grey, 0..1
    contrast: float             # texture contrast
    gamma: float
    tint: tuple[float, float, float]
    fibre_angle: float
    band: Band | None
    wound: Wound | None
    fat: float                  # bright fat lobules (a "bright pixels" confounder)
    vessels: int                # thin dark vessels
    highlights: int             # specular dots
    glare_side: str
    glare_width: float          # blown core, fraction of the eye width
    bloom: float                # partial glare from a corner
    focus_tilt: tuple[float, float]
    focus: float
    blur: float                 # defocus strength, 0..1
    noise: float                # sensor noise std, intensity units
    disparity: float            # right-eye shift, scene units (a few px at 1080p)
    # The "wide world" (issue 15): randomised well beyond the real frames' statistics.
    zoom: float = 1.0           # magnification: > 1 shows a smaller field, everything wider
    exposure: float = 1.0       # gain on the tissue before the sensor clips it
    relief: float = 0.0         # large smooth tissue lobes of their own brightness
    sheen: float = 0.0          # broad glossy specular sheens that blow out inside the field
    sheen_cover: float = 0.0    # 0..1, how much of the field the sheens may cover
    folds: float = 0.0          # 0..1, how dark the folds shade (deep shadow)
    fold_width: float = 0.03    # fold width, scene units
    defocus: float = 0.0        # global defocus blur sigma, fraction of the eye height
    motion: tuple[float, float] = (0.0, 0.0)  # motion blur: length (fraction of height), angle
    vignette: float = 0.2       # darkening at the field's corners, 0..1
    jpeg: int = 0               # JPEG quality of the camera's compression (0: none)


def random_scene(rng: np.random.Generator, cls: str, classic: bool = False) -> Scene:
    """Draw a scene of class ``cls`` (one of :data:`CLASSES`). ``classic``: the narrower
    world of the generator before issue 15 (the one the shipped engines were trained on:
    brighter tissue, no sheens, folds, zoom, exposure, defocus, motion or compression)."""
    if cls not in CLASSES:
        raise ValueError(f"class must be one of {', '.join(CLASSES)}, not {cls!r}")
    u = rng.uniform
    band = _nerve(rng) if cls == "nerve" else _tendon(rng) if cls == "tendon" else None
    wound = _wound(rng) if cls == "opening_wound" else _pit(rng) if u() < 0.25 else None
    tilt_angle = u(0, 2 * math.pi)
    tilt = u(0.4, 1.5)
    if classic:
        look = dict(level=u(0.32, 0.52), tint=(1.0, 1.0 - u(0.0, 0.035), 1.0 - u(0.0, 0.06)),
                    highlights=int(rng.integers(15, 220)), noise=u(0.008, 0.03), vignette=u(0.1, 0.3))
    else:
        look = dict(level=u(0.12, 0.34), tint=(1.0, 1.0 - u(0.0, 0.02), 1.0 - u(0.0, 0.035)),
                    highlights=int(rng.integers(20, 150)), noise=u(0.004, 0.035))
    scene = Scene(
        cls=cls, seed=int(rng.integers(2**31)), contrast=u(0.6, 1.4), gamma=u(0.8, 1.25),
        fibre_angle=u(0, math.pi), band=band, wound=wound,
        fat=u(0.05, 0.2) if u() < 0.6 else 0.0,
        vessels=int(rng.integers(0, 5)),
        glare_side=str(rng.choice(GLARE_SIDES, p=(0.6, 0.2, 0.2))),
        glare_width=u(0.05, 0.15), bloom=u(0.2, 0.8) if u() < 0.7 else 0.0,
        focus_tilt=(tilt * math.cos(tilt_angle), tilt * math.sin(tilt_angle)),
        focus=u(-0.1, 0.1), blur=u(0.3, 1.0), disparity=u(0.002, 0.006),
        **look, **({} if classic else _wide(rng)),
    )
    if band is not None and band.level * scene.exposure > 0.95:
        # The band stays below the sensor's white: a blown nerve or tendon is a blank a
        # person could not label, so it would teach nothing but noise.
        scene = replace(scene, band=replace(band, level=0.95 / scene.exposure))
    return scene


def in_domain(scene: Scene, rng: np.random.Generator, domain: str) -> Scene:
    """``scene`` as seen in ``domain`` (one of :data:`DOMAINS`; ``rng`` draws the change)."""
    if domain not in DOMAINS:
        raise ValueError(f"domain must be one of {', '.join(DOMAINS)}, not {domain!r}")
    if domain in ("wide", "classic", "mixed"):  # classic is drawn so from the start (random_scene)
        return scene
    u = rng.uniform
    return replace(scene, zoom=float(math.exp(u(math.log(1.7), math.log(2.6)))),
                   tint=(1.0, u(0.86, 0.92), u(0.7, 0.8)), vignette=u(0.6, 0.9), gamma=u(1.3, 1.6))


def _wide(rng: np.random.Generator) -> dict:
    """The look beyond the old generator, calibrated on the real frames (issue 15's table:
    blown out 0.26-0.53, grey std 77-93, Laplacian variance at 512 px 16-63, deep shadow
    0-0.15, practically grey) and spread well past them on both sides."""
    u = rng.uniform
    motion = (u(0.002, 0.012), u(0, math.pi)) if u() < 0.3 else (0.0, 0.0)
    return dict(zoom=float(math.exp(u(math.log(0.65), math.log(1.6)))), exposure=u(0.7, 1.4),
                relief=u(0.4, 0.9), sheen=u(0.8, 2.0), sheen_cover=u(0.35, 0.9),
                folds=u(0.5, 1.0) if u() < 0.75 else 0.0, fold_width=u(0.03, 0.12),
                defocus=u(0.0, 0.006), motion=motion, vignette=u(0.0, 0.6),
                jpeg=int(rng.integers(25, 95)) if u() < 0.7 else 0)


def _line(rng: np.random.Generator) -> dict:
    u = rng.uniform
    return dict(centre=(u(-0.15, 0.15), u(-0.15, 0.15)), angle=u(0, math.pi),
                curvature=u(-1.3, 1.3) if u() < 0.7 else 0.0,
                wobble_period=u(0.15, 0.5), phase=u(0, 2 * math.pi))


def _nerve(rng: np.random.Generator) -> Band:
    # "A few percent" of the eye width (0.89 eye heights): 2.5–5 % → 0.011–0.022 half width.
    u = rng.uniform
    return Band(kind="nerve", half_width=u(0.011, 0.022), wobble=u(0.0, 0.15),
                level=u(0.74, 0.92), texture=u(0.5, 1.0), gloss_offset=0.0,
                elevation=u(-0.05, 0.05), **_line(rng))


def _tendon(rng: np.random.Generator) -> Band:
    # Clearly broader than any nerve: 10–20 % of the eye width.
    u = rng.uniform
    return Band(kind="tendon", half_width=u(0.045, 0.09), wobble=u(0.0, 0.08),
                level=u(0.7, 0.88), texture=u(0.5, 1.0), gloss_offset=u(-0.45, 0.45),
                elevation=u(-0.05, 0.05), **_line(rng))


def _wound(rng: np.random.Generator) -> Wound:
    u = rng.uniform
    n = int(rng.integers(1, 4))
    centres = tuple((u(-0.25, 0.25), u(-0.25, 0.25)) for _ in range(n))
    radii = tuple((u(0.08, 0.22), u(0.06, 0.16)) for _ in range(n))
    return Wound(centres=centres, radii=radii, threshold=u(0.45, 0.65),
                 darkness=u(0.6, 0.82), rim=u(0.35, 0.7), depth=u(0.15, 0.35))


def _pit(rng: np.random.Generator) -> Wound:
    # A small shallow fold: dark-ish, no wet rim, so only real wounds have bright edges.
    u = rng.uniform
    return Wound(centres=((u(-0.35, 0.35), u(-0.35, 0.35)),), radii=((u(0.03, 0.05), u(0.02, 0.04)),),
                 threshold=0.6, darkness=u(0.2, 0.35), rim=0.0, depth=0.05)
