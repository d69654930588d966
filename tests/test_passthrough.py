"""Live passthrough (docs/LIVE.md): every frame straight to the display, the overlay a
layer of its own with an age that fades and hides it, and the "as shown" recording.

Real parts throughout: tiny real ONNX engines in ONNX Runtime (one made slow on purpose,
standing for a heavy network), real pipeline threads and channels, real PyAV encode and
decode of the recordings, a real Qt widget painting offscreen.
"""

from __future__ import annotations

import csv
import os
import dataclasses
import time
from pathlib import Path

import av
import numpy as np
import pytest

from engine_fixtures import make_gate, make_segmenter
from video_fixtures import stereo_frame

from nerveseg.commands.bench.memory_source import MemorySource
from nerveseg.engines.errors import UserError
from nerveseg.engines.loader import load_engine
from nerveseg.engines.preprocess import Box
from nerveseg.realtime import config as config_mod, priority
from nerveseg.realtime.graph import Operator
from nerveseg.realtime.config import PipelineConfig, RecordConfig
from nerveseg.realtime.frames import Frame, GateResult, Segmentation, now_ns
from nerveseg.realtime.layer import DisplayConfig, LayerBoard, composite
from nerveseg.realtime.overlay import OverlayConfig
from nerveseg.realtime.pipeline import Engines, NervePipeline
from nerveseg.realtime.roi import Polygon
from nerveseg.realtime.overlay_op import OverlayOp


class Slow:
    """A real engine that takes ``seconds`` longer per run: a heavy network's inference time."""

    def __init__(self, engine, seconds: float):
        self._engine, self._seconds = engine, seconds

    def __getattr__(self, name):
        return getattr(self._engine, name)

    def run(self, batch, *, region=None):
        time.sleep(self._seconds)
        return self._engine.run(batch, region=region)


@pytest.fixture
def engines(tmp_path):
    gate = load_engine(make_gate(tmp_path / "gate.onnx"), "onnxruntime")
    seg = load_engine(make_segmenter(tmp_path / "seg.onnx"), "onnxruntime")
    return gate, seg


FRAMES = [stereo_frame(i) for i in range(40)]


def run_live(engines, slow_s: float, mode: str = "auto", record: Path | None = None, fps: float = 30.0,
             display: DisplayConfig | None = None):
    gate, seg = engines
    config = PipelineConfig(display=display or DisplayConfig(mode=mode),
                            record=RecordConfig(path=str(record) if record else None, content="as-shown",
                                                codec="ffv1"))
    source = MemorySource(FRAMES, fps, 1)
    pipeline = NervePipeline(config, source=source, engines=Engines(Slow(gate, slow_s), seg))
    shown, layers = [], []
    pipeline.subscribe(lambda r: shown.append((r, (now_ns() - r.frame.captured_ns) / 1e6)))
    pipeline.subscribe_layers(layers.append)
    summary = pipeline.run()
    return summary, shown, layers


def test_a_layer_on_its_own_frame_is_the_per_frame_drawing():
    """The layer is made by the per-frame overlay's own drawing (tint, outline, region,
    panel): composited on the frame it was made from it gives that drawing back, to
    rounding, and leaves every other pixel as it was."""
    image = stereo_frame(3, 360, 960)
    view = image[:, :480]
    mask = np.zeros(view.shape[:2], bool)
    mask[150:230, 40:400] = True
    frame = Frame(3, now_ns(), image)
    g = GateResult(frame, view, Box(0, 0, 480, 360), np.zeros((1, 32, 32, 3), np.uint8), "nerve", 0.93,
                   np.zeros(3, np.float32), True, ())
    roi = Polygon(((30, 120), (420, 110), (440, 300), (20, 320)))
    board = LayerBoard()
    rendered = OverlayOp(OverlayConfig(), board=board).process(Segmentation(g, mask, (), roi=roi))
    layer = board.latest
    assert layer is not None and layer.index == 3 and layer.segmented and layer.fits(Box(0, 0, 480, 360))
    shown = composite(view, layer)
    # to rounding: the panel darkens by integer division, the layer blends with rounding
    assert np.abs(shown.astype(int) - rendered.image.astype(int)).max() <= 2
    outside = np.ones(view.shape[:2], bool)
    for patch in layer.patches:
        outside[patch.box.y0:patch.box.y1, patch.box.x0:patch.box.x1] = False
    assert outside.any() and np.array_equal(shown[outside], view[outside])
    # Patches never overlap: no pixel is blended twice.
    covered = np.zeros(view.shape[:2], int)
    for patch in layer.patches:
        covered[patch.box.y0:patch.box.y1, patch.box.x0:patch.box.x1] += 1
    assert covered.max() == 1
    # Half faded: half way between the picture and the full overlay.
    half = composite(view, layer, 0.5).astype(int)
    expected = (view.astype(int) + rendered.image.astype(int)) / 2
    assert np.abs(half - expected).max() <= 2


def test_the_overlay_fades_with_its_age_then_hides():
    d = DisplayConfig(fade_after_ms=100, hide_after_ms=200)
    assert d.alpha(0) == d.alpha(100) == 1.0
    assert d.alpha(150) == pytest.approx(0.5)
    assert d.alpha(200) == d.alpha(5000) == 0.0
    assert d.passthrough(live=True) and not d.passthrough(live=False)
    assert DisplayConfig(mode="per-frame").passthrough(live=True) is False


@pytest.mark.parametrize("raw, words", [
    ({"display": {"fade_after_ms": 300, "hide_after_ms": 200}}, ["hide_after_ms (200) must be above", "300"]),
    ({"display": {"mode": "fast"}}, ["display.mode", "'fast'", "passthrough"]),
    ({"display": {"hide_after_ms": -5}}, ["display.hide_after_ms", "-5"]),
    ({"record": {"content": "raw"}}, ["record.content", "as-shown"]),
])
def test_display_settings_are_checked_at_start_up(raw, words):
    with pytest.raises(UserError) as err:
        config_mod.from_dict(raw, "run.yaml")
    text = str(err.value)
    assert "\n" not in text and text.startswith("run.yaml")
    assert all(w in text for w in words), text


def test_live_passthrough_shows_every_frame_while_inference_lags(engines):
    """Inference at ~80 ms a frame on a 30 fps source: per-frame display shows only the
    frames inference took, each after its inference; passthrough shows every frame at
    once and the overlay follows, with its age carried on every frame."""
    summary, shown, layers = run_live(engines, 0.08, mode="passthrough")
    assert summary["display"]["mode"] == "passthrough"
    assert summary["frames"] < len(FRAMES) * 0.6  # inference could not keep up: it took the newest
    assert len(shown) >= len(FRAMES) - 1  # the picture did not wait for it
    video = sorted(ms for _, ms in shown)
    assert video[len(video) // 2] < 40.0  # median capture → display, far below one inference
    assert len(layers) == summary["frames"]
    ages = [r.extra["overlay_age_ms"] for r, _ in shown if r.extra["overlay_frame"] is not None]
    assert ages and min(ages) >= 80.0  # a layer is at least one inference old
    assert all(r.layer is None or r.layer.index == r.extra["overlay_frame"] for r, _ in shown)
    # The frames shown are raw: the overlay is not drawn into them.
    assert all(np.array_equal(r.image, r.seg.gate.view) for r, _ in shown)

    per_frame, shown_pf, layers_pf = run_live(engines, 0.08, mode="per-frame")
    assert per_frame["display"]["mode"] == "per-frame" and not layers_pf
    assert len(shown_pf) == per_frame["frames"] < len(FRAMES) * 0.6
    assert min(ms for _, ms in shown_pf) >= 80.0  # each frame waited for its own inference


@pytest.mark.parametrize("mode", ["passthrough", "per-frame"])
def test_live_inference_takes_one_frame_at_a_time_and_replay_overlaps_its_stages(engines, mode):
    """Live, the segmenter and the overlay run in the gate's thread: each frame is gated,
    segmented and drawn before the gate takes the newest one, so no frame waits between
    stages (a mask's age is its inference, not queues). Here the segmenter takes 40 ms on a
    30 fps source, so a pipelined chain would have gated the next frame meanwhile. Replay
    keeps a channel between the stages, which overlap: every frame is wanted there."""
    gate, seg = engines
    config = PipelineConfig(display=DisplayConfig(mode=mode))
    pipeline = NervePipeline(config, source=MemorySource(FRAMES, 30.0, 1),
                             engines=Engines(gate, Slow(seg, 0.04)))
    stamps = []
    if mode == "passthrough":
        pipeline.subscribe_layers(lambda layer: stamps.append(layer.stamps))
    else:
        pipeline.subscribe(lambda r: stamps.append(r.stamps))
    summary = pipeline.run()
    names = {ch.name for ch in pipeline.graph.channels}
    assert "source->gate" in names and not names & {"gate->segment", "segment->overlay"}
    spans = [{name: (a, b) for name, a, b in s} for s in stamps]
    assert len(spans) >= 10 and all("segment" in s for s in spans)  # every frame segmented, 40 ms each
    assert summary["frames"] < len(FRAMES)  # inference at ~50 ms a frame took the newest of 30 fps
    for before, after in zip(spans, spans[1:]):
        assert after["preprocess"][0] >= before["overlay"][1]  # the next frame began after this one ended

    replay = NervePipeline(dataclasses.replace(config, source=dataclasses.replace(config.source, live=False)),
                           source=MemorySource(FRAMES, 30.0, 1, live=False), engines=Engines(gate, seg))
    assert {"gate->segment", "segment->overlay"} <= {ch.name for ch in replay.graph.channels}
    replay.close()


def test_an_old_overlay_is_hidden_and_the_as_shown_recording_keeps_what_was_seen(engines, tmp_path):
    """Inference about as slow as ``hide_after_ms``: the overlay fades, and is hidden
    when it gets too old. The "as shown" AVI (lossless here) holds every frame shown, each with the layer
    at the opacity it had then; its CSV says which result and how old, per frame."""
    avi = tmp_path / "case.avi"
    # Each layer is one inference (≥ 100 ms) old when it arrives and ages a further
    # inference before the next: it is seen fading, then hidden.
    display = DisplayConfig(fade_after_ms=80, hide_after_ms=160)
    summary, shown, _ = run_live(engines, 0.1, record=avi, display=display)
    assert summary["display"]["recording"] == "as-shown"
    rows = list(csv.DictReader((tmp_path / "case.shown.csv").open()))
    with av.open(str(avi)) as container:
        recorded = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    assert len(recorded) == len(rows) == summary["recorded_frames"] >= len(FRAMES) - 1
    hidden = faded = whole = 0
    by_index = {r.index: r for r, _ in shown}
    for row, image in zip(rows, recorded):
        r = by_index[int(row["frame"])]
        if not row["overlay_frame"]:
            assert float(row["overlay_alpha"]) == 0.0 and np.array_equal(image, r.image)
            continue
        age, alpha = float(row["overlay_age_ms"]), float(row["overlay_alpha"])
        assert alpha == pytest.approx(display.alpha(age), abs=1e-3)
        if alpha == 0.0:
            hidden += 1
            assert np.array_equal(image, r.image)  # hidden: the raw picture, untouched
        else:
            faded += alpha < 1.0
            whole += alpha == 1.0
            assert np.array_equal(image, composite(r.image, r.layer, alpha))
    assert hidden > 0 and faded + whole > 0
    assert summary["display"]["shown_without_overlay_too_old"] >= hidden
    # The inference log beside it stays one row per frame inference took.
    log_rows = list(csv.DictReader((tmp_path / "case.csv").open()))
    assert len(log_rows) == summary["frames"] and "overlay_age_ms" not in log_rows[0]


def test_replay_keeps_its_per_frame_drawing(engines, tmp_path):
    """A file replayed to AVI: every frame drawn with its own mask, as before."""
    gate, seg = engines
    config = PipelineConfig(record=RecordConfig(path=str(tmp_path / "out.avi"), content="as-shown"))
    pipeline = NervePipeline(config, source=MemorySource(FRAMES[:8], 30.0, 1, live=False),
                             engines=Engines(gate, seg))
    summary = pipeline.run()
    assert summary["display"] == {"mode": "per-frame", "recording": "annotated"}
    assert summary["recorded_frames"] == 8 and pipeline.ops.show is None


def test_the_view_paints_the_layer_over_the_newest_frame_and_hides_an_old_one(qtbot, engines):
    """The Qt view: a passthrough frame arrives raw; the layer is painted over it (green
    where the nerve band is); once the layer is older than ``hide_after_ms`` the same
    frame is painted raw and the corner says so."""
    from PyQt6.QtCore import QPoint

    from nerveseg.ui.frame_view import FrameView

    summary, shown, layers = run_live(engines, 0.0, mode="passthrough")
    r = next(r for r, _ in reversed(shown) if r.layer is not None and r.layer.segmented)
    view = FrameView()
    qtbot.addWidget(view)
    view.resize(r.image.shape[1], r.image.shape[0])
    view.display = DisplayConfig(fade_after_ms=5000, hide_after_ms=9000)
    view.show()
    view.set_frame(dataclasses.replace(r, layer=None))
    view.set_layer(r.layer)
    qtbot.waitExposed(view)
    view.repaint()
    # a pixel of the tint (green, premultiplied), not of the panel (dark) or the outline
    patch = max(r.layer.patches, key=lambda p: int((p.rgb[..., 1].astype(int) > p.rgb[..., 0] + 50).sum()))
    ys, xs = np.nonzero((patch.rgb[..., 1].astype(int) > patch.rgb[..., 0] + 50) & (patch.alpha3.max(axis=2) < 200))
    y, x = patch.box.y0 + int(ys[len(ys) // 2]), patch.box.x0 + int(xs[len(xs) // 2])
    target = view.image_rect()
    point = QPoint(int(target.x() + (x + 0.5) * target.width() / r.image.shape[1]),
                   int(target.y() + (y + 0.5) * target.height() / r.image.shape[0]))
    painted = view.grab().toImage().pixelColor(point)
    raw = r.image[y, x]
    assert view.layer_alpha == 1.0
    assert painted.green() > painted.red() + 40 and abs(painted.red() - int(raw[0])) > 30
    shot = view.shown_image()
    assert np.array_equal(shot, composite(r.image, r.layer, 1.0))

    view.display = DisplayConfig(fade_after_ms=1, hide_after_ms=2)
    time.sleep(0.01)
    view.repaint()
    painted = view.grab().toImage().pixelColor(point)
    assert view.layer_alpha == 0.0 and view.layer_age_ms > 2
    assert abs(painted.red() - int(raw[0])) <= 3 and abs(painted.green() - int(raw[1])) <= 3
    assert np.array_equal(view.shown_image(), r.image)


def test_the_picture_of_the_two_paths_is_drawn_from_a_real_run(tmp_path):
    """docs/LIVE.md's timeline: scripts/live_paths_picture.py on the shipped sample and engines."""
    import subprocess
    import sys

    out = tmp_path / "live_paths.png"
    script = Path(__file__).resolve().parents[1] / "scripts" / "live_paths_picture.py"
    done = subprocess.run([sys.executable, str(script), str(out), "12"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    image = av.open(str(out))  # a real PNG: PyAV reads it as a one-frame image
    frame = next(image.decode(video=0)).to_ndarray(format="rgb24")
    image.close()
    assert frame.shape[0] > 400 and frame.shape[1] > 800
    assert (frame[..., 0].astype(int) - frame[..., 2] > 80).any(), "the red inference spans are drawn"


def test_a_layer_is_never_drawn_on_another_eye_and_its_age_is_summarised(engines):
    """Switching eye mid-run: frames of the right eye never carry a layer made on the left
    one (it would sit on other tissue); the summary gives the overlay's age per frame shown."""
    gate, seg = engines
    config = PipelineConfig(display=DisplayConfig(mode="passthrough"))
    frames = [stereo_frame(i) for i in range(60)]
    pipeline = NervePipeline(config, source=MemorySource(frames, 30.0, 1), engines=Engines(Slow(gate, 0.02), seg))
    shown = []

    def on_frame(r) -> None:
        shown.append(r)
        if len(shown) == 25:
            pipeline.set_eye("right")

    pipeline.subscribe(on_frame)
    summary = pipeline.run()
    boxes = {r.seg.gate.box for r in shown}
    assert len(boxes) == 2, "both eyes were shown"
    assert all(r.layer is None or r.layer.box == r.seg.gate.box for r in shown)
    right = [r for r in shown[30:] if r.seg.gate.box.x0 > 0]
    assert right and any(r.layer is not None for r in right), "the right eye got its own layers"
    ages = summary["display"]["overlay_age_ms"]
    assert ages["n"] > 0 and 20.0 <= ages["p50"] <= ages["max"]


def test_the_view_hides_an_old_overlay_even_when_no_frame_comes(qtbot, engines):
    """A source that stalls sends no frame: the view still repaints while a layer is on
    screen, so the layer fades and hides by its age instead of staying painted."""
    from nerveseg.ui.frame_view import FrameView

    summary, shown, layers = run_live(engines, 0.0, mode="passthrough")
    r = next(r for r, _ in reversed(shown) if r.layer is not None)
    view = FrameView()
    qtbot.addWidget(view)
    view.resize(320, 240)
    view.show()
    qtbot.waitExposed(view)
    age = r.layer.age_ms()
    view.display = DisplayConfig(fade_after_ms=age + 50, hide_after_ms=age + 300)
    view.set_frame(r)
    qtbot.waitUntil(lambda: view.layer_age_ms is not None)
    assert view.layer_alpha == 1.0 and view.layer_age_ms < age + 50
    qtbot.waitUntil(lambda: 0.0 < view.layer_alpha < 1.0, timeout=3000)  # fading, no new frame
    qtbot.waitUntil(lambda: view.layer_alpha == 0.0, timeout=3000)
    assert np.array_equal(view.shown_image(), r.image)


def test_nerveseg_run_records_what_was_shown(tmp_path, tiny_engines, capsys):
    """The command line: a video played live (passthrough by default) recorded "as shown":
    the AVI holds every frame shown, NAME.shown.csv one row each, NAME.csv the inference
    log, the JSON the display's summary; the printed table says what was shown."""
    import json

    from video_fixtures import count_frames, write_video

    from nerveseg.commands.cli import main

    video = write_video(tmp_path / "in.mp4", frames=24, fps=24)
    avi = tmp_path / "case.avi"
    code = main(["run", "--source", str(video), "--gate", str(tiny_engines[0]), "--seg", str(tiny_engines[1]),
                 "--record", str(avi), "--record-content", "as-shown", "--hide-after-ms", "400"])
    assert code == 0
    summary = json.loads(avi.with_suffix(".json").read_text())
    display = summary["display"]
    assert display["mode"] == "passthrough" and display["recording"] == "as-shown" and display["hide_after_ms"] == 400
    shown_rows = list(csv.DictReader((tmp_path / "case.shown.csv").open()))
    assert count_frames(avi) == len(shown_rows) == display["frames_shown"] == summary["recorded_frames"]
    assert len(shown_rows) >= 22 and {"overlay_frame", "overlay_age_ms", "overlay_alpha"} <= shown_rows[0].keys()
    assert len(list(csv.DictReader(avi.with_suffix(".csv").open()))) == summary["frames"]
    assert "passthrough: " in capsys.readouterr().out
    assert config_mod.load(avi.with_suffix(".config.yaml")).record.content == "as-shown"


def test_each_layer_is_its_own_drawing_however_the_last_one_looked():
    """The canvases are cleared only where the last drawing touched them: a small mask
    after a large one (and its region gone) is still exactly its own drawing."""
    image = stereo_frame(5, 360, 960)
    view = image[:, :480]
    frame = Frame(5, now_ns(), image)
    g = GateResult(frame, view, Box(0, 0, 480, 360), np.zeros((1, 32, 32, 3), np.uint8), "nerve", 0.9,
                   np.zeros(3, np.float32), True, ())
    big = np.zeros(view.shape[:2], bool)
    big[40:330, 20:460] = True
    small = np.zeros(view.shape[:2], bool)
    small[200:240, 300:360] = True
    board = LayerBoard()
    op = OverlayOp(OverlayConfig(), board=board)
    op.process(Segmentation(g, big, (), roi=Polygon(((10, 10), (470, 20), (400, 350)))))
    drawn = op.process(Segmentation(g, small, ())).image  # drawn on the frame too (by default)
    shown = composite(view, board.latest)
    assert np.abs(shown.astype(int) - drawn.astype(int)).max() <= 2
    assert np.array_equal(shown[100:180, 40:200], view[100:180, 40:200]), "nothing of the big mask is left"


def test_passthrough_draws_frames_only_while_something_records_them(engines, tmp_path):
    """Live passthrough: the layer is the drawing; a frame is drawn with its own mask only
    while an annotated recording runs (started mid-run here), never before."""
    gate, seg = engines
    config = PipelineConfig(display=DisplayConfig(mode="passthrough"))
    frames = [stereo_frame(i) for i in range(60)]
    pipeline = NervePipeline(config, source=MemorySource(frames, 30.0, 1), engines=Engines(gate, seg))
    results = []

    def on_frame(r) -> None:
        if r.index == 20:
            pipeline.start_recording(tmp_path / "mid.avi")

    pipeline.subscribe(on_frame)
    original = pipeline.ops.record.process  # the recorder sees every inference result

    def watch(r):
        results.append((r.index, r.image is r.seg.gate.view, pipeline.ops.record.recording is not None))
        return original(r)

    pipeline.ops.record.process = watch
    pipeline.run()
    before = [raw for index, raw, recording in results if not recording and index < 15]
    during = [raw for index, raw, recording in results if recording]
    assert before and all(before), "nothing recorded annotated frames: none was drawn"
    assert during and not any(during), "an annotated recording gets frames drawn with their masks"
    assert (tmp_path / "mid.avi").is_file()


def test_native_scale_shows_one_frame_pixel_per_screen_pixel(qtbot):
    """``display.scale: native``: a frame that fits is painted 1:1, centred (no resize in the
    paint); one that does not fit is scaled to fit as by default."""
    from nerveseg.ui.frame_view import FrameView

    frame = np.zeros((120, 160, 3), np.uint8)
    frame[::2, ::2] = (255, 255, 255)  # a pixel grid: any resize would smear it
    view = FrameView()
    qtbot.addWidget(view)
    view.resize(400, 300)
    view.show()
    qtbot.waitExposed(view)
    view.display = DisplayConfig(scale="native")
    from types import SimpleNamespace

    view.set_frame(SimpleNamespace(image=frame, index=1, frame=SimpleNamespace(captured_ns=now_ns())))
    rect = view.image_rect()
    assert (rect.width(), rect.height(), rect.x(), rect.y()) == (160, 120, 120, 90)
    view.repaint()
    shot = view.grab().toImage()
    assert shot.pixelColor(120, 90).red() == 255 and shot.pixelColor(121, 90).red() == 0  # 1:1, unsmeared
    view.resize(320, 240)
    view.display = DisplayConfig(scale="native")
    view.set_frame(SimpleNamespace(image=np.zeros((480, 640, 3), np.uint8), index=2,
                                   frame=SimpleNamespace(captured_ns=now_ns())))
    assert view.image_rect().width() == 320, "too large for the window: scaled to fit"
    with pytest.raises(UserError, match="display.scale"):
        config_mod.from_dict({"display": {"scale": "zoom"}}, "run.yaml")


@pytest.mark.parametrize("picture, window, scale, native", [
    ((944, 944), (1920, 1080), "auto", True),     # the sample's eye in a 1080p window: fitting enlarges 1.14x
    ((640, 480), (1920, 1080), "auto", False),    # a small camera picture: fitting enlarges 2.25x, so fit
    ((1888, 1888), (1920, 1080), "auto", False),  # larger than the window: scaled down to fit
    ((864, 864), (1080, 1080), "auto", True),     # exactly 1.25x: native
    ((863, 863), (1080, 1080), "auto", False),    # just over: fit
    ((944, 944), (1920, 1080), "fit", False),
    ((640, 480), (1920, 1080), "native", True),
])
def test_auto_scale_shows_a_nearly_fitting_picture_one_to_one(picture, window, scale, native):
    """``display.scale: auto`` (the default): a picture that fitting would enlarge by at most
    1.25x is shown one frame pixel per screen pixel (the sharpest picture, no resize in the
    paint: docs/LIVE.md); a smaller one still fills the window, a larger one is fitted."""
    assert DisplayConfig().scale == "auto"
    assert DisplayConfig(scale=scale).native(picture, window) is native


def test_the_view_shows_the_sample_eye_one_to_one_by_default(qtbot):
    from types import SimpleNamespace

    from nerveseg.ui.frame_view import FrameView

    view = FrameView()
    qtbot.addWidget(view)
    view.resize(400, 300)
    view.show()
    qtbot.waitExposed(view)
    frame = np.zeros((250, 250, 3), np.uint8)
    frame[::2, ::2] = (255, 255, 255)
    view.set_frame(SimpleNamespace(image=frame, index=1, frame=SimpleNamespace(captured_ns=now_ns())))
    rect = view.image_rect()
    assert (rect.width(), rect.height(), rect.x(), rect.y()) == (250, 250, 75, 25)  # 1.2x to fit: shown 1:1
    view.repaint()
    shot = view.grab().toImage()
    assert shot.pixelColor(75, 25).red() == 255 and shot.pixelColor(76, 25).red() == 0


class NiceTap(Operator):
    """A tap (an inference-side consumer of the overlay's output) noting its thread's priority."""

    name = "nice-tap"

    def __init__(self):
        self.seen: set = set()

    def process(self, item):
        self.seen.add(priority.thread_nice())


@pytest.mark.skipif(not priority.SUPPORTED, reason="per-thread priorities are Linux's")
@pytest.mark.parametrize("mode", ["passthrough", "per-frame"])
def test_live_passthrough_runs_inference_below_the_display_path(tmp_path, mode):
    """Passthrough: the inference operators' threads and the engines' own worker threads
    (ONNX Runtime's pool, started when the engines loaded) run at a lower OS priority than
    the display path's, which keeps the process's; per-frame display lowers nothing."""
    base = os.getpriority(os.PRIO_PROCESS, 0)
    config = PipelineConfig(display=DisplayConfig(mode=mode, inference_nice=7))
    config = dataclasses.replace(
        config, gate=dataclasses.replace(config.gate, engine=str(make_gate(tmp_path / "gate.onnx")), threads=2),
        segment=dataclasses.replace(config.segment, engine=str(make_segmenter(tmp_path / "seg.onnx")), threads=2))
    engines = Engines.load(config)
    assert engines.workers, "ONNX Runtime with two threads starts a worker thread per session"
    tap = NiceTap()
    pipeline = NervePipeline(config, source=MemorySource(FRAMES[:12], 30.0, 1), engines=engines, taps=[tap])
    shown_at, layer_at = set(), set()
    pipeline.subscribe(lambda r: shown_at.add(priority.thread_nice()))
    pipeline.subscribe_layers(lambda layer: layer_at.add(priority.thread_nice()))
    summary = pipeline.run()
    lowered = min(19, base + 7)
    assert shown_at == {base}  # the display path keeps the process's priority
    workers = [os.getpriority(os.PRIO_PROCESS, t) for t in engines.workers if (Path("/proc/self/task") / str(t)).exists()]
    assert workers
    if mode == "passthrough":
        assert layer_at == {lowered} and tap.seen == {lowered}  # the overlay's thread, a tap's thread
        assert set(workers) == {lowered}
        p = summary["display"]["inference_priority"]
        assert p["nice"] == 7 and p["engine_workers_lowered"] == len(engines.workers) and "nice +7" in p["note"]
    else:
        assert tap.seen == {base} and set(workers) == {base} and not layer_at
        assert "inference_priority" not in summary["display"]


def test_inference_nice_is_checked_at_start_up(tmp_path, tiny_engines, capsys):
    """A priority outside what Linux allows is refused at start-up, in the YAML and on the
    command line, with the key, the value and the range."""
    from nerveseg.commands.cli import main

    with pytest.raises(UserError, match=r"display.inference_nice = 25: must be a whole number within \[0, 19\]"):
        config_mod.from_dict({"display": {"inference_nice": 25}})
    code = main(["run", "--source", str(tmp_path / "none.mp4"), "--gate", str(tiny_engines[0]),
                 "--seg", str(tiny_engines[1]), "--inference-nice", "-3"])
    err = capsys.readouterr().err
    assert code == 2 and "inference" in err and "-3" in err and "[0, 19]" in err and "Traceback" not in err


def test_a_layer_waits_for_the_next_frames_paint_and_a_newer_one_gets_its_own_wait(qtbot, engines):
    """Layers come about as often as frames: each waits up to one and a half frame periods
    for the next frame's paint, and only then gets a paint of its own. A newer layer that
    arrives during an older one's wait gets its own full wait, rather than a paint at the
    end of its predecessor's (that doubled the view's paints)."""
    from nerveseg.ui.frame_view import FrameView

    summary, shown, layers = run_live(engines, 0.0, mode="passthrough")
    r = next(r for r, _ in reversed(shown) if r.layer is not None)
    frame = dataclasses.replace(r, layer=None)

    class Counting(FrameView):
        def __init__(self):
            super().__init__()
            self.paints = []  # (when, the layer painted)

        def paintEvent(self, event):
            super().paintEvent(event)
            self.paints.append((time.monotonic(), self._painted_layer))

    view = Counting()
    qtbot.addWidget(view)
    view.resize(480, 270)
    view.show()
    qtbot.waitExposed(view)
    for i in range(7):  # frames every 20 ms: the view learns the period (a wait of 30 ms)
        if i:
            qtbot.wait(20)
        view.set_frame(frame)
    wait_ms = view._layer_wait_ms()
    assert 20 <= wait_ms <= 50
    qtbot.wait(1)  # the last frame's paint
    view.paints.clear()
    first = dataclasses.replace(r.layer, captured_ns=now_ns())
    view.set_layer(first)  # a frame came just now: wait for the next one
    qtbot.wait(int(wait_ms * 0.4))
    second = dataclasses.replace(r.layer, captured_ns=now_ns())
    arrived = time.monotonic()
    view.set_layer(second)  # a frame came lately: wait too; and no frame comes any more
    qtbot.waitUntil(lambda: any(layer is second for _, layer in view.paints), timeout=2000)
    painted_at = next(t for t, layer in view.paints if layer is second)
    assert (painted_at - arrived) * 1000 >= wait_ms * 0.9, "the newer layer waited its own period"
    assert len(view.paints) == 1, "one paint for the two layers, not one at the end of each wait"
