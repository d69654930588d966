"""The delay measurement's screen probe: the Qt view's own paint where Qt can start,
else the pipeline's subscriber hand-off (:mod:`nerveseg.realtime.display_probe`)."""

from __future__ import annotations

import logging

from nerveseg.realtime.display_probe import Shown, SubscriberProbe

__all__ = ["Shown", "SubscriberProbe", "make_probe"]

log = logging.getLogger(__name__)


def make_probe(kind: str):
    """``qt`` (falls back to the subscriber, saying why, where Qt cannot start) or ``subscriber``."""
    if kind == "subscriber":
        return SubscriberProbe()
    try:
        from nerveseg.ui.paint_probe import QtPaintProbe

        return QtPaintProbe()
    except (ImportError, RuntimeError) as exc:
        reason = f"Qt view unavailable ({' '.join(str(exc).split())})"
        log.warning("%s: delays measured at the display subscriber", reason)
        return SubscriberProbe(reason)
