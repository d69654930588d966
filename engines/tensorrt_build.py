"""Build a serialized TensorRT engine from a nerveseg ONNX file, with its sidecar.

The chain's last links (CONVENTIONS §11): ONNX (with metadata) → TensorRT engine →
sidecar with the ONNX metadata and the engine key; parity is then checked with
``nerveseg verify``. Inputs are checked before TensorRT is imported, so a bad ONNX file
or an empty calibration folder fails in a second, on any machine.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from .environment import Environment, probe
from .metadata import INPUT_NAME, EngineError, EngineMeta, file_sha256
from .tensorrt_meta import PRECISIONS, EngineKey, Sidecar, write_sidecar


@dataclass(frozen=True)
class BuildOptions:
    """``workspace_mb``: TensorRT's scratch-memory limit. ``opt_level``: builder
    optimisation level 0–5 (3 is TensorRT's default; lower builds faster, higher may find
    faster kernels). ``max_batch``: largest batch the engine accepts (optimum: 1, the
    pipeline's batch). ``int8`` also enables FP16 for layers that do not quantise."""

    precision: str = "fp16"
    workspace_mb: int = 2048
    opt_level: int = 3
    max_batch: int = 4
    timing_cache: Path | None = None

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise EngineError(f"precision must be one of {', '.join(PRECISIONS)}, not {self.precision!r}")
        if self.workspace_mb < 64 or not 0 <= self.opt_level <= 5 or self.max_batch < 1:
            raise EngineError("bad build options: need --workspace >= 64 MB, --opt-level 0..5, --max-batch >= 1")


def build_engine(onnx: str | Path, out: str | Path, options: BuildOptions = BuildOptions(),
                 env: Environment | None = None, calibration: np.ndarray | None = None) -> Sidecar:
    """Build ``out`` (and ``<out>.json``) from ``onnx``; returns the written sidecar.

    ``calibration``: INT8 only, ``(N, H, W, 3) uint8`` engine-input frames taken the way
    the runtime takes them (``nerveseg.realtime.sample_frames.calibration_frames``)."""
    from .onnxruntime_backend import read_onnx_meta

    onnx, out = Path(onnx), Path(out)
    if options.precision == "int8" and calibration is None:
        raise EngineError("INT8 needs calibration frames: pass --calib-dir DIR (a folder of frames)")
    if options.precision != "int8":
        calibration = None
    meta = read_onnx_meta(onnx)  # missing file / no metadata: one line naming the file
    frames = calibration
    env = env or probe()
    key = EngineKey.current(env, options.precision, file_sha256(onnx), onnx)
    out.parent.mkdir(parents=True, exist_ok=True)
    return _build(onnx, out, meta, key, options, frames, env)


def build_for_cache(onnx: Path, engine: Path, precision: str, env: Environment) -> None:
    """The engine cache's builder: default options at ``precision`` (never INT8, which
    needs calibration frames the pipeline does not have)."""
    build_engine(onnx, engine, BuildOptions(precision=precision), env)


def _build(onnx: Path, out: Path, meta: EngineMeta, key: EngineKey, options: BuildOptions,
           frames: np.ndarray | None, env: Environment) -> Sidecar:
    import tensorrt as trt

    from .tensorrt_paths import timing_cache_path

    say(f"building a {key.precision} TensorRT engine from {onnx} for {env.gpu.describe()}, TensorRT "
        f"{key.tensorrt_version}. This is a one-time build and can take minutes; the engine is saved as {out}")
    started = time.perf_counter()
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)  # TensorRT 10: explicit batch is the only mode
    parser = trt.OnnxParser(network, logger)  # owns the weights: keep it alive until the build ends
    if not parser.parse_from_file(str(onnx)):
        first = str(parser.get_error(0)).splitlines()[0] if parser.num_errors else "unknown error"
        raise EngineError(f"{onnx}: TensorRT's ONNX parser refused the model ({first[:200]})")
    config, profile = _config(trt, builder, network, meta, options, onnx)
    timing_path = options.timing_cache or timing_cache_path(key)
    _load_timing_cache(config, timing_path)
    config.progress_monitor = _progress_monitor(trt, started)
    serialized = _serialize(trt, builder, network, config, profile, frames, out)
    if serialized is None:
        raise EngineError(f"{onnx}: TensorRT could not build a {key.precision} engine (see its messages above)")
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_bytes(memoryview(serialized))
    tmp.replace(out)  # a crash mid-write never leaves a truncated engine under the real name
    _save_timing_cache(config, timing_path)
    seconds = time.perf_counter() - started
    build = {"workspace_mb": options.workspace_mb, "opt_level": options.opt_level, "max_batch": options.max_batch,
             "seconds": round(seconds, 1), "onnx": str(onnx), "created": datetime.now(timezone.utc).isoformat(),
             "calibration_frames": 0 if frames is None else len(frames)}
    sidecar = Sidecar(meta, key, file_sha256(out), build)
    write_sidecar(out, sidecar)
    say(f"built {out} in {seconds:.0f} s")
    return sidecar


def _serialize(trt, builder, network, config, profile, frames: np.ndarray | None, out: Path):
    """``builder.build_serialized_network`` with the INT8 calibrator attached when
    ``frames`` are given; the calibrator's device buffer is freed either way."""
    if frames is None:
        return builder.build_serialized_network(network, config)
    from .tensorrt_calibration import make_calibrator

    calibrator = make_calibrator(trt, frames, out.with_name(out.name + ".calib"))
    config.int8_calibrator = calibrator
    if profile is not None:
        config.set_calibration_profile(profile)
    try:
        return builder.build_serialized_network(network, config)
    finally:
        calibrator.free()


def _config(trt, builder, network, meta: EngineMeta, options: BuildOptions, onnx: Path):
    """Builder config and the optimisation profile (None when the batch is static)."""
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, options.workspace_mb << 20)
    config.builder_optimization_level = options.opt_level
    if options.precision in ("fp16", "int8"):
        config.set_flag(trt.BuilderFlag.FP16)
    if options.precision == "int8":
        config.set_flag(trt.BuilderFlag.INT8)
    inputs = [network.get_input(i) for i in range(network.num_inputs)]
    if [i.name for i in inputs] != [INPUT_NAME]:
        raise EngineError(f"{onnx}: ONNX inputs are {[i.name for i in inputs]}, expected [{INPUT_NAME!r}]")
    shape = tuple(inputs[0].shape)
    if shape[0] != -1:
        return config, None
    h, w = meta.input_size
    profile = builder.create_optimization_profile()
    # Optimum at batch 1: the live pipeline runs one frame at a time.
    profile.set_shape(INPUT_NAME, (1, h, w, 3), (1, h, w, 3), (options.max_batch, h, w, 3))
    config.add_optimization_profile(profile)
    return config, profile


def _load_timing_cache(config, path: Path) -> None:
    """Start from the saved layer timings, if any fit this GPU and TensorRT."""
    data = path.read_bytes() if path.is_file() else b""
    try:
        cache = config.create_timing_cache(data)
    except Exception:  # a damaged cache file must cost a slower build, not a failed one
        cache = None
    if cache is None or not config.set_timing_cache(cache, ignore_mismatch=False):
        say(f"timing cache {path} does not fit this GPU/TensorRT; starting a new one")
        cache = config.create_timing_cache(b"")
        config.set_timing_cache(cache, ignore_mismatch=False)


def _save_timing_cache(config, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(memoryview(config.get_timing_cache().serialize()))
    tmp.replace(path)


def _progress_monitor(trt, started: float):
    """Prints each top-level build phase and, at most every 10 s, the step within it."""

    class Progress(trt.IProgressMonitor):
        def __init__(self) -> None:
            trt.IProgressMonitor.__init__(self)
            self.top: set[str] = set()
            self.last = 0.0

        def phase_start(self, phase_name, parent_phase, num_steps) -> None:
            if parent_phase is None:
                self.top.add(phase_name)
                say(f"  [{time.perf_counter() - started:5.0f} s] {phase_name} ({num_steps} steps)")

        def step_complete(self, phase_name, step) -> bool:
            now = time.perf_counter()
            if phase_name in self.top and now - self.last > 10:
                self.last = now
                say(f"  [{now - started:5.0f} s] {phase_name}: step {step + 1}")
            return True  # False would cancel the build

        def phase_finish(self, phase_name) -> None:
            pass

    return Progress()


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)
