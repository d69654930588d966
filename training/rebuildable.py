"""An exported engine must be rebuildable from a commit: no uncommitted changes in the
code that trained it or in the checkout that exports it.

``nerveseg export`` refuses (one line, exit 2) when the checkpoint's training revision
ends in ``+dirty`` or the checkout has uncommitted changes to tracked files, unless
``--allow-dirty`` (or ``NERVESEG_ALLOW_DIRTY=1``, which the test suite sets: it trains
and exports from whatever working tree it runs in). Allowed, the engine is marked
``extra.dirty`` with the reasons and a warning is logged. Without git (an installed
wheel) the revision is ``unknown``: nothing to check, said in the log.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from nerveseg.engines.errors import UserError

from . import runlog

log = logging.getLogger(__name__)
ENV = "NERVESEG_ALLOW_DIRTY"


def dirt(trained: str | None, where: str | Path | None = None) -> tuple[str, list[str]]:
    """``(revision now, reasons)``: why an engine of this checkpoint could not be rebuilt
    from a commit (empty: it can)."""
    now = runlog.git_revision(where)
    reasons = []
    if trained and trained.endswith("+dirty"):
        reasons.append(f"trained from uncommitted changes (revision {trained})")
    if now.endswith("+dirty"):
        reasons.append(f"the checkout has uncommitted changes (revision {now})")
    return now, reasons


def check(source: str | Path, trained: str | None, allow: bool = False,
          where: str | Path | None = None) -> dict:
    """The export's provenance (``{"export_revision", "dirty"?}``), or :class:`UserError`
    when it is not rebuildable and neither ``allow`` nor :data:`ENV` says go on."""
    now, reasons = dirt(trained, where)
    if now == "unknown":
        log.info("%s: no git checkout here: the export revision is unknown", source)
    if not reasons:
        return {"export_revision": now}
    allow = allow or os.environ.get(ENV, "") not in ("", "0")
    if not allow:
        raise UserError(f"{source}: the engine could not be rebuilt from a commit: {'; '.join(reasons)}; "
                        "commit, train again and export (or --allow-dirty to mark the engine dirty)")
    log.warning("%s: DIRTY export, not rebuildable from a commit: %s", source, "; ".join(reasons))
    return {"export_revision": now, "dirty": reasons}
