"""Frame sources and the registry that turns a spec into one.

A spec is what the user types after ``--source`` (or ``replay IN``): a camera index
(``0``), a network stream (``rtsp://``, ``rtsps://``, ``rtmp://``, ``http(s)://``,
``tcp://``, ``udp://``, ``srt://``), an image folder, a video file. :data:`SOURCES` is tried in order and the first
kind whose ``matches(spec)`` is true opens it; a new kind of source is one module with a
:class:`~.base.Source` subclass and one line here.
"""

from __future__ import annotations

import argparse
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from nerveseg.engines.errors import UserError

from .base import IMAGE_SUFFIXES, Pacer, Source, SourceStatus, to_rgb
from .camera import CameraMode, CameraSource
from .file import VideoFileSource
from .folder import ImageFolderSource
from .pair import PairedSource
from .stream import SCHEMES, StreamSource, is_stream, url_scheme

__all__ = ["IMAGE_SUFFIXES", "SCHEMES", "SOURCES", "CameraMode", "CameraSource", "SourceOptions", "ImageFolderSource",
           "Pacer", "PairedSource", "Source", "SourceKind", "SourceStatus", "StreamSource", "VideoFileSource",
           "is_camera", "normalise_spec", "open_source", "source_arg", "to_rgb", "video_file_arg"]


@dataclass(frozen=True)
class SourceOptions:
    """What a source kind may use besides its spec: ``pace`` (release file frames at
    their rate), ``camera`` (the mode to ask a camera for), ``opener`` (a camera's
    driver boundary; tests pass a scripted device), ``read_ahead_ms`` (how far a file
    played at its rate may be decoded ahead of its clock)."""

    pace: bool = False
    camera: CameraMode = CameraMode()
    opener: Callable | None = None
    read_ahead_ms: int = 0


@dataclass(frozen=True)
class SourceKind:
    """``matches(spec)``: is this spec of this kind; ``open(spec, options)``: the source
    (checks its input, one-line :class:`UserError` when it cannot be used)."""

    name: str
    matches: Callable[[str], bool]
    open: Callable[[str, SourceOptions], Source]


def is_camera(spec: str) -> bool:
    """A device index (``0``) or a device path (``/dev/video2``, ``/dev/v4l/by-id/...``)."""
    return spec.isdigit() or spec.startswith("/dev/")


def _camera(spec: str, o: SourceOptions) -> CameraSource:
    return CameraSource(int(spec) if spec.isdigit() else spec, opener=o.opener, mode=o.camera)


SOURCES: tuple[SourceKind, ...] = (
    SourceKind("camera", is_camera, _camera),
    SourceKind("stream", is_stream, lambda spec, o: StreamSource(spec)),
    SourceKind("folder", lambda spec: Path(spec).is_dir(), lambda spec, o: ImageFolderSource(spec, pace=o.pace)),
    SourceKind("file", lambda spec: True, lambda spec, o: VideoFileSource(spec, pace=o.pace,
                                                                           read_ahead_ms=o.read_ahead_ms)),
)


def open_source(spec: str | int, pace: bool | None = None, camera: CameraMode = CameraMode(),
                opener: Callable | None = None, right: str | None = None, read_ahead_ms: int = 0) -> Source:
    """A source from a command-line spec (see :data:`SOURCES`). ``pace`` defaults to
    False for files and folders (replay as fast as possible); cameras and streams are live.
    ``right``: a second device for the right eye; the two are paired by capture time into
    one side-by-side frame (:class:`PairedSource`). ``read_ahead_ms``: see
    :class:`VideoFileSource`."""
    options = SourceOptions(bool(pace), camera, opener, read_ahead_ms)
    if right:
        return PairedSource(_open(spec, options), _open(right, options))
    return _open(spec, options)


def _open(spec: str | int, options: SourceOptions) -> Source:
    text = normalise_spec(str(spec))
    kind = next(kind for kind in SOURCES if kind.matches(text))
    return kind.open(text, options)


def normalise_spec(spec: str) -> str:
    """``spec`` as the sources read it, from wherever it came (a flag, the YAML, the
    window): blanks around it gone; a ``file://`` URL (copied from a browser or a file
    manager) as its local path. A URL of a scheme no source reads (``rtp://``) is refused
    in one line naming the schemes that are read, not mistaken for a file name."""
    text = spec.strip()
    scheme = url_scheme(text)
    if scheme == "file":
        parsed = urllib.parse.urlparse(text)
        if parsed.netloc not in ("", "localhost"):
            raise UserError(f"{text}: a file on another machine ({parsed.netloc}); mount it and give its path")
        return urllib.parse.unquote(parsed.path)
    if scheme is not None and scheme not in SCHEMES:
        raise UserError(f"{text}: {scheme}:// is not a source nerveseg reads; streams: "
                        f"{', '.join(s + '://' for s in SCHEMES)}; files: a path or file://")
    return text


def source_arg(text: str) -> str:
    """argparse type of a source flag (``--source``, ``replay IN``): :func:`normalise_spec`,
    so the path a ``file://`` URL names is also guarded as an input."""
    try:
        return normalise_spec(text)
    except UserError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def video_file_arg(text: str) -> Path:
    """argparse type of a flag that takes a recorded video file (``validate --video``,
    ``extract``, ``bench``): :func:`source_arg`, a stream or a camera refused."""
    spec = source_arg(text)
    if is_stream(spec) or (is_camera(spec) and not Path(spec).is_file()):
        raise argparse.ArgumentTypeError(f"{text}: a recorded video is needed here, not a "
                                         f"{'stream' if is_stream(spec) else 'camera'}")
    return Path(spec)
