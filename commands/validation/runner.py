"""One validation, start to end: check every input, measure, judge, write the report.

Inputs are all checked before anything is measured (a typo in a split list must not
cost a ten-minute run). Measurements run in this order: the test sets, the every-frame
pass (pixels, video ground truth), the recordings, the real-time pass (delays).
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from nerveseg.realtime import config as cfg
from nerveseg.realtime.config import PipelineConfig
from nerveseg.engines.errors import UserError
from nerveseg.realtime.pipeline import Engines
from nerveseg.realtime.sinks import check_writable
from nerveseg.realtime.sources import open_source
from nerveseg.engines.interrupts import check_stop, deferred_signals, is_stop, temp_beside
from nerveseg.training import seen

from . import components, degradation as deg, delays, display, documents, incomplete, modelcard, passes, render
from . import sections
from .groundtruth import TruthScore, VideoTruth, find_video_truth
from .testsets import TestSet, evaluate_classification, evaluate_segmentation, find_test_sets

log = logging.getLogger(__name__)

TITLE = "nerveseg validation report"


#: ms a device of this kind may add to the video (GI Genius De Novo, 21 CFR 876.1520)
PASSTHROUGH_VIDEO_MS = 5.75

@dataclass(frozen=True)
class Options:
    """``video_ms`` None: 5.75 ms with live passthrough, else one frame period of the video. ``statistic``: the delay statistic
    held against the thresholds. ``tolerance``: |Δ| a pixel outside the overlay may differ by."""

    video: Path
    out: Path
    test_sets: tuple[Path, ...] = ()
    gate_split: Path | None = None
    seg_split: Path | None = None
    annotation_ms: float = 120.0
    video_ms: float | None = None
    statistic: str = "p95"
    tolerance: int = 0
    display: str = "qt"
    pdf: bool = True
    record_while_timing: bool = True
    keep_recordings: bool = False
    progress: bool = True
    command: str = "nerveseg validate"


@dataclass
class Inputs:
    fps: float
    truth: VideoTruth | None
    test_sets: dict[str, TestSet]
    outputs: dict[str, Path] = field(default_factory=dict)


def prepare(config: PipelineConfig, engines: Engines, o: Options) -> Inputs:
    """Every input and output checked; one-line :class:`UserError` naming the file otherwise."""
    if config.preprocess.layout == "side-by-side-half":
        # The degradation test compares shown pixels with the source frame's, one to one;
        # a stretched eye has no such pixels.
        raise UserError(f"{o.video}: validate compares the shown view with the frame pixel for pixel; "
                        f"a side-by-side-half frame's eye is stretched first, so validate a full-width recording")
    source = open_source(str(o.video))
    truth = find_video_truth(Path(o.video), engines.gate.classes) if Path(o.video).is_file() else None
    tests = find_test_sets(list(o.test_sets), engines.gate.classes, o.gate_split, o.seg_split)
    # A model scored on images it learned from would look better than it is (training/seen.py).
    for kind, engine in (("classify", engines.gate), ("segment", engines.segment)):
        if kind in tests and engine is not None:
            seen.check_unseen(engine.meta, engine.provenance.path, tests[kind].root, list(tests[kind].items), "test")
    outputs = {"html": o.out / "validation.html", "json": o.out / "validation.json",
               "config": o.out / "validation.config.yaml"}
    if o.pdf:
        outputs["pdf"] = o.out / "validation.pdf"
    for path in outputs.values():
        check_writable(path)
    return Inputs(source.fps, truth, tests, outputs)


def _test_sets(inputs: Inputs, engines: Engines, config: PipelineConfig, o: Options) -> tuple[dict, dict]:
    reports, samples = {}, {}
    if "classify" in inputs.test_sets:
        reports["classification"] = evaluate_classification(inputs.test_sets["classify"], engines.gate, o.progress)
    if "segment" in inputs.test_sets:
        reports["segmentation"], samples["test-seg"] = evaluate_segmentation(
            inputs.test_sets["segment"], engines.segment, config.segment.threshold, o.progress)
    return reports, samples


def _every_frame(inputs: Inputs, engines: Engines, config: PipelineConfig, o: Options, folder: Path) -> dict:
    shown = deg.DisplayedCheck(o.tolerance)
    truth = (TruthScore(inputs.truth, engines.gate.classes, config.preprocess.eye,
                        max_height=config.source.max_height) if inputs.truth else None)
    summary, recorded, lossless = passes.every_frame_pass(config, engines, str(o.video),
                                                          [shown] + ([truth] if truth else []), folder, o.progress)
    recordings, rec_example = deg.check_recordings(open_source(str(o.video)), shown.frames, lossless, recorded,
                                                   config.record.codec, o.tolerance, o.progress,
                                                   max_height=config.source.max_height)
    run = {k: summary[k] for k in ("frames", "recorded_frames", "tapped_frames", "stage_errors", "errors")}
    run.update(source_frames=summary["source"].get("frame_count"), source_skipped=summary["source"]["skipped"],
               source_ended_early=summary["source"].get("ended_early"))
    return {"degradation": {"displayed": shown.report(), "recordings": recordings, "run": run},
            "video_truth": truth.report() if truth else None,
            "examples": {"displayed": shown.example, "recorded": rec_example},
            "samples": {"video-seg": truth.examples} if truth else {}}


def _delays(inputs: Inputs, engines: Engines, config: PipelineConfig, o: Options, folder: Path) -> dict:
    probe = display.make_probe(o.display)
    try:
        summary = passes.real_time_pass(config, engines, str(o.video), probe, folder, o.progress,
                                        o.record_while_timing)
        passthrough = summary["display"]["mode"] == "passthrough"
        report = delays.delay_report(probe.shown(), inputs.fps, summary["counts"],
                                     probe.layers_shown() if passthrough else None)
        report["display"] = probe.describe()
        report["recording"] = config.record.codec if o.record_while_timing else None
        report["frames"]["not_shown_at_view"] = report["display"].pop("not_shown_at_view")
    finally:
        probe.close()
    return report


def _checks(results: dict, fps: float, o: Options) -> list[dict]:
    d, run = results["degradation"], results["degradation"]["run"]
    shown, rec = d["displayed"], d["recordings"]
    damaged = run["source_skipped"] or run["source_ended_early"]
    complete = (run["frames"] == run["recorded_frames"] == run["tapped_frames"] > 0 and not damaged
                and not run["stage_errors"] and not run["errors"])
    checks = [{"name": "every frame processed", "passed": complete,
               "line": f"{'PASS' if complete else 'FAIL'}  every frame processed: {run['frames']} rendered, "
                       f"{run['recorded_frames']} recorded, {run['tapped_frames']} checked; stage errors "
                       f"{run['stage_errors'] or run['errors'] or 'none'}"
                       + (f"; damaged input: {run['source_skipped']} undecodable, "
                          f"{run['source_ended_early'] or 'read to the end'}" if damaged else "")}]
    for name, changed, worst, frames in (
            ("displayed frames unchanged outside the overlay", shown["pixels_changed"], shown["max_difference"],
             shown["frames"]),
            ("lossless recording unchanged outside the overlay", rec["lossless"]["pixels_changed"],
             rec["lossless"]["max_difference"], rec["frames_compared"])):
        ok = changed == 0 and frames > 0
        checks.append({"name": name, "passed": ok, "pixels_changed": changed, "max_difference": worst,
                       "line": f"{'PASS' if ok else 'FAIL'}  {name}: {changed} pixels changed in {frames} "
                               f"frames (max |Δ| {worst}, tolerance {o.tolerance})"})
    same = rec["lossless"]["identical_to_displayed"] == rec["frames_compared"] == rec["frames_expected"] > 0
    checks.append({"name": "recording equals the displayed frames", "passed": same,
                   "line": f"{'PASS' if same else 'FAIL'}  recording equals the displayed frames: "
                           f"{rec['lossless']['identical_to_displayed']} of {rec['frames_expected']} bit-identical "
                           f"(lossless twin)"})
    delay = results["delays"]
    # Passthrough: the 5.75 ms a cleared device of this kind may add to the video (GI Genius,
    # 21 CFR 876.1520); per-frame display: one frame period (the picture waits for inference).
    default_video = PASSTHROUGH_VIDEO_MS if delay.get("display_mode") == "passthrough" else 1000.0 / fps
    video_ms = o.video_ms if o.video_ms is not None else default_video
    checks.append(delays.threshold_check("annotation delay", delay["annotation"]["stats"], o.statistic,
                                         o.annotation_ms))
    checks.append(delays.threshold_check("video delay", delay["video"]["stats"], o.statistic, video_ms))
    return checks


def _measured(results: dict) -> dict:
    """The model card's headline numbers from this run."""
    perf, out = results["performance"], {}
    for metric, _, ours in sections.comparison_rows(perf["test_set"], perf.get("video")):
        out.update({f"{metric} ({series})": value for series, value in ours.items() if value is not None})
    for c in results["verdict"]["checks"]:
        if "measured_ms" in c:
            out[f"{c['name']} {c['statistic']} (ms)"] = c["measured_ms"]
    return out


def validate(config: PipelineConfig, engines: Engines, o: Options) -> tuple[dict, dict[str, Path]]:
    """Measure, judge and write; returns the results and the files written.

    A run stopped part way (Ctrl-C, SIGTERM, a failure) writes an INCOMPLETE report
    (:mod:`.incomplete`: what was and was not measured, no verdict) and goes on stopping:
    ``KeyboardInterrupt`` as it came, any other failure as :class:`IncompleteRun`."""
    inputs = prepare(config, engines, o)
    meta = {"format": 1, "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "command": o.command, "video": str(o.video),
            "ground_truth": str(inputs.truth.folder) if inputs.truth else None,
            "test_sets": [{"kind": t.kind, "root": str(t.root), "items": len(t.items), "split": t.split}
                          for t in inputs.test_sets.values()], "config": cfg.to_dict(config)}
    partial: dict = {"nerveseg_validate": meta}
    results: dict = {}
    incomplete.write(inputs.outputs, partial, None)  # until the verdict replaces it
    log.info("measuring; %s says INCOMPLETE until the verdict replaces it", inputs.outputs["json"])
    try:
        return _measure_and_write(config, engines, o, inputs, partial, results)
    except BaseException as exc:
        if not isinstance(exc, Exception | KeyboardInterrupt):
            raise
        if results.get("report_written"):  # stopped after the whole report was in place: it stands
            results.pop("report_written")
            results["interrupted_after_report"] = True
            return results, inputs.outputs
        written = incomplete.write(inputs.outputs, partial, exc)
        if isinstance(exc, KeyboardInterrupt):
            raise
        if is_stop(exc):  # a library's own error for the signal that cut it short
            raise KeyboardInterrupt from exc
        raise IncompleteRun(f"stopped by {type(exc).__name__}: {exc}; INCOMPLETE report in "
                            f"{written['json']}") from exc


class IncompleteRun(Exception):
    """A validation that failed part way; its INCOMPLETE report is written."""


def _measure_and_write(config, engines, o: Options, inputs: Inputs, partial: dict, results: dict):
    """The measurements in order, each kept in ``partial`` (with its step in
    ``partial["measured"]``) as it completes, then the verdict and the report, built
    in ``results`` (``results["report_written"]`` once every file is in place)."""
    done = partial.setdefault("measured", [])
    partial["machine"] = components.machine()  # before the runs: the load they met, not the load they made
    tests, samples = _test_sets(inputs, engines, config, o)
    check_stop()  # the passes end early on a stop and return what they had: not a measurement
    partial["performance"] = {"test_set": tests, "video": None, "published": modelcard.PUBLISHED}
    done.append(incomplete.STEPS[0])
    folder = Path(tempfile.mkdtemp(prefix="recordings-", dir=o.out))
    try:
        every = _every_frame(inputs, engines, config, o, folder)
        check_stop()
        partial["performance"]["video"], partial["degradation"] = every["video_truth"], every["degradation"]
        done.append(incomplete.STEPS[1])
        partial["delays"] = _delays(inputs, engines, config, o, folder)
        check_stop()
        done.append(incomplete.STEPS[2])
    finally:
        if not o.keep_recordings:
            shutil.rmtree(folder, ignore_errors=True)
    role = {"gate": engines.gate, "segmenter": engines.segment}
    results.clear()
    results.update({k: v for k, v in partial.items() if k != "measured"})
    results["nerveseg_validate"]["recordings"] = str(folder) if o.keep_recordings else None
    results.update(provenance=modelcard.provenance(role), components=components.software())
    results["verdict"] = {"checks": _checks(results, inputs.fps, o)}
    results["verdict"]["passed"] = all(c["passed"] for c in results["verdict"]["checks"])
    results["verdict"]["status"] = "PASS" if results["verdict"]["passed"] else "FAIL"
    results["model_card"] = modelcard.model_card(role, _measured(results))
    written = _write(results, config, inputs, {**samples, **every["samples"]}, every["examples"], o)
    results.pop("report_written", None)
    return results, written


def _write(results: dict, config: PipelineConfig, inputs: Inputs, samples: dict, examples: dict,
           o: Options) -> dict[str, Path]:
    """Every file to a temporary name first, then all renamed at once (signals held), so
    no file says PASS unless the whole report was written."""
    log.info("drawing the figures and writing the report to %s", o.out)
    parts = [documents.verdict(results), sections.performance(results, samples),
             sections.degradation(results, examples),
             sections.delay(results, "annotation", 3, "annotation delay"),
             sections.delay(results, "video", 4, "video delay"), documents.model_card(results, examples),
             documents.engines(results), documents.components(results), documents.machine(results)]
    out = inputs.outputs
    temps = {key: temp_beside(path) for key, path in out.items()}
    try:
        render.write_html(temps["html"], TITLE, parts)
        render.write_json(temps["json"], results, parts)
        cfg.save(config, temps["config"], claim=False)  # the final name was claimed in prepare()
        if "pdf" in out:
            render.write_pdf(temps["pdf"], TITLE, parts)
        with deferred_signals():  # all renamed or none; a signal held here is raised after
            check_stop()  # a stop whose KeyboardInterrupt was swallowed on the way: no verdict
            for key, path in out.items():
                os.replace(temps[key], path)
            results["report_written"] = True
    finally:
        for temp in temps.values():
            temp.unlink(missing_ok=True)
    return out
