"""The few-shot experiment of docs/SIM2REAL.md: how much do N labelled frames of a domain
the models never saw buy?

    .venv/bin/python scripts/sim2real.py GATE.pt SEG.pt --out runs/sim2real

The target domain is a generator setting held out of training (``nerveseg synth --domain
target``: another microscope, zoomed past the training range, tinted, darker at the edges).
One target set per task is drawn; a fixed test part (never trained on) scores every model;
for each N in ``--shots``, the base models are fine-tuned (``nerveseg train … --init``) on the
first N frames of the rest (gate: classes in turn) and scored on the test part. N = 0 is the
base model as it is. Writes ``OUT/results.json``, ``OUT/sim2real.png`` (the curves with their
95 % intervals: Wilson for gate accuracy, bootstrap for mean IoU) and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from nerveseg.commands.cli import main as nerveseg
from nerveseg.engines.errors import UserError

from nerveseg.training.intervals import wilson
from nerveseg.training.synth.scene import CLASSES

TEST_PER_CLASS, VAL_PER_CLASS, SEG_TEST, SEG_VAL = 20, 3, 60, 10


def cli(*argv) -> None:
    code = nerveseg([str(a) for a in argv])
    if code != 0:
        raise UserError(f"sim2real: `nerveseg {' '.join(map(str, argv))}` failed (exit {code})")


def write_lists(folder: Path, train: list[str], val: list[str], test: list[str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, items in (("train", train), ("val", val), ("test", test)):
        (folder / f"{name}.txt").write_text("".join(f"{i}\n" for i in items))
    return folder


def gate_lists(shots: int, pool: int) -> tuple[list[str], list[str], list[str]]:
    """Train: ``shots`` frames, the classes in turn; val and test: fixed, disjoint."""
    item = lambda cls, i: f"{cls}/{cls}_{i:05d}.png"  # noqa: E731
    train = [item(CLASSES[k % 3], k // 3) for k in range(shots)]
    val = [item(c, pool + i) for c in CLASSES for i in range(VAL_PER_CLASS)]
    test = [item(c, pool + VAL_PER_CLASS + i) for c in CLASSES for i in range(TEST_PER_CLASS)]
    # N = 0 trains nothing, but a split list is never empty: one pool frame stands in.
    return train or [item(CLASSES[0], 0)], val, test


def seg_lists(shots: int, pool: int) -> tuple[list[str], list[str], list[str]]:
    item = lambda i: f"synthetic/img/synth_{i:05d}.png"  # noqa: E731
    val = [item(pool + i) for i in range(SEG_VAL)]
    return [item(i) for i in range(max(shots, 1))], val, [item(pool + SEG_VAL + i) for i in range(SEG_TEST)]


def score(task: str, model: Path, data: Path, splits: Path, out: Path, threads: int) -> dict:
    cli("eval", task, model, "--data", data, "--splits", splits, "--out", out, "--threads", threads)
    s = json.loads((out / "metrics.json").read_text())["summary"]
    if task == "gate":
        low, high = wilson(s["accuracy"] * s["n"], s["n"])
        return {"n_test": s["n"], "value": s["accuracy"], "ci95": [low, high]}
    return {"n_test": s["n"], "value": s["iou_mean"], "ci95": s["iou_ci95"]}


def run(args) -> dict:
    out, pool = Path(args.out), max(args.shots)
    if args.replot:  # the figure again from OUT/results.json (with --baseline), nothing rerun
        results = json.loads((out / "results.json").read_text())
        baseline = json.loads(Path(args.baseline).read_text()) if args.baseline else None
        plot(results, out / "sim2real.png", baseline, tuple(args.names.split(",")))
        return results
    per_class = -(-pool // 3) + VAL_PER_CLASS + TEST_PER_CLASS
    data = {"gate": out / "data" / "classify", "seg": out / "data" / "segment"}
    cli("synth", "classify", data["gate"], "--domain", "target", "--per-class", per_class, "--size", args.size,
        "--seed", 71, "--no-progress")
    cli("synth", "segment", data["seg"], "--domain", "target", "--count", pool + SEG_VAL + SEG_TEST,
        "--size", args.size, "--negatives", 0.1, "--seed", 72, "--no-progress")
    base = {"gate": Path(args.gate), "seg": Path(args.seg)}
    results: dict = {"shots": args.shots, "epochs": args.epochs, "lr": args.lr, "gate": [], "seg": []}
    for task, lists, gap in (("gate", gate_lists, -(-pool // 3)), ("seg", seg_lists, pool)):
        for shots in args.shots:
            splits = write_lists(out / "splits" / f"{task}_{shots}", *lists(shots, gap))
            model = base[task]
            if shots:
                run_dir = out / "runs" / f"{task}_{shots}"
                cli("train", task, data[task], "--out", run_dir, "--init", base[task], "--splits", splits,
                    "--epochs", args.epochs, "--lr", args.lr, "--batch-size", 8, "--size", args.size,
                    "--threads", args.threads, "--seed", 0)
                model = run_dir / "best.pt"
            row = score(task, model, data[task], splits, out / "eval" / f"{task}_{shots}", args.threads)
            results[task].append({"shots": shots, **row})
    (out / "results.json").write_text(json.dumps(results, indent=1) + "\n")
    plot(results, out / "sim2real.png")
    return results


def plot(results: dict, path: Path, baseline: dict | None = None, names=("base", "baseline")) -> None:
    """The curves with their intervals; ``baseline``'s (another base model's results) dashed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.0, 3.6), dpi=110)
    for data, style, name in ((results, "-", names[0]), (baseline, "--", names[1])):
        if data is None:
            continue
        for (task, label), colour in zip((("gate", "gate accuracy"), ("seg", "mean IoU")), ("C0", "C1")):
            rows = data[task]
            x = [r["shots"] for r in rows]
            text = f"{label}, {name}" if baseline is not None else label
            ax.plot(x, [r["value"] for r in rows], style, color=colour, marker="o", label=text)
            ax.fill_between(x, [r["ci95"][0] for r in rows], [r["ci95"][1] for r in rows], color=colour,
                            alpha=0.15 if style == "-" else 0.07)
    ax.set_xlabel("labelled target frames")
    ax.set_ylim(0, 1)
    ax.set_xticks(results["shots"])
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=7)
    ax.set_title("held-out generator setting: fine-tuned from the synthetic engines", fontsize=9)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def table(results: dict) -> str:
    lines = ["| labelled target frames | gate accuracy (95 % CI) | mean IoU (95 % CI) |", "|---|---|---|"]
    for g, s in zip(results["gate"], results["seg"]):
        lines.append(f"| {g['shots']} | {g['value']:.3f} ({g['ci95'][0]:.3f}–{g['ci95'][1]:.3f}) | "
                     f"{s['value']:.3f} ({s['ci95'][0]:.3f}–{s['ci95'][1]:.3f}) |")
    return "\n".join(lines)


def parse(argv: list[str] | None = None):
    p = argparse.ArgumentParser(prog="scripts/sim2real.py", description=__doc__.splitlines()[0])
    p.add_argument("gate", help="base gate checkpoint (or engine with its .pt beside it)")
    p.add_argument("seg", help="base segmenter checkpoint (or engine with its .pt beside it)")
    p.add_argument("--out", required=True)
    p.add_argument("--shots", type=lambda t: sorted({int(v) for v in t.split(",")}), default=[0, 10, 30, 50])
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--lr", type=float, default=5e-4)
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--replot", action="store_true", help="only redraw OUT/sim2real.png from OUT/results.json")
    p.add_argument("--baseline", metavar="RESULTS_JSON", help="with --replot: another base model's results, dashed")
    p.add_argument("--names", default="base,baseline", help="with --baseline: the two curves' names")
    return p.parse_args(argv)


if __name__ == "__main__":
    try:
        print(table(run(parse())))
    except UserError as exc:
        print(exc, file=sys.stderr)
        sys.exit(2)
