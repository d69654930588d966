"""One row per engine format (backend and precision): file size, accuracy on the
synthetic test set, speed. Formats this machine cannot run are rows that say why."""

from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path

from nerveseg.engines import extras
from nerveseg.engines.loader import load_engine
from nerveseg.engines.metadata import EngineError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Format:
    """A pair of engine files run with one backend."""

    name: str
    backend: str
    gate: Path
    segment: Path
    precision: str = "fp32"


def candidate_formats(gate_onnx: Path, seg_onnx: Path, gate_pt: Path | None, seg_pt: Path | None,
                      backends: list[str], int8: tuple[Path, Path] | str | None = None) -> list[Format | dict]:
    """The formats to try for ``backends`` (``torch``, ``onnxruntime``, ``openvino``,
    ``int8``, ``tensorrt``). ``int8``: the INT8 gate and segmenter files (``nerveseg
    quantize``), or why there are none (a skipped row per CPU runtime)."""
    rows: list[Format | dict] = []
    if "torch" in backends and gate_pt and seg_pt:
        rows.append(Format("PyTorch eager FP32", "torch", gate_pt, seg_pt))
    cpu = [(b, label) for b, label in (("onnxruntime", "ONNX Runtime"), ("openvino", "OpenVINO")) if b in backends]
    for backend, label in cpu:
        rows.append(Format(f"{label} FP32", backend, gate_onnx, seg_onnx))
    if "int8" in backends:
        for backend, label in cpu:
            name = f"{label} INT8" if backend == "onnxruntime" else f"{label} on the INT8 file"
            if isinstance(int8, tuple):
                rows.append(Format(name, backend, int8[0], int8[1], "int8"))
            else:
                rows.append({"format": name, "backend": backend, "precision": "int8", "skipped": int8})
    if "tensorrt" in backends:
        rows += [Format(f"TensorRT {p.upper()}", "tensorrt", gate_onnx, seg_onnx, p) for p in ("fp16", "int8")]
    return rows


#: the synthetic world the shipped engines were trained in (training/synth/scene.py): a
#: held-out set from another world measures a domain shift, not a format's loss
ENGINES_DOMAIN = "classic"


def held_out_set(root: Path | None, per_class: int = 30, seg_count: int = 40, seed: int = 9001,
                 domain: str = ENGINES_DOMAIN) -> tuple[Path, str]:
    """``(folder with classify/ and segment/, description)``: the given one, or a held-out
    synthetic set made now with a seed no training recipe uses, in ``domain``."""
    if root is not None:
        return root, f"test set {root}"
    from nerveseg.training.synth import write_classification, write_segmentation

    folder = Path(tempfile.mkdtemp(prefix="nerveseg-bench-test-"))
    write_classification(folder / "classify", per_class, size=256, seed=seed, progress=False, domain=domain)
    write_segmentation(folder / "segment", seg_count, size=256, seed=seed, progress=False, domain=domain)
    return folder, (f"held-out synthetic set ({domain} world, seed {seed}: {3 * per_class} gate images, "
                    f"{seg_count} nerve masks)")


def _engines(fmt: Format):
    if fmt.backend == "tensorrt":
        from nerveseg.engines.environment import probe
        from nerveseg.engines.tensorrt_cache import ensure_engine

        env = probe()
        problem = env.tensorrt_problem()
        if problem:
            raise EngineError(f"{fmt.gate}: TensorRT cannot run here: {problem}")
        gate, _ = ensure_engine(fmt.gate, fmt.precision, env)
        seg, _ = ensure_engine(fmt.segment, fmt.precision, env)
        return load_engine(gate, "tensorrt", task="classify"), load_engine(seg, "tensorrt", task="segment")
    return (load_engine(fmt.gate, fmt.backend, task="classify"),
            load_engine(fmt.segment, fmt.backend, task="segment"))


def measure(fmt: Format | dict, data: Path, splits: Path | None = None, replay=None) -> dict:
    """Size, gate accuracy, nerve IoU and engine ms of one format, or why it was skipped.
    ``replay``: ``(gate, seg, slug) -> dict`` (the bench's end-to-end replay of its video
    with these engines), its result kept as ``row["replay"]``; None: engines alone."""
    if isinstance(fmt, dict):  # a format that could not even be made: its row says why
        return fmt
    row = {"format": fmt.name, "backend": fmt.backend, "precision": fmt.precision}
    try:
        gate, seg = _engines(fmt)
    except (EngineError, ImportError) as exc:
        return {**row, "skipped": extras.missing_extra(exc) or " ".join(str(exc).split())}
    try:
        row = _scores(row, gate, seg, data, splits)
        if replay is not None:
            row["replay"] = replay(gate, seg, f"{fmt.backend}_{fmt.precision}")
    finally:
        gate.close()
        seg.close()
    return row


def _scores(row: dict, gate, seg, data: Path, splits: Path | None) -> dict:
    from nerveseg.training import data as datasets, seen
    from nerveseg.training.evaluation import evaluate_gate, evaluate_seg

    cls_items = _items(splits, "classify") or datasets.list_classification(data / "classify")
    seg_items = _items(splits, "segment") or datasets.list_segmentation(data / "segment")
    for engine, part, items in ((gate, "classify", cls_items), (seg, "segment", seg_items)):
        # the release gate's figures are honest only on images the engine never learned from
        seen.check_unseen(engine.meta, engine.provenance.path, data / part, items, "test")
    g = evaluate_gate(gate, data / "classify", cls_items, batch_size=1)
    s = evaluate_seg(seg, data / "segment", seg_items, batch_size=1)
    ms = g["ms_per_image"] + s["ms_per_image"]
    return {**row, "size_mb": round(sum(Path(e.provenance.path).stat().st_size for e in (gate, seg)) / 2**20, 2),
            "gate_accuracy": round(g["accuracy"], 4), "nerve_iou": round(s["iou"]["mean"], 4),
            "gate_ms": g["ms_per_image"], "segment_ms": s["ms_per_image"], "ms_per_frame": round(ms, 3),
            "fps": round(1000 / ms, 1) if ms else None,
            "files": [gate.provenance.to_dict(), seg.provenance.to_dict()]}


def int8_engines(gate_onnx: Path, seg_onnx: Path, video: Path, out: Path, data: Path,
                 described: str) -> tuple[Path, Path] | str:
    """INT8 gate and segmenter (``nerveseg quantize``, calibrated on ``video``) in
    ``out/int8/``, or why not (a missing extra, a graph the quantizer cannot take). Built
    even where a drop exceeds its limit: the rows show it, and the floors judge it."""
    from nerveseg.commands.quantize import Options, build

    folder = out / "int8"
    try:
        extras.require("onnx", "INT8 formats")
        folder.mkdir(parents=True, exist_ok=True)
        paths = []
        for engine in (gate_onnx, seg_onnx):
            paths.append(folder / f"{engine.stem}.int8.onnx")
            check = build(engine, paths[-1], video, data, described, Options(keep_failed=True))
            log.info("%s: INT8 check %s", paths[-1], "passed" if check["passed"] else "; ".join(check["failed"]))
        return paths[0], paths[1]
    except (EngineError, ImportError) as exc:
        return extras.missing_extra(exc) or " ".join(str(exc).split())


def relative(rows: list[dict], to: str = "ONNX Runtime FP32") -> list[dict]:
    """``rows`` with ``speedup`` (``to``'s engine ms / the row's) and, where replayed,
    ``replay_speedup`` (the row's replay FPS / ``to``'s): ratios from one run, side by side."""
    base = next((r for r in rows if r.get("format") == to and "skipped" not in r), None)
    if base is None:
        return rows
    base_fps = (base.get("replay") or {}).get("fps")
    out = []
    for row in rows:
        if "skipped" not in row:
            row = {**row, "speedup": round(base["ms_per_frame"] / row["ms_per_frame"], 2)}
            fps = (row.get("replay") or {}).get("fps")
            if fps and base_fps:
                row["replay_speedup"] = round(fps / base_fps, 2)
        out.append(row)
    return out


def _items(splits: Path | None, task: str) -> list[str] | None:
    path = None if splits is None else splits / task / "test.txt"
    return path.read_text().split() if path is not None and path.is_file() else None


def failing(rows: list[dict], min_accuracy: float | None, min_iou: float | None) -> list[str]:
    """One line per measured format below a floor."""
    out = []
    for row in rows:
        if "skipped" in row:
            continue
        if min_accuracy is not None and row["gate_accuracy"] < min_accuracy:
            out.append(f"{row['format']}: gate accuracy {row['gate_accuracy']} < {min_accuracy}")
        if min_iou is not None and row["nerve_iou"] < min_iou:
            out.append(f"{row['format']}: nerve IoU {row['nerve_iou']} < {min_iou}")
    return out
