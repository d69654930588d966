"""A gate's calibrated confidence and its "unfamiliar view" score, numpy only.

**Temperature scaling** (Guo et al., 2017): the gate's logits ``ℓ`` are divided by one
number ``T`` fitted on the validation split (the negative log-likelihood minimised), so a
softmax of 0.9 means right about 9 times in 10; the class ranking never changes. Every
backend applies it to its ``logits`` output (:meth:`Engine.calibrated`); an engine
without one behaves as before (``T = 1``).

**Unfamiliar view** (the energy score, Liu et al., 2020): ``E = −T·logsumexp(ℓ/T)``, low
where the network recognises what it sees and higher on inputs unlike its training
data. The threshold is the 99th percentile of ``E`` on the validation split (1 % of
familiar frames are flagged); a frame above it is an "UNFAMILIAR VIEW": no label, no mask.
It needs no new output in the ONNX graph, so the shipped engines get it by rewriting
their metadata (``nerveseg calibrate``).

Both live in the engine's metadata, ``extra["calibration"]``:
``{"temperature": T, "energy_threshold": E or null, "fitted_on": "...", ...}``.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np

from .familiarity import ViewDistance
from .metadata import EngineError, EngineMeta

KEY = "calibration"
#: the in-distribution quantile of the energy score the threshold sits at
QUANTILE = 0.99
ECE_BINS = 15


@dataclass(frozen=True)
class Calibration:
    """``temperature``: > 0 (1: uncalibrated). ``energy_threshold``: frames whose energy
    score is above it are unfamiliar (None: never). ``view``: the distance of the picture's
    own statistics to the training set's (:mod:`.familiarity`), unfamiliar above its
    threshold (None: not checked)."""

    temperature: float = 1.0
    energy_threshold: float | None = None
    view: ViewDistance | None = None

    @classmethod
    def of(cls, meta: EngineMeta, source: str = "<engine>") -> "Calibration":
        """The calibration in ``meta`` (none: ``T = 1``, no threshold); EngineError if malformed."""
        raw = meta.extra.get(KEY)
        if raw is None:
            return cls()
        try:
            t = float(raw.get("temperature", 1.0))
            e = raw.get("energy_threshold")
            e = None if e is None else float(e)
            view = ViewDistance(raw["view_statistics"]) if raw.get("view_statistics") else None
        except (AttributeError, TypeError, ValueError, KeyError) as exc:
            raise EngineError(f"{source}: metadata {KEY!r} is not {{temperature, energy_threshold, "
                              f"view_statistics}} ({exc})") from None
        if not (math.isfinite(t) and t > 0) or (e is not None and not math.isfinite(e)):
            raise EngineError(f"{source}: metadata {KEY!r} has temperature {t} (must be > 0) "
                              f"and energy_threshold {e} (finite or null)")
        return cls(t, e, view)

    @property
    def checks(self) -> bool:
        """Whether any unfamiliar-view threshold is set."""
        return self.energy_threshold is not None or (self.view is not None and self.view.threshold is not None)

    def judge(self, logits: np.ndarray, image: np.ndarray) -> tuple[float, float | None, bool]:
        """``(energy, view distance, unfamiliar)`` of one picture: ``(C,)`` calibrated
        logits (ℓ/T, as the engine gives them) and the ``(H, W, 3) uint8`` engine input."""
        z = np.asarray(logits, np.float64)
        top = float(z.max())
        score = -self.temperature * (top + math.log(float(np.exp(z - top).sum())))
        distance = self.view(image) if self.view is not None else None
        far = distance is not None and self.view.threshold is not None and distance > self.view.threshold
        return score, distance, far or (self.energy_threshold is not None and score > self.energy_threshold)

    def describe(self) -> str:
        t = "not calibrated (T=1)" if self.temperature == 1.0 else f"temperature {self.temperature:.3f}"
        e = ("no unfamiliar-view threshold" if self.energy_threshold is None
             else f"unfamiliar view above energy {self.energy_threshold:.3f}")
        if self.view is not None and self.view.threshold is not None:
            e += f" or view-statistics distance {self.view.threshold:.2f}"
        return f"{t}; {e}"


def energy(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """``(N,) float64`` energy ``−T·logsumexp(ℓ/T)`` of raw ``(N, C)`` logits."""
    z = np.asarray(logits, np.float64) / temperature
    top = z.max(axis=1, keepdims=True)
    return -temperature * (top[:, 0] + np.log(np.exp(z - top).sum(axis=1)))


def softmax(logits: np.ndarray) -> np.ndarray:
    z = np.asarray(logits, np.float64)
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def nll(logits: np.ndarray, labels: np.ndarray, temperature: float) -> float:
    """Mean negative log-likelihood of ``(N,)`` int ``labels`` under ``softmax(ℓ/T)``."""
    z = np.asarray(logits, np.float64) / temperature
    top = z.max(axis=1, keepdims=True)
    log_norm = top[:, 0] + np.log(np.exp(z - top).sum(axis=1))
    return float(np.mean(log_norm - z[np.arange(len(z)), labels]))


def fit_temperature(logits: np.ndarray, labels: np.ndarray, low: float = 0.05, high: float = 20.0) -> float:
    """The ``T`` minimising :func:`nll` (golden-section search on ``log T``, which is
    unimodal there); ``(N, C)`` raw logits, ``(N,)`` int labels."""
    a, b = math.log(low), math.log(high)
    ratio = (math.sqrt(5) - 1) / 2
    c, d = b - ratio * (b - a), a + ratio * (b - a)
    fc, fd = nll(logits, labels, math.exp(c)), nll(logits, labels, math.exp(d))
    for _ in range(80):
        if fc < fd:
            b, d, fd = d, c, fc
            c = b - ratio * (b - a)
            fc = nll(logits, labels, math.exp(c))
        else:
            a, c, fc = c, d, fd
            d = a + ratio * (b - a)
            fd = nll(logits, labels, math.exp(d))
    return float(math.exp((a + b) / 2))


def reliability(probs: np.ndarray, labels: np.ndarray, bins: int = ECE_BINS) -> dict:
    """Expected calibration error of ``(N, C)`` probabilities (top class, ``bins`` equal-width
    confidence bins) with the per-bin ``confidence``, ``accuracy`` and ``count`` behind it."""
    conf = probs.max(axis=1)
    right = probs.argmax(axis=1) == labels
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(conf, edges[1:-1]), 0, bins - 1)
    rows = {"confidence": [], "accuracy": [], "count": []}
    ece = 0.0
    for k in range(bins):
        inside = which == k
        n = int(inside.sum())
        rows["count"].append(n)
        rows["confidence"].append(float(conf[inside].mean()) if n else None)
        rows["accuracy"].append(float(right[inside].mean()) if n else None)
        if n:
            ece += n / len(conf) * abs(float(conf[inside].mean()) - float(right[inside].mean()))
    return {"ece": ece, "bins": bins, "edges": edges.tolist(), **rows}


def fit(logits: np.ndarray, labels: np.ndarray, quantile: float = QUANTILE) -> dict:
    """Temperature and energy threshold fitted on validation ``(N, C)`` raw logits and
    ``(N,)`` labels, with the expected calibration error before and after."""
    labels = np.asarray(labels, np.int64)
    t = fit_temperature(logits, labels)
    scores = energy(logits, t)
    return {"temperature": t, "energy_threshold": float(np.quantile(scores, quantile)),
            "at_bound": not 0.051 < t < 19.9,  # a split without mistakes: any smaller T fits as well
            "quantile": quantile, "n": int(len(labels)),
            "ece_before": reliability(softmax(logits), labels)["ece"],
            "ece_after": reliability(softmax(np.asarray(logits) / t), labels)["ece"]}


def with_calibration(meta: EngineMeta, values: dict) -> EngineMeta:
    """``meta`` with ``values`` (at least ``temperature`` and ``energy_threshold``) as its calibration."""
    Calibration.of(dataclasses.replace(meta, extra={KEY: values}))  # checked before it is written
    return dataclasses.replace(meta, extra={**meta.extra, KEY: values})
