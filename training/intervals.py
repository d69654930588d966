"""The confidence intervals of :mod:`nerveseg.engines.intervals`, re-exported.

They live in ``engines`` (numpy only) so the runtime's replay can report its ground-truth
scores with the same honest intervals as training's evaluation (realtime imports no
training); this module keeps training's imports where they were.
"""

from nerveseg.engines.intervals import (  # noqa: F401
    BOOTSTRAP_METHOD, METHODS, NAN, PROPORTION_METHOD, RESAMPLES, SEED, binary_intervals, bootstrap,
    bounded_mean_ci, multiclass_mcc_interval, resample_indices, wilson,
)
