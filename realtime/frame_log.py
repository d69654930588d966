"""The per-frame CSV log (one row per frame, flushed as it is written, so a crash
keeps it) and the sink that feeds it and the latency statistics."""

from __future__ import annotations

import contextlib
import csv
import io
import os
from pathlib import Path
from typing import Callable

from .events import Notice
from .frames import Rendered, now_ns
from .graph import Operator
from .sinks import check_writable, error_line
from .stats import LatencyStats, frame_row


class CsvLog:
    """Per-frame rows (:func:`~.stats.frame_row`) to a CSV, with the engines' short hashes
    on every row. Checked writable when built; opened by :meth:`open` in the writing thread.

    Rows are whole or absent: each row is one ``write()`` (a log that survives a crash
    is worth a syscall per frame), and a write that fails part-way (a full disk) is cut
    back to the end of the last whole row before the error is raised. A log that never
    got a row is removed at close: there is no file to claim."""

    def __init__(self, path: Path, provenance: dict):
        self.path = Path(path)
        self._hashes = {f"{k}_sha256": v["sha256"][:12] for k, v in provenance.items() if "sha256" in v}
        self._file = None
        self._fields: list[str] | None = None
        self._size = 0  # bytes of whole rows (the header included)
        self.rows = 0
        check_writable(self.path)

    def open(self) -> None:
        self._file = open(self.path, "wb", buffering=0)

    def write(self, row: dict) -> None:
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

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
            if self.rows == 0 and self._size == 0:
                self.path.unlink(missing_ok=True)



class LogOp(Operator):
    """The per-frame CSV, the latency statistics and, at the end, the JSON summary.
    ``keep``: rows held for the statistics (None: all; see :class:`LatencyStats`).

    A CSV that can no longer be written (disk full) is closed and told to ``notices``;
    the run goes on and the statistics still count every frame."""

    name = "log"

    def __init__(self, csv_path: Path | None, provenance: dict, t0_ns: int | None = None,
                 keep: int | None = None, notices: Callable[[Notice], None] | None = None):
        self.csv_path = csv_path
        self.provenance = provenance
        self.stats = LatencyStats(keep=keep)
        self.t0_ns = t0_ns
        self.notices = notices or (lambda notice: None)
        self._csv = CsvLog(csv_path, provenance) if csv_path is not None else None

    def setup(self) -> None:
        if self._csv is not None:
            self._csv.open()

    def process(self, r: Rendered) -> Rendered:
        if self.t0_ns is None:
            self.t0_ns = r.frame.captured_ns
        row = frame_row(r, self.t0_ns, now_ns())
        self.stats.add(row)
        if self._csv is not None:
            try:
                self._csv.write(row)
            except OSError as exc:
                self._stop_csv(exc)
        return r

    def _stop_csv(self, problem: OSError) -> None:
        csv_log, self._csv = self._csv, None
        try:
            csv_log.close()
        except OSError:
            pass  # the same full disk: the rows written so far are already flushed
        self.notices(Notice("error", f"{csv_log.path}: per-frame log stopped after {csv_log.rows} rows "
                                     f"({error_line(problem)})", str(csv_log.path), csv_log.rows))

    def teardown(self) -> None:
        if self._csv is not None:
            self._csv.close()
