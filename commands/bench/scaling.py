"""How engine cost scales with input size and backbone.

Speed does not depend on the weights, so every backbone is built fresh (random init)
from the training registries, exported at each size, and timed on the same frames with
ONNX Runtime. Needs the ``train`` extra (torch) to build and export.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np

from nerveseg.engines.metadata import META_KEY, EngineMeta

from nerveseg.engines.preprocess import PreprocessConfig, Preprocessor
from nerveseg.realtime.stats import describe

GATES = ("mobilenet_v2:0.5", "mobilenet_v2:1.0", "resnet50", "resnet101", "densenet169", "densenet201")
SEGMENTERS = ("unet_mobilenet_v2:0.5", "unet_mobilenet_v2:1.0", "deeplabv3plus_mobilenet_v2:0.5",
              "deeplabv3plus_resnet50", "double_unet:0.5")
GATE_SEGMENTERS = ("unet_gate_mobilenet_v2:0.5",)  # the single engine: gate and mask in one forward
SIZES = (224, 320, 512)


def _spec(text: str) -> tuple[str, dict]:
    name, _, width = text.partition(":")
    return name, ({"width_mult": float(width)} if width else {})


def export_random(task: str, spec: str, size: int, out: Path, threads: int) -> "object":
    """A random-init ``spec`` model exported to ONNX at ``size`` and loaded with ONNX Runtime."""
    import onnx

    from nerveseg.engines.onnxruntime_backend import OnnxRuntimeEngine
    from nerveseg.training.export import to_onnx
    from nerveseg.training.models import NormalizedModel, build_model

    name, kwargs = _spec(spec)
    classes = ("background", "nerve") if task == "segment" else ("nerve", "opening_wound", "tendon")
    model = build_model(task, name, 1 if task == "segment" else len(classes), **kwargs)
    meta = EngineMeta(model=name, task=task, classes=classes, input_size=(size, size),
                      extra={"note": "random weights: for timing only"})
    proto = to_onnx(NormalizedModel(model, meta.mean, meta.std).eval(), meta, "legacy", 17)
    proto.metadata_props.add(key=META_KEY, value=meta.to_json())
    onnx.save(proto, str(out))
    return OnnxRuntimeEngine(out, threads=threads, reason="bench scaling")


def _time(engine, inputs: list[np.ndarray]) -> dict:
    engine.warmup()
    ms = []
    for batch in inputs:
        t0 = time.perf_counter()
        engine.run(batch)
        ms.append(1000 * (time.perf_counter() - t0))
    return describe(ms)


def scaling(frames: list[np.ndarray], sizes=SIZES, gates=GATES, segmenters=SEGMENTERS,
            gate_segmenters=GATE_SEGMENTERS, threads: int = 0, limit: int = 30) -> list[dict]:
    """One row per (task, backbone, size): ms per frame (p50/p95) and parameters' file size."""
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for size in sizes:
            pre = Preprocessor(PreprocessConfig(), (size, size))
            inputs = [pre(image)[1].copy() for image in frames[:limit]]
            for task, specs in (("classify", gates), ("segment", segmenters), ("gate_segment", gate_segmenters)):
                for spec in specs:
                    path = Path(tmp) / f"{task}_{spec.replace(':', '_')}_{size}.onnx"
                    engine = export_random(task, spec, size, path, threads)
                    timing = _time(engine, inputs)
                    rows.append({"task": task, "backbone": spec, "size": size, "ms": timing,
                                 "onnx_mb": round(path.stat().st_size / 2**20, 2)})
                    engine.close()
    return rows


def scaling_table(rows: list[dict]) -> str:
    """Markdown: backbone rows, one column per size (p50 ms per frame)."""
    sizes = sorted({r["size"] for r in rows})
    lines = ["| task | backbone | " + " | ".join(f"{s}×{s} p50 ms" for s in sizes) + " | ONNX MB |",
             "|---|---|" + "---|" * (len(sizes) + 1)]
    for task, backbone in dict.fromkeys((r["task"], r["backbone"]) for r in rows):
        cells = {r["size"]: r for r in rows if r["task"] == task and r["backbone"] == backbone}
        ms = " | ".join(f"{cells[s]['ms']['p50']:.1f}" if s in cells else "-" for s in sizes)
        lines.append(f"| {task} | {backbone} | {ms} | {next(iter(cells.values()))['onnx_mb']} |")
    return "\n".join(lines)
