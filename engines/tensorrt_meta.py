"""The sidecar beside every TensorRT engine: ``<engine>.json``.

A serialized TensorRT engine is only valid on the GPU model and TensorRT version that
built it, and it cannot hold our metadata, so each engine file gets a JSON sidecar:

    {"format_version": 1,
     "nerveseg": {...EngineMeta of the source ONNX...},
     "tensorrt": {"gpu_name", "compute_capability", "sm_count", "tensorrt_version",
                  "precision", "onnx_sha256", "engine_sha256", "build": {...}}}

The :class:`EngineKey` fields decide whether an engine may be used: the cache rebuilds
on any mismatch and the backend refuses to load one, because a TensorRT engine built
elsewhere either fails to deserialize or, worse, runs with kernels tuned for another chip.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .environment import Environment
from .metadata import META_KEY, EngineError, EngineMeta, file_sha256

SIDECAR_FORMAT = 1
PRECISIONS = ("fp32", "fp16", "int8")


@dataclass(frozen=True)
class EngineKey:
    """What a TensorRT engine is valid for. Equal keys: the engine may be reused."""

    gpu_name: str
    compute_capability: str
    sm_count: int
    tensorrt_version: str
    precision: str
    onnx_sha256: str

    @classmethod
    def current(cls, env: Environment, precision: str, onnx_sha256: str, source: str | Path = "") -> "EngineKey":
        """The key an engine built here, now, would have. ``env`` must have a GPU and TensorRT."""
        problem = env.tensorrt_problem()
        if problem:
            raise EngineError(f"{source}: cannot use TensorRT here: {problem}; use --backend onnxruntime instead")
        gpu = env.gpu
        return cls(gpu.name, gpu.compute_capability, gpu.sm_count, env.tensorrt, precision, onnx_sha256)

    def mismatches(self, wanted: "EngineKey") -> list[str]:
        """Human-readable differences, e.g. ``["GPU 'NVIDIA A100' (here 'NVIDIA H200')"]``."""
        labels = {"gpu_name": "GPU", "compute_capability": "compute capability", "sm_count": "SM count",
                  "tensorrt_version": "TensorRT", "precision": "precision", "onnx_sha256": "ONNX sha256"}
        out = []
        for name, label in labels.items():
            have, want = getattr(self, name), getattr(wanted, name)
            if have != want:
                if name == "onnx_sha256":
                    have, want = str(have)[:12], str(want)[:12]
                out.append(f"{label} {have!r} (here {want!r})")
        return out


@dataclass(frozen=True)
class Sidecar:
    """Everything known about one engine file. ``build`` holds free-form build facts
    (workspace, optimisation level, max batch, seconds, calibration frames)."""

    meta: EngineMeta
    key: EngineKey
    engine_sha256: str
    build: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        trt = {**dataclasses.asdict(self.key), "engine_sha256": self.engine_sha256, "build": self.build}
        return {"format_version": SIDECAR_FORMAT, META_KEY: json.loads(self.meta.to_json()), "tensorrt": trt}


def sidecar_path(engine: str | Path) -> Path:
    """``gate.fp16.engine`` → ``gate.fp16.engine.json``."""
    engine = Path(engine)
    return engine.with_name(engine.name + ".json")


def write_sidecar(engine: str | Path, sidecar: Sidecar) -> Path:
    path = sidecar_path(engine)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(sidecar.to_dict(), indent=2, sort_keys=True))
    tmp.replace(path)  # atomic: a reader never sees half a sidecar
    return path


def read_sidecar(engine: str | Path) -> Sidecar:
    """Read and validate ``<engine>.json``; :class:`EngineError` (one line) if unusable."""
    engine = Path(engine)
    path = sidecar_path(engine)
    if not path.is_file():
        raise EngineError(f"{engine}: no sidecar {path.name} beside the engine (build engines with "
                          f"`nerveseg build-engine MODEL.onnx`)")
    try:
        raw = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise EngineError(f"{path}: engine sidecar is not valid JSON ({getattr(exc, 'msg', exc)})") from None
    if not isinstance(raw, dict) or not isinstance(raw.get("tensorrt"), dict) or META_KEY not in raw:
        raise EngineError(f"{path}: engine sidecar lacks the '{META_KEY}' or 'tensorrt' section")
    if raw.get("format_version", SIDECAR_FORMAT) > SIDECAR_FORMAT:
        raise EngineError(f"{path}: engine sidecar format {raw['format_version']} is newer than this "
                          f"nerveseg understands ({SIDECAR_FORMAT}); upgrade nerveseg")
    meta = EngineMeta.from_dict(raw[META_KEY], path) if isinstance(raw[META_KEY], dict) else None
    if meta is None:
        raise EngineError(f"{path}: engine sidecar's '{META_KEY}' section is not an object")
    return Sidecar(meta, _key(raw["tensorrt"], path), str(raw["tensorrt"].get("engine_sha256", "")),
                   dict(raw["tensorrt"].get("build") or {}))


def _key(trt: dict[str, Any], path: Path) -> EngineKey:
    names = [f.name for f in dataclasses.fields(EngineKey)]
    missing = [n for n in names if n not in trt]
    if missing or "engine_sha256" not in trt:
        raise EngineError(f"{path}: engine sidecar lacks {', '.join(missing or ['engine_sha256'])}")
    try:
        key = EngineKey(**{n: trt[n] for n in names})
        key = dataclasses.replace(key, sm_count=int(key.sm_count))
    except (TypeError, ValueError) as exc:
        raise EngineError(f"{path}: bad engine sidecar ({exc})") from None
    if key.precision not in PRECISIONS:
        raise EngineError(f"{path}: engine sidecar precision {key.precision!r} is not one of {', '.join(PRECISIONS)}")
    return key


def check_engine_file(engine: str | Path, sidecar: Sidecar) -> None:
    """Refuse an engine whose bytes are not the ones its sidecar describes (truncated
    copy, a different engine renamed, disk corruption)."""
    engine = Path(engine)
    if not engine.is_file():
        raise EngineError(f"{engine}: engine file not found")
    if file_sha256(engine) != sidecar.engine_sha256:
        raise EngineError(f"{engine}: engine file does not match the sha256 in its sidecar "
                          f"(corrupt or replaced); rebuild it with `nerveseg build-engine`")


def check_key(engine: str | Path, sidecar: Sidecar, env: Environment) -> None:
    """Refuse an engine built for another GPU, TensorRT version or ONNX file."""
    here = EngineKey.current(env, sidecar.key.precision, sidecar.key.onnx_sha256, engine)
    diffs = sidecar.key.mismatches(here)
    if diffs:
        raise EngineError(f"{engine}: engine was built for {'; '.join(diffs)}; rebuild it here with "
                          f"`nerveseg build-engine` from its ONNX file")
