"""The run's log: the per-frame CSV and the latency statistics the summary reads."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from ..events import Notice
from ..frames import Rendered
from ..graph import Operator
from ..stats import LatencyStats
from .common import error_line
from .csv_log import CsvLog


class LogOp(Operator):
    """The per-frame CSV, the latency statistics and, at the end, the JSON summary.
    ``keep``: rows held for the statistics (None: all; see :class:`LatencyStats`).

    A CSV that can no longer be written (disk full) is closed and told to ``notices``;
    the run goes on and the statistics still count every frame."""

    name = "log"

    def __init__(self, csv_path: Path | None, provenance: dict, keep: int | None = None,
                 notices: Callable[[Notice], None] | None = None):
        self.csv_path = csv_path
        self.provenance = provenance
        self.stats = LatencyStats(keep=keep)
        self.notices = notices or (lambda notice: None)
        self._csv = CsvLog(csv_path, provenance)

    def setup(self) -> None:
        self._csv.open()

    def process(self, r: Rendered) -> Rendered:
        try:
            row = self._csv.write_frame(r)
        except OSError as exc:
            self._stop_csv(exc)
            row = self._csv.write_frame(r)  # the statistics still count every frame
        self.stats.add(row)
        return r

    def _stop_csv(self, problem: OSError) -> None:
        try:
            self._csv.stop_writing()
        except OSError:
            pass  # the same full disk: the rows written so far are already flushed
        self.notices(Notice("error", f"{self._csv.path}: per-frame log stopped after {self._csv.rows} rows "
                                     f"({error_line(problem)})", str(self._csv.path), self._csv.rows))

    def teardown(self) -> None:
        self._csv.close()
