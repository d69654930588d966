"""Instance mask and box mAP of an engine or a model on a split (torchmetrics, COCO-style).

``evaluate_instance(engine_or_model, data, items)`` runs each item's image (resized to the
engine input, as the runtime resizes frames) through an ``instance`` :class:`Engine`
(ONNX Runtime, torch checkpoint, ...) or an in-memory
:class:`~nerveseg.training.models.maskrcnn.InstanceModel`, pastes the box-relative masks at
the input size (:func:`nerveseg.engines.instance_masks.paste_masks`) and scores them
against the ground truth at that size with torchmetrics ``MeanAveragePrecision``
(pycocotools backend) for ``iou_type`` bbox and segm: the COCO numbers (mAP over IoU
0.50:0.95, mAP@0.5, @0.75, mAR@100) and AP per class. Nothing here is hand-written metric code.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from nerveseg.engines.instance_masks import paste_masks
from nerveseg.engines.metadata import OUTPUT_NAMES
from nerveseg.engines.errors import UserError

from ..importers import ImportedDataset
from .data import load_instances, read_instances
from .dataset import targets_from_masks

KEYS = ("map", "map_50", "map_75", "map_small", "map_medium", "map_large", "mar_1", "mar_10", "mar_100")


def predict(engine_or_model, image: np.ndarray) -> dict[str, np.ndarray]:
    """The instance outputs for one ``(H, W, 3) uint8`` image, by name (engine contract)."""
    batch = np.ascontiguousarray(image[None])
    if hasattr(engine_or_model, "run"):
        return engine_or_model.run(batch)
    with torch.inference_mode():
        outputs = engine_or_model.eval()(torch.from_numpy(batch))
    return {name: value.numpy() for name, value in zip(OUTPUT_NAMES["instance"], outputs)}


def _input_size(engine_or_model, given: tuple[int, int] | None) -> tuple[int, int]:
    if given is not None:
        return tuple(given)
    if hasattr(engine_or_model, "input_size"):
        return tuple(engine_or_model.input_size)
    size = engine_or_model.model.transform.min_size[0]
    return (size, size)


def _prediction(out: dict[str, np.ndarray], size: tuple[int, int]) -> dict[str, torch.Tensor]:
    masks = paste_masks(out["masks"], out["boxes"], size)
    return {"boxes": torch.from_numpy(np.asarray(out["boxes"], np.float32)).reshape(-1, 4),
            "scores": torch.from_numpy(np.asarray(out["scores"], np.float32)),
            "labels": torch.from_numpy(np.asarray(out["labels"], np.int64)),
            "masks": torch.from_numpy(masks)}


def evaluate_instance(engine_or_model, data: ImportedDataset | str | Path, items: list[str],
                      input_size: tuple[int, int] | None = None) -> dict:
    """COCO box and mask mAP of ``engine_or_model`` on ``items`` of ``data`` (a dataset
    folder or an imported dataset): see :func:`score_instances` for the report, plus
    ``ms_per_image`` (the engine or model alone)."""
    dataset = data if isinstance(data, ImportedDataset) else load_instances(data)
    size = _input_size(engine_or_model, input_size)
    samples, predictions, truths, spent = dataset.by_item(), [], [], 0.0
    missing = [item for item in items if item not in samples]
    if missing:
        raise UserError(f"{dataset.root}: {len(missing)} listed images are not in this {dataset.layout} "
                        f"data set (first: {missing[0]})")
    for item in items:
        image, labels, masks = read_instances(dataset, samples[item], size)
        began = time.perf_counter()
        out = predict(engine_or_model, image)
        spent += time.perf_counter() - began
        predictions.append(_prediction(out, size))
        truths.append(targets_from_masks(torch.from_numpy(labels), torch.from_numpy(masks), min_pixels=1))
    report = score_instances(predictions, truths, dataset.classes)
    report["ms_per_image"] = round(1000 * spent / max(len(items), 1), 3)
    return report


def score_instances(predictions: list[dict], truths: list[dict], classes: tuple[str, ...]) -> dict:
    """torchmetrics ``MeanAveragePrecision`` (bbox and segm) over images. ``predictions``:
    per image ``boxes (K, 4)``, ``scores (K,)``, ``labels (K,)`` (1-based), ``masks (K, H, W)``;
    ``truths`` the same without scores. Returns ``{"n", "bbox": {KEYS...}, "segm": {...},
    "per_class": {name: {"bbox_ap", "segm_ap", "bbox_ap50", "segm_ap50"}}, "pr50": {...}}`` as plain floats (-1 where
    COCO has no value, e.g. no large objects); ``classes`` names the labels 1, 2, ...
    ``pr50[kind][name]`` is COCO's interpolated precision at recall 0, 0.01, ..., 1 for
    IoU 0.5, all areas, 100 detections (0 beyond the highest recall reached; None for a
    class with no objects), the points whose mean is AP50."""
    from torchmetrics.detection import MeanAveragePrecision

    metric = MeanAveragePrecision(iou_type=("bbox", "segm"), class_metrics=True, backend="pycocotools",
                                  extended_summary=True)
    for pred, truth in zip(predictions, truths):
        metric.update([{**pred, "masks": pred["masks"].bool()}], [{**truth, "masks": truth["masks"].bool()}])
    return _report(metric.compute(), classes, len(truths))


def _report(result: dict, classes: tuple[str, ...], n: int) -> dict:
    report = {"n": n, "bbox": {}, "segm": {}, "per_class": {}, "pr50": {"bbox": {}, "segm": {}}}
    for kind in ("bbox", "segm"):
        report[kind] = {key: float(result[f"{kind}_{key}"]) for key in KEYS}
    ids = [int(v) for v in torch.atleast_1d(result["classes"])]
    names = [classes[label - 1] if 0 < label <= len(classes) else str(label) for label in ids]
    for kind in ("bbox", "segm"):
        values = torch.atleast_1d(result[f"{kind}_map_per_class"])
        for name, value in zip(names, values):
            report["per_class"].setdefault(name, {})[f"{kind}_ap"] = float(value)
        # (IoU thresholds, recall points, classes, areas, max detections): IoU 0.5, all, 100
        precision = result[f"{kind}_precision"][0, :, :, 0, -1]
        for k, name in enumerate(names):
            points = precision[:, k]
            report["pr50"][kind][name] = [round(float(p), 4) if p >= 0 else None for p in points]
            report["per_class"][name][f"{kind}_ap50"] = float(points.mean()) if points[0] >= 0 else -1.0
    return report


def format_instance_report(report: dict) -> list[str]:
    """The report's lines for ``report.txt``: the COCO table and AP per class."""
    lines = [f"{'':<10}{'mAP':>8}{'AP50':>8}{'AP75':>8}{'AR100':>8}"]
    for kind, label in (("segm", "mask"), ("bbox", "box")):
        r = report[kind]
        lines.append(f"{label:<10}" + "".join(f"{r[k]:>8.3f}" for k in ("map", "map_50", "map_75", "mar_100")))
    lines += ["", f"{'class':<16}{'mask AP':>10}{'box AP':>10}{'mask AP50':>11}{'box AP50':>10}"]
    for name, row in report["per_class"].items():
        lines.append(f"{name:<16}{row.get('segm_ap', -1):>10.3f}{row.get('bbox_ap', -1):>10.3f}"
                     f"{row.get('segm_ap50', -1):>11.3f}{row.get('bbox_ap50', -1):>10.3f}")
    lines += ["", "COCO mAP over IoU 0.50:0.95 (torchmetrics, pycocotools backend); -1: no such objects."]
    return lines
