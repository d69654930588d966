"""``nerveseg calibrate GATE.onnx --data DATA --splits DIR --out NEW.onnx``: a gate's
temperature and unfamiliar-view threshold, fitted on the validation split, written into
the metadata of a NEW engine file (the input is never changed).

The engine runs on the ``val`` items of ``--splits`` (as :mod:`.evaluation` runs it);
:func:`nerveseg.engines.calibration.fit` finds the temperature (least negative
log-likelihood) and puts the threshold at the 99th percentile of the validation energy
scores. Beside ``NEW.onnx``: ``NEW.calibration.json`` (the fit, ECE before and after)
and ``NEW.reliability.png``. The graph is copied unchanged: the same weights, the same
outputs; only ``extra.calibration`` of the metadata is new (``nerveseg info`` says it).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from nerveseg.engines.loader import BACKEND_CHOICES

GATE_TASKS = ("classify", "gate_segment")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("engine", type=Path, metavar="GATE.onnx", help="the gate engine to calibrate (ONNX)")
    parser.add_argument("--data", required=True, help="dataset folder the split lists refer to")
    parser.add_argument("--splits", required=True, metavar="DIR", help="folder with val.txt (and train/test.txt)")
    parser.add_argument("--split", choices=("val", "train", "test"), default="val",
                        help="the list to fit on (default val: never the test split you report on)")
    parser.add_argument("--out", required=True, type=Path, metavar="NEW.onnx",
                        help="the calibrated engine to write (.json and .png beside it)")
    parser.add_argument("--quantile", type=float, default=0.99,
                        help="the unfamiliar-view threshold: this quantile of the split's energy scores "
                             "(default 0.99: 1 %% of familiar images flagged)")
    parser.add_argument("--backend", default="auto", choices=BACKEND_CHOICES, help="backend that runs the engine")
    parser.add_argument("--batch-size", type=int, default=16, help="images per engine call")


def run(args: argparse.Namespace) -> int:
    from nerveseg.engines import outputs
    from nerveseg.engines.calibration import reliability, softmax, with_calibration
    from nerveseg.engines.errors import UserError

    from . import plots
    from .splits import read_scored

    if args.engine.suffix.lower() != ".onnx" or args.out.suffix.lower() != ".onnx":
        raise UserError(f"{args.engine} -> {args.out}: calibrate rewrites ONNX metadata: give .onnx files")
    if not 0.5 <= args.quantile < 1:
        raise UserError(f"--quantile {args.quantile}: must be in [0.5, 1)")
    report_path = outputs.claim(args.out.with_suffix(".calibration.json"))
    png = outputs.claim(args.out.with_suffix(".reliability.png"))
    items = read_scored(args.splits, args.split, args.data)
    train = read_scored(args.splits, "train", args.data) if args.split != "train" else items
    if len(items) < 10:
        raise UserError(f"{args.splits}/{args.split}.txt: {len(items)} images; at least 10 are needed to fit")
    raw, truth, meta = network_logits(args, items)
    values, fitted = fitted_values(args, raw, truth, train, items, meta.input_size)
    write_engine(args.engine, with_calibration(meta, values), args.out)
    curves = {"T = 1": reliability(softmax(raw), truth),
              f"T = {fitted['temperature']:.2f}": reliability(softmax(raw / fitted["temperature"]), truth)}
    plots.reliability_png(curves, png, f"{args.engine.name}: reliability ({args.split}, n={len(items)})")
    outputs.write_text_atomic(report_path, json.dumps({"engine": str(args.engine), "out": str(args.out),
                                                       **values, "reliability": curves}, indent=1))
    say(args, values, fitted, len(items))
    print(f"wrote {args.out}, {report_path}, {png}")
    return 0


def network_logits(args, items: list[str]) -> tuple[np.ndarray, np.ndarray, object]:
    """``(N, C)`` logits as the network makes them (any temperature the engine already
    has taken back out), ``(N,)`` labels and the engine's metadata."""
    from nerveseg.engines.errors import UserError
    from nerveseg.engines.loader import load_engine

    from .data import label_of
    from .evaluation import _batches

    with load_engine(args.engine, args.backend) as engine:
        if engine.meta.task not in GATE_TASKS:
            raise UserError(f"{args.engine}: a {engine.meta.task!r} engine has no gate to calibrate")
        truth = np.array([label_of(item, engine.classes) for item in items])
        logits = np.concatenate([out["logits"].astype(np.float64) for _, out in
                                 _batches(engine, Path(args.data), items, args.batch_size, "calibrate", {})])
        return logits * engine.calibration.temperature, truth, engine.meta


def fitted_values(args, raw, truth, train, items, size) -> tuple[dict, dict]:
    """The metadata's ``calibration`` values, and the fit they come from."""
    return calibration_values(raw, truth, Path(args.data), train, items, size, args.quantile,
                              f"{args.split} split of {args.data} ({len(items)} images)")


def calibration_values(raw, truth, root: Path, train: list[str], held: list[str], size, quantile: float,
                       fitted_on: str) -> tuple[dict, dict]:
    """``(values, fit)``: the temperature and energy threshold fitted on ``held``'s ``(N, C)``
    network logits ``raw`` and labels ``truth``, the view statistics of ``train`` with
    their threshold on ``held`` (export --calibrate uses it too)."""
    from nerveseg.engines.calibration import fit

    fitted = fit(raw, truth, quantile)
    values = {"temperature": round(fitted["temperature"], 6), "energy_threshold": round(fitted["energy_threshold"], 6),
              "quantile": quantile, "fitted_on": fitted_on,
              "ece_before": round(fitted["ece_before"], 6), "ece_after": round(fitted["ece_after"], 6),
              "temperature_at_bound": fitted["at_bound"],
              "view_statistics": view_statistics(root, train, held, size, quantile)}
    return values, fitted


def say(args, values: dict, fitted: dict, n: int) -> None:
    if fitted["at_bound"]:
        print(f"note: the {args.split} split has too few mistakes to pin the temperature down: "
              f"T = {fitted['temperature']:.3f} is the search's bound (any smaller fits as well)")
    print(f"temperature {values['temperature']:.3f}: expected calibration error {fitted['ece_before']:.3f} -> "
          f"{fitted['ece_after']:.3f} on {n} {args.split} images; unfamiliar view above energy "
          f"{values['energy_threshold']:.3f} ({100 * (1 - args.quantile):.0f} % of them)")
    view = values["view_statistics"]
    print(f"view statistics: unfamiliar beyond distance {view['threshold']:.2f} (fitted on {view['fitted_on']})")


def view_statistics(root: Path, train: list[str], held: list[str], size: tuple[int, int], quantile: float) -> dict:
    """:mod:`nerveseg.engines.familiarity`'s statistics of the ``train`` pictures, and the
    threshold at ``quantile`` of the ``held`` (validation) pictures' distances to them."""
    from nerveseg.engines.familiarity import ViewDistance, fit_statistics, view_features

    from .data import read_rgb

    def features(items):
        return np.stack([view_features(read_rgb(root / item, size)) for item in items])

    stats = fit_statistics(features(train))
    distances = ViewDistance({**stats, "threshold": None}).of_features(features(held))
    return {**stats, "threshold": round(float(np.quantile(distances, quantile)), 6),
            "fitted_on": f"{len(train)} training pictures, threshold on {len(held)} held-out"}


def write_engine(source: Path, meta, out: Path) -> None:
    """``source``'s graph, unchanged, with ``meta`` as its nerveseg metadata, to ``out``
    (whole or not at all), read back to check."""
    import os
    import tempfile

    import onnx

    from nerveseg.engines.loader import load_engine
    from nerveseg.engines.metadata import META_KEY

    proto = onnx.load(str(source))
    onnx.helper.set_model_props(proto, {**{p.key: p.value for p in proto.metadata_props}, META_KEY: meta.to_json()})
    out.parent.mkdir(parents=True, exist_ok=True)
    handle, temp = tempfile.mkstemp(dir=out.parent, prefix=f".{out.stem}.", suffix=".tmp.onnx")
    os.close(handle)
    try:
        onnx.save(proto, temp)
        with load_engine(temp, backend="onnxruntime") as engine:
            if engine.meta != meta:
                raise RuntimeError(f"{out}: the metadata read back differs from what was written")
        os.replace(temp, out)
    finally:
        Path(temp).unlink(missing_ok=True)
