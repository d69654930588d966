"""The one per-frame CSV writer (one row per frame, flushed as it is written, so a
crash keeps it). The run's log and every recording's CSV are written by it, with the
same columns and the same time origin: ``capture_s`` counts from that file's first frame."""

from __future__ import annotations

import csv
from pathlib import Path

from ..frames import Rendered, now_ns
from ..stats import frame_row
from .common import check_writable


class CsvLog:
    """Per-frame rows (:func:`~nerveseg.realtime.stats.frame_row`) with the engines' short
    hashes on every row. ``path`` None: rows are made (for the statistics) but not
    written. Checked writable when built; opened by :meth:`open` in the writing thread."""

    def __init__(self, path: Path | None, provenance: dict):
        self.path = None if path is None else Path(path)
        self._hashes = {f"{k}_sha256": v["sha256"][:12] for k, v in provenance.items() if "sha256" in v}
        self._file = None
        self._writer = None
        self._t0_ns: int | None = None
        self.rows = 0
        if self.path is not None:
            check_writable(self.path)

    def open(self) -> None:
        if self.path is not None:
            self._file = open(self.path, "w", newline="")

    def write_frame(self, r: Rendered) -> dict:
        """The row of ``r`` (written when this log has a file); returns it."""
        if self._t0_ns is None:
            self._t0_ns = r.frame.captured_ns
        row = frame_row(r, self._t0_ns, now_ns())
        if self._file is not None:
            self._write(row)
        return row

    def _write(self, row: dict) -> None:
        full = {**row, **self._hashes}
        if self._writer is None:
            self._writer = csv.DictWriter(self._file, fieldnames=list(full))
            self._writer.writeheader()
        self._writer.writerow(full)
        # A log that survives a crash is worth a syscall per frame.
        self._file.flush()
        self.rows += 1

    def stop_writing(self) -> None:
        """Close the file and go on making rows (the file failed: disk full)."""
        file, self._file = self._file, None
        if file is not None:
            file.close()

    def close(self) -> None:
        self.stop_writing()
