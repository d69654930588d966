"""``nerveseg view``: the live operating-room window.

The engines load before the window opens (a missing or wrong engine is a one-line
error at start-up); everything after that, including a source that cannot be opened,
is a message in the window.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from pathlib import Path

from nerveseg.realtime import config as cfg
from nerveseg.realtime.priority import realtime_while, status
from nerveseg.realtime.sources import source_arg
from nerveseg.engines.errors import UserError
from nerveseg.realtime.replay_cli import (add_camera_arguments, add_display_arguments, add_engine_arguments,
                                         camera_overrides, display_overrides, overrides)

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--source", type=source_arg,
                        help="camera index (0, 1, ...) or device path, stream URL (rtsp://, http://, ...), video "
                             "file or image folder (or open one from the window)")
    parser.add_argument("--out", type=Path, default=Path("runs/view"),
                        help="folder for recordings (AVI + CSV) and snapshots (PNG) (default runs/view)")
    parser.add_argument("--record", action="store_true", help="start recording as soon as the source runs")
    parser.add_argument("--roi", help="start with a region: x0,y0,x1,y1 (rectangle) or 'x,y x,y x,y ...' "
                                      "(polygon), in view pixels")
    parser.add_argument("--size", default="1280x860", help="window size WxH (default 1280x860)")
    add_engine_arguments(parser)
    add_camera_arguments(parser)
    add_display_arguments(parser)
    parser.add_argument("--screenshot", type=Path,
                        help="save a PNG of the window after --after seconds, then close (for docs)")
    parser.add_argument("--after", type=float, default=4.0, help="seconds before --screenshot (default 4)")
    # --out gathers time-stamped recordings and snapshots: earlier ones are no clash.
    parser.set_defaults(collects_outputs=True)


def _size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise UserError(f"--size {text!r}: expected WxH, e.g. 1280x860") from None
    return w, h


def _roi(text: str):
    from nerveseg.realtime.roi import check_roi, parse_roi

    try:
        return check_roi(parse_roi(text))
    except ValueError as exc:
        raise UserError(f"--roi {text!r}: {exc}") from None


def run(args: argparse.Namespace) -> int:
    from .platform_check import check_platform

    check_platform()  # before Qt: a plugin that cannot load would abort the process
    from PyQt6.QtWidgets import QApplication

    from nerveseg.realtime.pipeline import Engines

    from .window import ViewWindow

    width, height = _size(args.size)
    roi = _roi(args.roi) if args.roi else None
    config = cfg.load(args.config, cfg.merge(cfg.merge(cfg.merge(overrides(args), camera_overrides(args)),
                                                       display_overrides(args)),
                                             {"source": {"pace": True, "live": True}}))
    engines = Engines.load(config)
    app = QApplication.instance() or QApplication(sys.argv[:1])
    # The window's thread paints every frame: with display.realtime_priority it runs real-time
    # (the capture thread does so in each pipeline; realtime/priority.py).
    realtime, asked = config.display.realtime() if config.display.passthrough(True) else (0, True)
    with realtime_while(realtime) as got:
        if realtime:
            (log.info if got == status(realtime, None) or not asked else log.warning)(
                "the window's thread, real-time priority %d: %s", realtime, got)
        return _show(app, ViewWindow(config, engines, args.out), args, (width, height), roi)


def _show(app, window, args: argparse.Namespace, size: tuple[int, int], roi) -> int:
    """Show ``window`` (opening ``--source``) until it is closed; 0."""
    from PyQt6.QtCore import QTimer

    # Ctrl-C in the terminal (or SIGTERM) closes the window cleanly, also when it comes
    # while the window is still starting (a recording may already be open then): the
    # close is posted to the event loop, which runs it as soon as it is running. The
    # timer lets Python see the signal while Qt waits.
    def close_soon(*_) -> None:
        QTimer.singleShot(0, window.close)

    previous = signal.signal(signal.SIGINT, close_soon)
    previous_term = signal.signal(signal.SIGTERM, close_soon)  # kill: the same clean close
    tick = QTimer(interval=200, timeout=lambda: None)
    tick.start()
    try:
        window.resize(*size)
        window.show()
        if args.source is not None:
            window.open_source(args.source, roi=roi, record=args.record)
        if args.screenshot is not None:
            QTimer.singleShot(int(args.after * 1000),
                              lambda: (_save_screenshot(window, args.screenshot), window.close()))
        app.exec()
    finally:
        tick.stop()
        signal.signal(signal.SIGINT, previous)
        signal.signal(signal.SIGTERM, previous_term)
        window.close()  # already closed unless the event loop ended some other way
    return 0


def _save_screenshot(window, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if not window.grab().save(str(path)):
        print(f"nerveseg view: could not write {path}", file=sys.stderr)
    else:
        print(f"wrote {path}")
