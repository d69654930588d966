"""Draw docs/img/live_paths.png: the two display modes on one timeline, from a real run.

The shipped sample's first frames are offered at 60 fps to the shipped engines (ONNX
Runtime), once per display mode. For each frame the picture shows when it was captured
and when it reached the view (its video delay), and for each frame inference took, its
gate → segment → overlay span (where its mask came from). Passthrough: every frame
reaches the view at once and carries the newest overlay layer; per-frame: a frame
reaches the view only after its own inference, and frames inference skipped are never shown.

Run: ``.venv/bin/python scripts/live_paths_picture.py docs/img/live_paths.png [FRAMES]``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import av
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from nerveseg.commands.bench.memory_source import MemorySource  # noqa: E402
from nerveseg.realtime.config import PipelineConfig  # noqa: E402
from nerveseg.realtime.frames import now_ns  # noqa: E402
from nerveseg.realtime.layer import DisplayConfig  # noqa: E402
from nerveseg.realtime.pipeline import Engines, NervePipeline  # noqa: E402


def sample_frames(count: int) -> list:
    with av.open(str(Path(__file__).resolve().parents[1] / "samples" / "stereo_sample.mp4")) as container:
        out = []
        for frame in container.decode(video=0):
            out.append(frame.to_ndarray(format="rgb24"))
            if len(out) == count:
                return out
    return out


def run(frames: list, mode: str, engines: Engines) -> dict:
    config = PipelineConfig(display=DisplayConfig(mode=mode))
    pipeline = NervePipeline(config, source=MemorySource(frames, 60.0), engines=engines)
    shown, inferred = [], []
    pipeline.subscribe(lambda r: shown.append((r.index, r.frame.captured_ns, now_ns(),
                                               r.layer.index if r.layer is not None else None)))
    if pipeline.passthrough:
        pipeline.subscribe_layers(lambda layer: inferred.append((layer.index, layer.stamps)))
    else:
        pipeline.subscribe(lambda r: inferred.append((r.index, r.stamps)))
    pipeline.run()
    return {"shown": shown, "inferred": inferred}


def draw(runs: dict, path: Path) -> None:
    fig, axes = plt.subplots(len(runs), 1, figsize=(11, 2.8 * len(runs)))
    for ax, (mode, r) in zip(axes, runs.items()):
        t0 = min(c for _, c, _, _ in r["shown"])
        ms = lambda ns: (ns - t0) / 1e6  # noqa: E731
        for index, captured, painted, layer in r["shown"]:
            ax.plot([ms(captured), ms(painted)], [1, 0], color="#2a7", lw=1)
            ax.plot(ms(painted), 0, "o", color="#2a7", ms=3)
        for k, (index, stamps) in enumerate(r["inferred"]):
            spans = {name: (a, b) for name, a, b in stamps}
            start, end = spans.get("preprocess", spans.get("gate"))[0], spans["overlay"][1]
            y = 0.38 + 0.12 * (k % 3)  # staggered: one inference's span starts as the last ends
            ax.plot([ms(start), ms(end)], [y, y], color="#c52", lw=4, solid_capstyle="butt")
            ax.plot([ms(start), ms(end)], [y, y], "|", color="black", ms=8)  # where each one begins and ends
            ax.plot([ms(stamps[0][1]), ms(start)], [1, y], color="#c52", lw=0.6, ls=":")
        ax.set_yticks([0, 0.5, 1], ["on screen", "inference\n(gate→mask)", "captured"])
        ax.set_title(f"{mode}: {len(r['shown'])} frames shown, {len(r['inferred'])} inferred", fontsize=10)
        ax.set_ylim(-0.2, 1.2)
        ax.set_xlabel("ms since the run's first capture")
    fig.suptitle("green: capture → on screen (video delay); red: each inference, from its frame's capture",
                 fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv: list[str]) -> int:
    out = Path(argv[1]) if len(argv) > 1 else Path("docs/img/live_paths.png")
    frames = sample_frames(int(argv[2]) if len(argv) > 2 else 30)
    engines = Engines.load(PipelineConfig())
    runs = {mode: run(frames, mode, engines) for mode in ("passthrough", "per-frame")}
    draw(runs, out)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
