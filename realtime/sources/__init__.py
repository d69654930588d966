"""Frame sources and the registry that turns a spec into one.

A spec is what the user types after ``--source`` (or ``replay IN``): a camera index
(``0``), a network stream (``rtsp://``, ``rtsps://``, ``rtmp://``, ``http(s)://``,
``tcp://``, ``udp://``, ``srt://``), an image folder, a video file. :data:`SOURCES` is tried in order and the first
kind whose ``matches(spec)`` is true opens it; a new kind of source is one module with a
:class:`~.base.Source` subclass and one line here.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from .base import IMAGE_SUFFIXES, Pacer, Source, SourceStatus, to_rgb
from .camera import CameraSource
from .file import VideoFileSource
from .folder import ImageFolderSource
from .stream import StreamSource, is_stream

__all__ = ["IMAGE_SUFFIXES", "SOURCES", "CameraSource", "ImageFolderSource", "Pacer", "Source", "SourceKind",
           "SourceStatus", "StreamSource", "VideoFileSource", "open_source", "to_rgb"]


@dataclass(frozen=True)
class SourceKind:
    """``matches(spec)``: is this spec of this kind; ``open(spec, pace)``: the source
    (checks its input, one-line :class:`UserError` when it cannot be used)."""

    name: str
    matches: Callable[[str], bool]
    open: Callable[[str, bool], Source]


SOURCES: tuple[SourceKind, ...] = (
    SourceKind("camera", str.isdigit, lambda spec, pace: CameraSource(int(spec))),
    SourceKind("stream", is_stream, lambda spec, pace: StreamSource(spec)),
    SourceKind("folder", lambda spec: Path(spec).is_dir(), lambda spec, pace: ImageFolderSource(spec, pace=pace)),
    SourceKind("file", lambda spec: True, lambda spec, pace: VideoFileSource(spec, pace=pace)),
)


def open_source(spec: str | int, pace: bool | None = None) -> Source:
    """A source from a command-line spec (see :data:`SOURCES`). ``pace`` defaults to
    False for files and folders (replay as fast as possible); cameras are live."""
    text = str(spec)
    kind = next(kind for kind in SOURCES if kind.matches(text))
    return kind.open(text, bool(pace))
