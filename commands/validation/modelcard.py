"""The model card and the engines' provenance, from what the engine files say about
themselves (ONNX metadata, its ``extra``) and the training recipe beside them
(``RECIPE.md``), plus this run's measured metrics."""

from __future__ import annotations

from pathlib import Path

from nerveseg.engines.base import Engine
from nerveseg.engines.metadata import file_sha256

INTENDED_USE = (
    "Decision support during surgery under a stereoscope: nerveseg marks tissue it takes for "
    "peripheral nerve on the live video so that the surgeon looks twice before cutting there. A "
    "classifier gate decides whether a frame shows nerve (or tendon, or an opening wound); only then "
    "does the segmenter outline the nerve. It does not diagnose, measure or decide; the surgeon stays "
    "responsible for every action, and the unmarked picture is always the one shown under the marks. "
    "Research use: not a cleared medical device.")

PUBLISHED = {"source": "the original study's published figures (reference only, other data)",
             "classification": {"accuracy": 0.863, "mcc": 0.778, "nerve_auc": 0.960},
             "segmentation": {"iou": 0.672, "dice": 0.786}}

GENERAL_LIMITS = (
    "Metrics hold for the labelled data named in this report only; they do not predict performance "
    "on other animals, tissues, stereoscopes, illumination or surgeons.",
    "Delays were measured on the machine named in this report with the backends named in the engine "
    "table; another machine, backend or load gives other delays.",
    "'On screen' ends at the view's paint (or the subscriber; see the method notes): the "
    "compositor, the display's refresh and the monitor's input lag come on top.",
    "A frame the gate does not call nerve carries no mask: gate misses are nerve left unmarked.",
)


def recipe_text(engine_path: str | Path) -> tuple[str | None, str | None]:
    """``(path, text)`` of the ``RECIPE.md`` beside the engine file, or ``(None, None)``."""
    path = Path(engine_path).parent / "RECIPE.md"
    if path.is_file():
        return str(path), path.read_text(errors="replace")
    return None, None


def _synthetic(recipe: str | None, extra: dict) -> bool:
    text = f"{recipe or ''} {extra}".lower()
    return "synthetic" in text or "nerveseg synth" in text


def engine_card(role: str, engine: Engine) -> dict:
    """What one engine says about itself, and its recipe."""
    meta, p = engine.meta, engine.provenance
    recipe_path, recipe = recipe_text(p.path)
    extra = dict(meta.extra)
    return {"role": role, "model": meta.model, "task": meta.task, "classes": list(meta.classes),
            "input_size": list(meta.input_size), "channel_order": meta.channel_order,
            "normalisation": {"mean": list(meta.mean), "std": list(meta.std)}, "created": meta.created,
            "revision": meta.revision, "recipe_hash": meta.recipe_hash,
            "training": {key: extra.get(key) for key in ("epoch", "val_metrics", "test_metrics", "checkpoint",
                                                         "checkpoint_sha256", "exporter", "opset", "parity",
                                                         "threshold", "arch_kwargs") if key in extra},
            "recipe_file": recipe_path, "recipe": recipe, "synthetic_training_data": _synthetic(recipe, extra)}


def model_card(engines: dict[str, Engine], measured: dict) -> dict:
    """``engines``: role → engine; ``measured``: this run's headline metrics."""
    cards = [engine_card(role, engine) for role, engine in engines.items()]
    limits = []
    if any(card["synthetic_training_data"] for card in cards):
        limits.append("Trained on synthetic data only (rendered by nerveseg synth, per the recipe/metadata): "
                      "not yet shown to work on real surgical video.")
    if not any(card["recipe"] for card in cards):
        limits.append("No training recipe (RECIPE.md) was found beside the engines: training data unknown.")
    return {"intended_use": INTENDED_USE, "engines": cards, "measured": measured,
            "published_reference": PUBLISHED, "known_limits": limits + list(GENERAL_LIMITS)}


def provenance(engines: dict[str, Engine]) -> dict:
    """Each engine's provenance, its file hash checked again now (a file swapped since
    loading would show here)."""
    out = {}
    for role, engine in engines.items():
        p = engine.provenance.to_dict()
        path = Path(p["path"])
        p["sha256_now"] = file_sha256(path) if path.is_file() else None
        p["size_bytes"] = path.stat().st_size if path.is_file() else None
        p["created"] = engine.meta.created
        out[role] = p
    return out
