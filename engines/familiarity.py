"""How far a picture is from what the gate was trained on, from its own pixels.

The gate's energy score (:mod:`.calibration`) misses much of what a surgeon would call
"not what this was made for": a softmax network is often *confident* on noise or a
flat colour. So the unfamiliar-view decision also looks at the engine input itself:
:data:`FEATURES`, a dozen cheap statistics of the ``(H, W, 3) uint8`` picture the gate sees
(brightness, contrast, blown-out and shadow shares, sharpness, colour, structure), and
their Mahalanobis distance to the same statistics over the training split. Both need no
new output in the ONNX graph. The mean, the (shrunk) inverse covariance and the
threshold (a quantile of the validation split's distances) live in the engine's metadata
beside the temperature (``extra.calibration.view_statistics``).

Cost: about a millisecond at 224 px on one core (one Laplacian, one Sobel pair, a
histogram and an 8×8 resize), counted in the gate's time.
"""

from __future__ import annotations

import cv2
import numpy as np

FEATURES = ("grey_mean", "grey_std", "blown_out", "shadow", "log_laplacian_var", "log_gradient",
            "colourfulness", "red_green", "green_blue", "entropy", "coarse_structure", "fine_share")


def view_features(image: np.ndarray) -> np.ndarray:
    """``(F,) float64`` statistics (:data:`FEATURES`) of an ``(H, W, 3) uint8 RGB`` picture."""
    rgb = image.astype(np.float32)
    grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    g = grey.astype(np.float32)
    g_mean, g_std = (float(v[0][0]) for v in cv2.meanStdDev(g))
    lap = float(cv2.meanStdDev(cv2.Laplacian(g, cv2.CV_32F))[1][0][0] ** 2)
    gradient = float(cv2.mean(cv2.magnitude(cv2.Sobel(g, cv2.CV_32F, 1, 0), cv2.Sobel(g, cv2.CV_32F, 0, 1)))[0])
    r, gr, b = cv2.split(rgb)
    (rg_mean,), (rg_std,) = cv2.meanStdDev(r - gr)
    (yb_mean,), (yb_std,) = cv2.meanStdDev(0.5 * (r + gr) - b)
    colourful = float(np.hypot(rg_std[0], yb_std[0]) + 0.3 * np.hypot(rg_mean[0], yb_mean[0]))
    hist = np.bincount(grey.ravel(), minlength=256).astype(np.float64) / grey.size
    entropy = float(-(hist[hist > 0] * np.log2(hist[hist > 0])).sum())
    coarse = cv2.resize(g, (8, 8), interpolation=cv2.INTER_AREA)
    blown, shadow = hist[245:].sum(), hist[:30].sum()
    return np.array([
        g_mean / 255, g_std / 255, blown, shadow, np.log1p(lap), np.log1p(gradient),
        colourful / 255, float(rg_mean[0]) / 255, float(cv2.mean(gr - b)[0]) / 255, entropy / 8,
        float(coarse.std()) / 255, float(coarse.std() / (g_std + 1e-3)),
    ], np.float64)


def fit_statistics(train: np.ndarray, shrink: float = 0.1) -> dict:
    """Mean and inverse covariance of ``(N, F)`` training features, the covariance shrunk
    toward its diagonal by ``shrink`` (a few hundred pictures do not pin down F² terms)."""
    mean = train.mean(axis=0)
    cov = np.cov(train, rowvar=False)
    cov = (1 - shrink) * cov + shrink * np.diag(np.diag(cov)) + 1e-8 * np.eye(len(mean))
    return {"features": list(FEATURES), "mean": mean.tolist(), "inverse_covariance": np.linalg.inv(cov).tolist()}


class ViewDistance:
    """Mahalanobis distance of a picture's :func:`view_features` to the training statistics."""

    def __init__(self, stats: dict):
        if list(stats.get("features", [])) != list(FEATURES):
            raise ValueError(f"view statistics of features {stats.get('features')}, this nerveseg computes "
                             f"{list(FEATURES)}")
        self.mean = np.asarray(stats["mean"], np.float64)
        self.inverse = np.asarray(stats["inverse_covariance"], np.float64)
        if self.mean.shape != (len(FEATURES),) or self.inverse.shape != (len(FEATURES),) * 2:
            raise ValueError("view statistics: mean or inverse covariance of the wrong shape")
        self.threshold = float(stats["threshold"]) if stats.get("threshold") is not None else None

    def of_features(self, features: np.ndarray) -> np.ndarray:
        """``(N,)`` distances of ``(N, F)`` features."""
        d = np.atleast_2d(features) - self.mean
        return np.sqrt(np.maximum(np.einsum("nf,fg,ng->n", d, self.inverse, d), 0.0))

    def __call__(self, image: np.ndarray) -> float:
        """The distance of one ``(H, W, 3) uint8`` picture."""
        return float(self.of_features(view_features(image))[0])
