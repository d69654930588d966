"""The report's documents beside the measurements: the verdict, the model card, the
engines' provenance, the software components and the machine (see :mod:`.sections`)."""

from __future__ import annotations

import json

from . import figures as F
from .sections import Section, fmt


def verdict(results: dict) -> Section:
    v, meta = results["verdict"], results["nerveseg_validate"]
    s = Section("verdict", "Verdict: " + ("PASS" if v["passed"] else "FAIL"))
    s.p(f"Created {meta['created']} by: {meta['command']}")
    s.blocks.append(("checks", v["checks"]))
    inputs = [f"video: {meta['video']}" + (f" (ground truth: {meta['ground_truth']})" if meta["ground_truth"] else
                                            " (no ground truth beside it)")]
    inputs += [f"{t['kind']} test set: {t['root']} ({t['items']} items"
               + (f", restricted to {t['split']})" if t["split"] else ")") for t in meta["test_sets"]]
    s.blocks.append(("list", inputs))
    return s


def model_card(results: dict, examples: dict) -> Section:
    card = results["model_card"]
    s = Section("model-card", "5. Model card")
    s.h("Intended use").p(card["intended_use"])
    for engine in card["engines"]:
        s.h(f"{engine['role']}: {engine['model']}")
        s.table(["field", "value"], [
            ["task", engine["task"]], ["classes", ", ".join(engine["classes"])],
            ["input", f"{engine['input_size'][0]}x{engine['input_size'][1]} {engine['channel_order']}, "
                      f"mean {engine['normalisation']['mean']}, std {engine['normalisation']['std']}"],
            ["created", engine["created"] or "n/a"], ["training revision", engine["revision"] or "n/a"],
            ["recipe hash", engine["recipe_hash"] or "n/a"],
            *[[key, json.dumps(value, default=str) if isinstance(value, (dict, list)) else value]
              for key, value in engine["training"].items()]])
        if engine["recipe"]:
            s.p(f"Training data and recipe ({engine['recipe_file']}):")
            s.blocks.append(("pre", engine["recipe"]))
        else:
            s.p("Training data and recipe: no RECIPE.md beside the engine file.")
    s.h("Metrics measured by this run")
    s.table(["metric", "value"], [[k, v] for k, v in card["measured"].items()])
    s.h("Known limits")
    s.blocks.append(("list", card["known_limits"]))
    shown = examples.get("displayed")
    if shown is not None:
        s.figure(F.output_example("output-example", shown))
    return s


def engines(results: dict) -> Section:
    s = Section("engines", "6. Engine provenance")
    rows = []
    for role, p in results["provenance"].items():
        same = "unchanged" if p["sha256_now"] == p["sha256"] else "CHANGED since loading"
        rows.append([role, p["model"], p["path"], p["sha256"], same, p["backend"], p["device"], p["reason"],
                     p["recipe_hash"] or "n/a", p["revision"] or "n/a"])
    s.table(["role", "model", "file", "sha256", "file now", "backend", "device", "why this backend",
             "recipe hash", "revision"], rows)
    return s


def components(results: dict) -> Section:
    s = Section("components", "7. Software components")
    s.p("Exact versions in the environment that produced this report. Packages the runtime does not import "
        "(torch, TensorRT) are read from the installed distributions' metadata.")
    s.table(["component", "version", "role"], [[c["name"], c["version"], c["role"]] for c in results["components"]])
    return s


def machine(results: dict) -> Section:
    s = Section("machine", "8. Machine")
    s.table(["", "value"], [[k, fmt(v) if not isinstance(v, list) else ", ".join(map(str, v))]
                            for k, v in results["machine"].items()])
    return s
