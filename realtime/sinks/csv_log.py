"""The one per-frame CSV writer (one row per frame, flushed as it is written, so a
crash keeps it). The run's log and every recording's CSV are written by it, with the
same columns and the same time origin: ``capture_s`` counts from that file's first frame."""

from __future__ import annotations

import contextlib
import csv
import io
import os
from pathlib import Path

from ..frames import Rendered, now_ns
from ..stats import frame_row
from .common import check_writable


class CsvLog:
    """Per-frame rows (:func:`~nerveseg.realtime.stats.frame_row`) with the engines' short
    hashes on every row. ``path`` None: rows are made (for the statistics) but not
    written. Checked writable when built; opened by :meth:`open` in the writing thread.

    Rows are whole or absent: each row is one ``write()`` (a log that survives a crash
    is worth a syscall per frame), and a write that fails part-way (a full disk) is cut
    back to the end of the last whole row before the error is raised. A log that never
    got a row is removed at close: there is no file to claim."""

    def __init__(self, path: Path | None, provenance: dict):
        self.path = None if path is None else Path(path)
        self._hashes = {f"{k}_sha256": v["sha256"][:12] for k, v in provenance.items() if "sha256" in v}
        self._file = None
        self._fields: list[str] | None = None
        self._size = 0  # bytes of whole rows (the header included)
        self._t0_ns: int | None = None
        self.rows = 0
        if self.path is not None:
            check_writable(self.path)

    def open(self) -> None:
        if self.path is not None:
            self._file = open(self.path, "wb", buffering=0)

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
        text = io.StringIO()
        writer = csv.DictWriter(text, fieldnames=self._fields or list(full))
        if self._fields is None:
            writer.writeheader()
        writer.writerow(full)
        self._append(text.getvalue().encode("utf-8"))
        self._fields = self._fields or list(full)
        self.rows += 1

    def _append(self, data: bytes) -> None:
        view = memoryview(data)
        try:
            while view:  # a raw write may take part of the bytes: the rest follows
                view = view[self._file.write(view):]
        except OSError:
            with contextlib.suppress(OSError):
                os.ftruncate(self._file.fileno(), self._size)  # shrinking needs no space
            raise
        self._size += len(data)

    def stop_writing(self) -> None:
        """Close the file and go on making rows (the file failed: disk full). A file that
        never got a row is removed: there is nothing to claim."""
        file, self._file = self._file, None
        if file is not None:
            file.close()
            if self.rows == 0 and self._size == 0 and self.path is not None:
                self.path.unlink(missing_ok=True)

    def close(self) -> None:
        self.stop_writing()
