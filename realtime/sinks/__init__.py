"""Sinks: where rendered frames go. The annotated AVI (:mod:`.avi`), a recording that
starts and stops while running (:mod:`.recording`), the one per-frame CSV writer
(:mod:`.csv_log`), the run's log and statistics (:mod:`.log`), the JSON summary
(:mod:`.summary`) and the subscribers, i.e. the live view (:mod:`.subscribers`).
A new sink is one module with an :class:`~nerveseg.realtime.graph.Operator` and one
edge in :mod:`nerveseg.realtime.pipeline`.
"""

from .avi import CODECS, AviRecorder
from .common import check_writable, error_line
from .csv_log import CsvLog
from .log import LogOp
from .recording import RecorderOp, Recording
from .subscribers import SubscriberOp
from .summary import write_summary

__all__ = ["CODECS", "AviRecorder", "CsvLog", "LogOp", "RecorderOp", "Recording", "SubscriberOp",
           "check_writable", "error_line", "write_summary"]
