"""Run configuration: one YAML per run, one section per stage, frozen dataclasses.

Unknown keys fail with a "did you mean"; the resolved configuration is written beside
every output. Paths in a config are plain strings: never expanded, executed or
interpolated.
"""

from __future__ import annotations

import dataclasses
import difflib
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from nerveseg.engines import outputs
from nerveseg.engines.checks import THREADS, UNIT, Range, bounded, field_problem, shown
from nerveseg.engines.defaults import GATE, SEGMENTER, default_engine
from nerveseg.engines.errors import UserError
from .layer import DisplayConfig
from .overlay import OverlayConfig
from nerveseg.engines.preprocess import PreprocessConfig

from .sources.camera import CameraMode
from .steady import SteadyConfig

# Absolute, from the installed project (or $NERVESEG_MODELS): never the current folder.
DEFAULT_GATE = default_engine(GATE)
DEFAULT_SEGMENTER = default_engine(SEGMENTER)
#: the fewest rows ``source.max_height`` may bring a frame to (the engines take 224-px views)
MIN_MAX_HEIGHT = 120


@dataclass(frozen=True)
class SourceConfig:
    """``spec``: camera index or device path, stream URL, video file or image folder.
    ``pace``: release file frames at their frame rate. ``live``: newest-frame policy
    (default: on for cameras and streams only). ``camera``: the mode to ask a camera for
    (docs/SOURCES.md). ``right``: a second device for the right eye, paired with
    ``spec`` by capture time into one side-by-side frame. ``max_height``: frames taller than
    this are scaled down to it (their shape kept) as they arrive, so the display, the
    engines' input, the overlay and the recording all work at that size: the size shown
    on the screen, not larger (a 4K source on a 1080p monitor: 1080). 0: never.
    ``read_ahead_ms``: a video file played at its rate is decoded up to this far ahead of
    its clock, at the lowest priority (:class:`~.sources.file.VideoFileSource`); 0: in step."""

    spec: str = ""
    pace: bool = False
    live: bool | None = None
    camera: CameraMode = field(default_factory=CameraMode)
    right: str | None = None
    max_height: int = bounded(0, Range(0, 100_000), why="rows; 0 keeps every frame its size")
    read_ahead_ms: int = bounded(1000, Range(0, 10_000), why="ms decoded ahead of a file played at its rate")

    def __post_init__(self) -> None:
        if 0 < self.max_height < MIN_MAX_HEIGHT:
            raise ValueError(f"source.max_height = {self.max_height}: must be 0 (off) or at least "
                             f"{MIN_MAX_HEIGHT} rows")


@dataclass(frozen=True)
class GateConfig:
    engine: str = DEFAULT_GATE
    backend: str = "auto"
    threads: int = bounded(0, THREADS)
    nerve_class: str = "nerve"
    # Above 1 no frame would ever pass: a useless run, refused rather than run.
    min_confidence: float = bounded(0.5, UNIT)
    # The gate runs on every Nth frame; the frames between hold its verdict (docs/BENCHMARKS.md,
    # "Heavy configuration"): at most N-1 frames (33 ms at 30 fps for N = 2) of an old label.
    every: int = bounded(1, Range(1, 10, why="the gate runs on every Nth frame, the ones between hold its verdict"))


@dataclass(frozen=True)
class SegmentConfig:
    engine: str = DEFAULT_SEGMENTER
    backend: str = "auto"
    threads: int = bounded(0, THREADS)
    threshold: float = bounded(0.5, Range(0.0, 1.0, lo_open=True, hi_open=True),
                               why="0 would mark every pixel nerve, 1 none")


@dataclass(frozen=True)
class RecordConfig:
    """``path``: the AVI (None: no recording); ``content``: what it holds (docs/LIVE.md)."""

    path: str | None = None
    # annotated: each frame inference took, drawn with its own mask (replay's only kind);
    # as-shown: live passthrough, every frame shown with the overlay as it was on screen
    content: str = bounded("annotated", ("annotated", "as-shown"))
    codec: str = bounded("mjpeg", ("mjpeg", "ffv1", "h264"))
    quality: int = bounded(90, Range(1, 100), why="JPEG quality, mjpeg only")


@dataclass(frozen=True)
class LogConfig:
    """``csv``/``summary``: per-frame CSV and JSON summary (default: beside the AVI)."""

    csv: str | None = None
    summary: str | None = None


@dataclass(frozen=True)
class PipelineConfig:
    source: SourceConfig = field(default_factory=SourceConfig)
    preprocess: PreprocessConfig = field(default_factory=PreprocessConfig)
    gate: GateConfig = field(default_factory=GateConfig)
    segment: SegmentConfig = field(default_factory=SegmentConfig)
    overlay: OverlayConfig = field(default_factory=OverlayConfig)
    record: RecordConfig = field(default_factory=RecordConfig)
    log: LogConfig = field(default_factory=LogConfig)
    steady: SteadyConfig = field(default_factory=SteadyConfig)
    display: DisplayConfig = field(default_factory=DisplayConfig)
    # Frames wait in each queue; a few hundred full-HD frames is already gigabytes.
    queue_capacity: int = bounded(4, Range(1, 256))


def _did_you_mean(key: str, valid: list[str]) -> str:
    close = difflib.get_close_matches(key, valid, n=1)
    return f"; did you mean {close[0]!r}?" if close else f"; valid keys: {', '.join(valid)}"


def _build(cls: type, raw: Any, where: str, source: str) -> Any:
    """``cls`` from the mapping ``raw``, every value checked against its field's type and
    declared range (:mod:`.checks`); the first bad one is a :class:`UserError` naming the
    key, the value and what is allowed."""
    if not isinstance(raw, dict):
        name = where.rstrip(".") or "the top level"
        raise UserError(f"{source}: {name} = {shown(raw)}: must be a mapping of keys "
                        f"({', '.join(f.name for f in dataclasses.fields(cls))})")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    values = {}
    for key, value in raw.items():
        if key not in fields:
            raise UserError(f"{source}: unknown key {where}{shown(key)}{_did_you_mean(str(key), list(fields))}")
        if dataclasses.is_dataclass(hints[key]) and isinstance(hints[key], type):
            value = _build(hints[key], value, f"{where}{key}.", source)
        else:
            wrong = field_problem(cls, key, value)
            if wrong:
                raise UserError(f"{source}: {where}{key} = {shown(value)}: {wrong}")
            if isinstance(value, list):
                value = tuple(value)
        values[key] = value
    try:
        return cls(**values)
    except (TypeError, ValueError) as exc:
        raise UserError(f"{source}: bad value in {where.rstrip('.') or 'config'}: {' '.join(str(exc).split())}") from None


def from_dict(raw: dict, source: str = "<config>") -> PipelineConfig:
    return _build(PipelineConfig, raw, "", source)


def to_dict(config: Any) -> dict:
    """Plain data (lists, not tuples) for YAML/JSON."""
    def plain(value: Any) -> Any:
        if isinstance(value, (tuple, list)):
            return [plain(v) for v in value]
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        return value
    return plain(dataclasses.asdict(config))


def merge(base: dict, overrides: dict) -> dict:
    """``base`` with ``overrides`` (nested dicts merged key by key; None values ignored)."""
    out = dict(base)
    for key, value in overrides.items():
        if value is None:
            continue
        if isinstance(value, dict):
            value = merge(out.get(key) if isinstance(out.get(key), dict) else {}, value)
            if not value and key not in out:
                continue
        out[key] = value
    return out


def load(path: str | Path | None, overrides: dict | None = None) -> PipelineConfig:
    """The configuration from ``path`` (YAML; None: defaults) with CLI ``overrides``."""
    raw: dict = {}
    if path is not None:
        path = Path(path)
        try:
            raw = yaml.safe_load(path.read_bytes().decode("utf-8")) or {}
        except OSError as exc:
            raise UserError(f"{path}: cannot read config ({exc.strerror or exc})") from None
        except UnicodeDecodeError as exc:
            raise UserError(f"{path}: not UTF-8 text (byte {exc.start}: {exc.object[exc.start:exc.start + 1]!r}); "
                            f"save the config as UTF-8") from None
        except (yaml.YAMLError, RecursionError) as exc:
            raise UserError(f"{path}: not valid YAML ({' '.join(str(exc).split())[:160]})") from None
        if not isinstance(raw, dict):
            raise UserError(f"{path}: a config must be a mapping of sections, not {shown(raw)}")
        from_dict(raw, str(path))  # a bad value is told as the file's, before the command line's
    from_dict(merge({}, overrides or {}), "command line")  # unset options (None) left out
    config = from_dict(merge(raw, overrides or {}), str(path or "command line"))
    # What the run reads, whether named on the command line or in the YAML, is never
    # one of its outputs (engines/outputs.py).
    for item in (path, config.source.spec, config.gate.engine, config.segment.engine):
        outputs.protect(item)
    return config


def save(config: PipelineConfig, path: Path, claim: bool = True) -> None:
    """The resolved configuration as YAML, written whole or not at all. ``claim=False``
    for a caller's own temporary file (its final name was claimed at start-up)."""
    if claim:
        outputs.claim(path)
    outputs.write_text_atomic(path, yaml.safe_dump(to_dict(config), sort_keys=False))
