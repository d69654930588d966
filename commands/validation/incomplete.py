"""The report of a validation that did not finish: INCOMPLETE, never PASS or FAIL.

Written in place of the whole report (HTML, JSON, PDF, same file names, so no file left
from an earlier run can speak for this one) when a run is stopped part way: by Ctrl-C or
SIGTERM, or by a failure. It lists what was measured and what was not; the numbers that
were measured are in the JSON, judged by nothing. Signals are held while it is written.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from nerveseg.engines.interrupts import deferred_signals, stop_reason, temp_beside

from . import render
from .sections import Section

STEPS = ("test sets (classification and segmentation metrics)",
         "every-frame pass (pixel degradation, recordings, video ground truth)",
         "real-time pass (annotation and video delays)",
         "verdict and report")
TITLE = "nerveseg validation report: INCOMPLETE"
log = logging.getLogger(__name__)


def section(partial: dict, why: str) -> Section:
    meta, done = partial["nerveseg_validate"], partial.get("measured", [])
    s = Section("verdict", "Verdict: INCOMPLETE")
    s.p(f"This validation did not finish ({why}); it gives no verdict. Nothing here is a PASS or a FAIL.")
    s.p(f"Created {meta['created']} by: {meta['command']}")
    s.h("Measured")
    s.blocks.append(("list", list(done) or ["nothing"]))
    s.h("Not measured")
    s.blocks.append(("list", [step for step in STEPS if step not in done]))
    s.p("The measured numbers are in validation.json under their sections; they were not judged.")
    return s


def write(outputs: dict[str, Path], partial: dict, exc: BaseException | None) -> dict[str, Path]:
    """Replace every report file of ``outputs`` with the INCOMPLETE report (signals held).

    ``exc`` None: the placeholder written before anything is measured, so a run killed
    outright (SIGKILL, power) leaves INCOMPLETE too, never an earlier run's verdict. A file
    that cannot be written (e.g. the PDF library's import was cut short) is removed."""
    why = stop_reason(exc) if exc is not None else STARTED
    with deferred_signals() as held:
        done = partial.get("measured", [])
        body = {**partial, "verdict": {"status": "INCOMPLETE", "passed": False, "reason": why, "checks": [],
                                       "measured": list(done),
                                       "not_measured": [step for step in STEPS if step not in done]}}
        parts = [section(partial, why)]
        written = {key: path for key, path in outputs.items() if key != "config" and _one(key, path, body, parts)}
        held.clear()  # the run is stopping already: a second Ctrl-C asks for nothing more
    return written


STARTED = "still running, or stopped without a chance to say so (killed, crashed)"


def _one(key: str, path: Path, body: dict, parts: list) -> bool:
    temp = temp_beside(path)
    try:
        if key == "json":
            render.write_json(temp, body, parts)
        elif key == "html":
            render.write_html(temp, TITLE, parts)
        else:
            render.write_pdf(temp, TITLE, parts)
        os.replace(temp, path)
        return True
    except Exception as exc:  # noqa: BLE001 (no stale verdict may stay behind, whatever broke)
        log.warning("%s: cannot write the INCOMPLETE report (%s); removed", path, exc)
        Path(path).unlink(missing_ok=True)
        return False
    finally:
        temp.unlink(missing_ok=True)
