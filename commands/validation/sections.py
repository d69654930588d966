"""The report's content, once, for both renderers: a list of :class:`Section`, each a
title and blocks (paragraphs, tables, figures, preformatted text, lists).

This module turns the measurement results into sections; :mod:`.documents` does the
same for the model card and the inventories; :mod:`.render` writes HTML and PDF.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from . import figures as F
from .delays import STATISTICS
from .modelcard import PUBLISHED


@dataclass
class Section:
    id: str
    title: str
    #: ("h", text) ("p", text) ("table", header, rows) ("figure", Figure) ("pre", text) ("list", items)
    #: ("checks", checks); text is plain (the renderers escape it)
    blocks: list[tuple] = field(default_factory=list)

    def h(self, text: str) -> "Section":
        self.blocks.append(("h", text))
        return self

    def p(self, text: str) -> "Section":
        self.blocks.append(("p", text))
        return self

    def table(self, header: list[str], rows: list[list]) -> "Section":
        self.blocks.append(("table", header, [[fmt(v) for v in row] for row in rows]))
        return self

    def figure(self, figure: F.Figure) -> "Section":
        self.blocks.append(("figure", figure))
        return self

    @property
    def figures(self) -> list[F.Figure]:
        return [b[1] for b in self.blocks if b[0] == "figure"]


def fmt(value, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


# -- 1. standalone performance ---------------------------------------------------------

def _pair(pair) -> str:
    """``[low, high]`` of an interval, ``n/a`` where there is none."""
    return "n/a" if not pair else f"[{fmt(pair[0])}, {fmt(pair[1])}]"


CLASS_KEYS = ("support", "sensitivity", "specificity", "ppv", "npv", "f1", "mcc", "auc")


def _nerve_auc(report: dict | None) -> float | None:
    return None if report is None else report["per_class"].get("nerve", {}).get("auc")


def comparison_rows(test_sets: dict, video: dict | None) -> list[tuple[str, float, dict]]:
    """``(metric, published, {series: ours})`` for the headline metrics."""
    video = video or {}
    cls = {"test set": test_sets.get("classification"), "video, in pipeline": video.get("classification")}
    seg = {"test set": test_sets.get("segmentation"), "video, in pipeline": video.get("segmentation")}
    pub_c, pub_s = PUBLISHED["classification"], PUBLISHED["segmentation"]
    return [("accuracy", pub_c["accuracy"], {k: r and r["accuracy"] for k, r in cls.items()}),
            ("MCC", pub_c["mcc"], {k: r and r["mcc"] for k, r in cls.items()}),
            ("nerve AUC", pub_c["nerve_auc"], {k: _nerve_auc(r) for k, r in cls.items()}),
            ("IoU", pub_s["iou"], {k: r and r["iou_nerve"]["mean"] for k, r in seg.items()}),
            ("Dice", pub_s["dice"], {k: r and r["dice_nerve"]["mean"] for k, r in seg.items()})]


def _classification(s: Section, key: str, report: dict, title: str) -> None:
    s.h(title)
    ci, methods = report.get("ci", {}), report.get("intervals", {})
    s.p(f"{report['n']} images; accuracy {fmt(report['accuracy'])} (95% CI {_pair(ci.get('accuracy'))}), "
        f"MCC (multiclass) {fmt(report['mcc'])} (95% CI {_pair(ci.get('mcc'))}), macro F1 "
        f"{fmt(report['macro']['f1'])}, macro AUC {fmt(report['macro']['auc'])}.")
    rows = [[name, *(stats[k] for k in CLASS_KEYS)] for name, stats in report["per_class"].items()]
    rows.append(["macro", "", *(report["macro"][k] for k in CLASS_KEYS[1:])])
    s.table(["class", *CLASS_KEYS], rows)
    keys = [k for k in CLASS_KEYS if k in next(iter(report["per_class"].values())).get("ci", {})]
    s.table(["class (95% CI)", *keys], [[name, *(_pair(stats["ci"][k]) for k in keys)]
                                        for name, stats in report["per_class"].items()])
    s.p(f"Intervals: proportions (sensitivity, specificity, PPV, NPV, accuracy): "
        f"{methods.get('proportions', 'n/a')}; F1 and MCC: {methods.get('f1_mcc', 'n/a')}.")
    s.figure(F.confusion(f"{key}-confusion", report, f"{title}: confusion matrix"))
    s.figure(F.roc(f"{key}-roc", report, f"{title}: ROC"))


def _segmentation(s: Section, key: str, report: dict, title: str, samples: list) -> None:
    rows = [[label, r["n"], r["mean"], r["sem"], r["ci_low"], r["ci_high"]]
            for label, r in (("IoU, all images", report["iou"]), ("Dice, all images", report["dice"]),
                             ("IoU, images with nerve", report["iou_nerve"]),
                             ("Dice, images with nerve", report["dice_nerve"]))]
    s.h(title)
    s.p(f"{report['n']} images, {report['n_with_nerve']} with nerve; pooled pixel IoU "
        f"{fmt(report['pixel_iou'])}. An image with no nerve in truth and prediction scores 1.")
    s.table(["measure", "n", "mean", "SEM", "95% CI low", "95% CI high"], rows)
    s.p(f"Intervals: {report.get('intervals', {}).get('means', 'n/a')} of the per-image mean; it stays "
        "inside [0, 1]. Fewer than 2 images: no interval.")
    s.figure(F.per_image(f"{key}-per-image", report, title))
    if samples:
        s.figure(F.examples(f"{key}-examples", samples, title))


def performance(results: dict, samples: dict) -> Section:
    perf = results["performance"]
    tests, video = perf["test_set"], perf.get("video") or {}
    s = Section("performance", "1. Standalone algorithm performance")
    s.p("The engines run through the pipeline's own operators (GateOp: its preprocessor, engine and softmax; "
        "SegmentOp: logits resized to view pixels and thresholded), on the labelled test set alone, and on the "
        "video's ground truth as the surgeon sees it (the segmenter runs only where the gate says nerve). "
        "IoU and Dice beside the published figures are per-image means over images that hold nerve.")
    if not tests and not video:
        return s.p("No labelled data was given (--test-set, or ground truth beside the video): not measured.")
    rows = comparison_rows(tests, video)
    series = list(rows[0][2])
    s.table(["metric", "published", *series], [[m, p, *(ours[k] for k in series)] for m, p, ours in rows])
    s.figure(F.versus_published("published", rows))
    for key, report, title in (("test-cls", tests.get("classification"), "Test set, gate"),
                               ("video-cls", video.get("classification"), "Video, gate in pipeline")):
        if report:
            _classification(s, key, report, title)
    for key, report, title in (("test-seg", tests.get("segmentation"), "Test set, segmenter alone"),
                               ("video-seg", video.get("segmentation"), "Video, gate + segmenter in pipeline")):
        if report:
            _segmentation(s, key, report, title, samples.get(key, []))
    shown = video.get("shown")
    if shown and shown["silent"]:
        s.p(f"What the surgeon was shown: on {shown['silent']} of {shown['frames']} labelled video frames the "
            f"gate found the view unfamiliar and showed no label and no mask (its label would have been wrong "
            f"on {shown['silent_where_the_label_would_be_wrong']} of them, right on "
            f"{shown['silent_where_the_label_would_be_right']}); of the {shown['labels_shown']} labels shown, "
            f"{shown['wrong_labels_shown']} were wrong. The scores above are the network's own, silence aside.")
    if video.get("problem_count"):
        s.blocks.append(("list", [f"{video['problem_count']} video frames not scored; first: "
                                  + "; ".join(video["problems"][:3])]))
    return s


# -- 2. degradation ----------------------------------------------------------------------

def degradation(results: dict, examples: dict) -> Section:
    d = results["degradation"]
    shown, rec = d["displayed"], d["recordings"]
    s = Section("degradation", "2. Pixel-level image degradation")
    s.p("Every frame of the video was replayed through the pipeline (no frame dropped). Outside the overlay's "
        "pixels (the mask and the text panel) the displayed frame, the array the view paints, must equal the "
        f"input; a pixel differs when any channel differs by more than {shown['tolerance']}. The recordings "
        "are decoded afterwards and compared with a fresh, independent decode of the input. The recording "
        f"codec ({rec['codec_loss']['codec']}) is lossy by design: its loss is measured against a lossless "
        "ffv1 recording of the same frames, written by the same recorder in the same run. Not covered: what the "
        "view draws on top of the scaled picture by itself (the frame counter at the bottom left, the REC mark, "
        "state banners).")
    lossless = rec["lossless"]
    coded = rec["recorded"]["outside_overlay_vs_input"]
    s.table(["frames", "compared", "frames changed", "pixels changed", "max |Δ|", "what"], [
        ["displayed", shown["frames"], shown["frames_changed"], shown["pixels_changed"], shown["max_difference"],
         "vs the frame's raw input view"],
        ["recorded, lossless (ffv1)", rec["frames_compared"], lossless["frames_changed"], lossless["pixels_changed"],
         lossless["max_difference"], f"vs fresh decode of the input; {lossless['identical_to_displayed']} "
                                     f"frames bit-identical to the displayed frame"],
        [f"recorded, {rec['recorded']['codec']}", rec["frames_compared"], coded["frames_changed"],
         coded["pixels_changed"], coded["max_difference"], "vs fresh decode of the input: codec loss included"]])
    loss = rec["codec_loss"]
    psnr = loss["psnr_db"] or {}
    s.table(["codec loss", "value"], [
        ["codec / against", f"{loss['codec']} / {loss['against']}"],
        ["frames identical", loss["identical_frames"]], ["PSNR median (dB)", psnr.get("p50")],
        ["PSNR worst frame (dB)", loss.get("psnr_min_db")],
        ["mean |Δ| per pixel (median frame)", (loss["mean_abs_difference"] or {}).get("p50")],
        ["max |Δ| (any pixel)", loss["max_difference"]],
        ["fraction of pixels changed (median frame)", (loss["fraction_changed"] or {}).get("p50")]])
    s.figure(F.pixels_per_frame("pixels-per-frame", shown, rec))
    if examples.get("displayed") is not None:
        s.figure(F.pixel_example("pixels-example", examples["displayed"], examples.get("recorded")))
    if rec.get("problems"):
        s.blocks.append(("list", rec["problems"]))
    return s


# -- 3./4. delays --------------------------------------------------------------------------

def delay(results: dict, key: str, number: int, title: str) -> Section:
    d = results["delays"]
    check = next(c for c in results["verdict"]["checks"] if c["name"] == title)
    s = Section(key, f"{number}. {title.capitalize()}")
    what = ("capture → that frame's mask on screen, over the frames shown with a mask" if key == "annotation"
            else "capture → the frame on screen, over every frame shown")
    recording = f"recording on ({d['recording']})" if d.get("recording") else "no recording"
    load = results["machine"].get("load_average_1_5_15_min")
    s.p(f"{what}. The video was played at its frame rate ({fmt(1000 / d['frame_period_ms'], 2)} fps, one frame "
        f"every {d['frame_period_ms']:.1f} ms) as a camera would deliver it: newest-frame policy, {recording}. "
        f"On screen means {d['display']['on_screen_means']}. {d['note'].capitalize()}. Machine load average "
        f"at the start (1/5/15 min): {', '.join(map(str, load)) if load else 'n/a'}.")
    if d["display"].get("fallback_reason"):
        s.p(f"Fallback: {d['display']['fallback_reason']}.")
    if key == "video" and d.get("display_mode") == "passthrough":
        s.p("Live passthrough (docs/LIVE.md): every frame goes to the screen without waiting for inference; the "
            "overlay is a layer of its own, drawn over whatever frame is shown. The annotation delay runs from "
            "the capture of a mask's frame to the first paint that showed that layer.")
    elif key == "video":
        s.p("Each mask is drawn on its own frame, so the raw picture waits for its frame's inference: on a "
            "segmented frame the video delay equals the annotation delay.")
    stats = d[key]["stats"] or {}
    s.blocks.append(("checks", [check]))
    s.table(["n", *STATISTICS, "mean", "threshold"], [[stats.get("n"), *(stats.get(k) for k in STATISTICS),
                                                      stats.get("mean"), f"{check['statistic']} ≤ "
                                                      f"{check['threshold_ms']:.1f} ms"]])
    frames = d["frames"]
    s.table(list(frames), [list(frames.values())])
    if stats:
        s.figure(F.delay_distribution(f"{key}-distribution", title, d[key], check))
        s.figure(F.delay_series(f"{key}-series", title, d[key], check))
    if key == "annotation":
        s.figure(F.delay_parts("delay-parts", {"annotation delay": d["annotation"]["parts_median_ms"],
                                               "video delay": d["video"]["parts_median_ms"]}))
    return s
