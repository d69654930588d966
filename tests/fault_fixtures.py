"""What the fault tests share: videos made of chosen frames, a real ONNX gate that
fails on chosen frames, a scripted camera at the capture boundary, child processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import av
import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from nerveseg.engines.metadata import META_KEY, EngineMeta

#: a frame this bright makes :func:`make_poison_gate` fail (ONNX Runtime raises)
POISON_LEVEL = 242
REPO = Path(__file__).resolve().parents[1]


def poison_frame(height: int = 240, width: int = 640) -> np.ndarray:
    """``(H, W, 3) uint8``: mean above the poison gate's limit, yet not blown out (the
    preprocessor would crop a blown-out border away)."""
    return np.full((height, width, 3), POISON_LEVEL, np.uint8)


def write_frames(path: Path, images: list[np.ndarray], fps: int = 24, codec: str = "mjpeg") -> Path:
    """An AVI/MP4/MKV holding ``images`` (all of one size) in order."""
    h, w = images[0].shape[:2]
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height = w, h
        stream.pix_fmt = "yuvj420p" if codec == "mjpeg" else "yuv420p"
        for image in images:
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def make_poison_gate(path: Path, size: int = 32, limit: float = 240.0) -> Path:
    """The tiny gate's rule (bright → nerve, dark → opening_wound), except that a frame
    whose mean exceeds ``limit`` makes ONNX Runtime raise: the logits are reshaped to
    ``[-1, 3 + (mean > limit)]``, which 3 values cannot fill. A real engine error, on
    frames the test chooses."""
    inits = [numpy_helper.from_array(np.array([[0.1, -0.1, 0.0]] * 3, np.float32) / 3.0, "w"),
             numpy_helper.from_array(np.array([-12.8, 12.8, -5.0], np.float32), "b"),
             numpy_helper.from_array(np.array(limit, np.float32), "limit"),
             numpy_helper.from_array(np.array([-1], np.int64), "minus_one"),
             numpy_helper.from_array(np.array([3], np.int64), "three")]
    nodes = [
        helper.make_node("Cast", ["image"], ["f"], to=TensorProto.FLOAT),
        helper.make_node("ReduceMean", ["f"], ["m"], axes=[1, 2], keepdims=0),
        helper.make_node("MatMul", ["m", "w"], ["mw"]),
        helper.make_node("Add", ["mw", "b"], ["raw"]),
        helper.make_node("ReduceMean", ["m"], ["level"], axes=[0, 1], keepdims=0),
        helper.make_node("Greater", ["level", "limit"], ["bad"]),
        helper.make_node("Cast", ["bad"], ["bad_i"], to=TensorProto.INT64),
        helper.make_node("Add", ["three", "bad_i"], ["width"]),
        helper.make_node("Concat", ["minus_one", "width"], ["shape"], axis=0),
        helper.make_node("Reshape", ["raw", "shape"], ["logits"]),
    ]
    return _save_gate(path, "poison_gate", nodes, inits, size)


class ScriptedCamera:
    """A device driven by the test: ``mode`` is ``frames`` (delivers), ``stopped``
    (read fails), ``raises`` (read raises, like a driver error), ``empty`` (read
    succeeds with an empty array) or ``unplugged`` (open fails). ``opens`` holds the
    monotonic time of every open attempt."""

    def __init__(self, shape: tuple[int, int] = (120, 160), fps: float = 60.0,
                 modes: tuple[tuple[int, int, float, str], ...] | None = None, value: int = 150):
        self.mode = "frames"
        self.value = value
        self.shape, self.period = shape, 1.0 / fps
        self.opens: list[float] = []
        self.apis: list[int] = []
        self.delivered = 0
        # like a V4L2 driver: (width, height, fps, fourcc) it can give; a request is met
        # with the closest it has (None: anything asked is given)
        self.modes = modes
        self.fourcc = "YUYV"

    def negotiate(self, width: int, height: int, fps: float, fourcc: str) -> None:
        if self.modes is None:
            self.shape, self.period, self.fourcc = (height, width), 1.0 / fps, fourcc
            return
        w, h, f, c = min(self.modes, key=lambda m: (m[3] != fourcc, abs(m[0] * m[1] - width * height),
                                                    abs(m[2] - fps)))
        self.shape, self.period, self.fourcc = (h, w), 1.0 / f, c

    def open(self, index: int, api: int = 0) -> "_ScriptedCapture":
        self.apis.append(api)
        self.opens.append(time.monotonic())
        if self.mode == "unplugged":
            raise RuntimeError("VIDIOC_STREAMON: No such device")
        return _ScriptedCapture(self)

    def read(self):
        time.sleep(self.period)
        if self.mode == "raises":
            raise RuntimeError("select() timeout: device disconnected")
        if self.mode == "empty":
            return True, np.empty((0, 0, 3), np.uint8)
        if self.mode != "frames":
            return False, None
        self.delivered += 1
        return True, np.full((*self.shape, 3), self.value, np.uint8)


class _ScriptedCapture:
    """The calls of ``cv2.VideoCapture`` that the camera source makes."""

    def __init__(self, camera: ScriptedCamera):
        self.camera = camera
        c = camera
        self._asked = {"w": c.shape[1], "h": c.shape[0], "fps": 1.0 / c.period, "fourcc": c.fourcc}

    def set(self, prop: int, value: float) -> bool:
        import cv2

        key = {cv2.CAP_PROP_FRAME_WIDTH: "w", cv2.CAP_PROP_FRAME_HEIGHT: "h", cv2.CAP_PROP_FPS: "fps",
               cv2.CAP_PROP_FOURCC: "fourcc"}[prop]
        if key == "fourcc":
            value = "".join(chr((int(value) >> 8 * i) & 0xFF) for i in range(4))
        self._asked[key] = value
        a = self._asked
        self.camera.negotiate(int(a["w"]), int(a["h"]), float(a["fps"]), a["fourcc"])
        return True

    def get(self, prop: int) -> float:
        import cv2

        c = self.camera
        if prop == cv2.CAP_PROP_FPS:
            return 1.0 / c.period
        if prop == cv2.CAP_PROP_FOURCC:
            return float(cv2.VideoWriter_fourcc(*c.fourcc))
        return {cv2.CAP_PROP_FRAME_WIDTH: c.shape[1], cv2.CAP_PROP_FRAME_HEIGHT: c.shape[0]}.get(prop, 0.0)

    def isOpened(self) -> bool:
        return self.camera.mode != "unplugged"

    def read(self):
        return self.camera.read()

    def release(self) -> None:
        pass


def wait_for(condition, timeout: float = 5.0, what: str = "condition") -> float:
    """Poll ``condition`` until true; returns the monotonic time it became true."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.005)
    return time.monotonic()


def _interruptible(then=None):
    """What the child runs before it starts: Ctrl-C as in a terminal, then ``then`` (a
    caller's own ``preexec_fn``). A suite started in the background (``cmd &`` in a
    script, as a CI runner may) inherits SIGINT *ignored*, and an ignored signal stays
    ignored across exec: nerveseg would then, rightly, not see the tests' Ctrl-C at all."""
    def setup() -> None:
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        if then is not None:
            then()
    return setup


def nerveseg_child(*argv: str, **kwargs) -> subprocess.Popen:
    """``nerveseg ARGV`` in a child process (its own Python), output piped."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "nerveseg.commands.cli", *argv], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=_interruptible(kwargs.pop("preexec_fn", None)), **kwargs)


def python_child(script: str, *argv: str, **kwargs) -> subprocess.Popen:
    """``script`` run by a child Python with ``argv``, output piped, unbuffered."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-c", script, *argv], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=_interruptible(kwargs.pop("preexec_fn", None)), **kwargs)


def csv_rows(path: Path) -> int:
    """Complete data rows in a CSV that may have been cut mid-line (header excluded)."""
    try:  # not "exists() then read": start-up's writability check creates and removes the file
        lines = path.read_bytes().split(b"\n")
    except FileNotFoundError:
        return 0
    return max(0, len(lines) - 2)  # the header, and the (possibly partial) text after the last newline


def lines_in_background(stream) -> list[str]:
    """Collect a child's output lines in a thread as they come (never blocks the test)."""
    lines: list[str] = []

    def read() -> None:
        for line in iter(stream.readline, ""):
            lines.append(line)

    threading.Thread(target=read, daemon=True).start()
    return lines


def make_stuck_gate(path: Path, size: int = 32, iterations_per_level: int = 10**7) -> Path:
    """The tiny gate's rule behind a real ONNX ``Loop`` that counts to ``mean(image) ×
    iterations_per_level`` first: instant on the blank warm-up frame (all zeros), minutes
    on a real one. A stage stuck in native code, where no Python signal handler runs."""
    body = helper.make_graph(
        [helper.make_node("Add", ["count_in", "one_b"], ["count_out"]),
         helper.make_node("Identity", ["cond_in"], ["cond_out"])],
        "count", [helper.make_tensor_value_info("i", TensorProto.INT64, []),
                  helper.make_tensor_value_info("cond_in", TensorProto.BOOL, []),
                  helper.make_tensor_value_info("count_in", TensorProto.INT64, [])],
        [helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []),
         helper.make_tensor_value_info("count_out", TensorProto.INT64, [])],
        [numpy_helper.from_array(np.array(1, np.int64), "one_b")])
    inits = [numpy_helper.from_array(np.array([[0.1, -0.1, 0.0]] * 3, np.float32) / 3.0, "w"),
             numpy_helper.from_array(np.array([-12.8, 12.8, -5.0], np.float32), "b"),
             numpy_helper.from_array(np.array(float(iterations_per_level), np.float32), "k"),
             numpy_helper.from_array(np.array(True), "true"),
             numpy_helper.from_array(np.array(0, np.int64), "zero"),
             numpy_helper.from_array(np.array(0.0, np.float32), "zero_f")]
    nodes = [
        helper.make_node("Cast", ["image"], ["f"], to=TensorProto.FLOAT),
        helper.make_node("ReduceMean", ["f"], ["m"], axes=[1, 2], keepdims=0),
        helper.make_node("ReduceMean", ["m"], ["level"], keepdims=0),
        helper.make_node("Mul", ["level", "k"], ["trips_f"]),
        helper.make_node("Cast", ["trips_f"], ["trips"], to=TensorProto.INT64),
        helper.make_node("Loop", ["trips", "true", "zero"], ["counted"], body=body),
        helper.make_node("Cast", ["counted"], ["counted_f"], to=TensorProto.FLOAT),
        helper.make_node("Mul", ["counted_f", "zero_f"], ["nothing"]),  # the count, used, adds 0
        helper.make_node("MatMul", ["m", "w"], ["mw"]),
        helper.make_node("Add", ["mw", "b"], ["raw"]),
        helper.make_node("Add", ["raw", "nothing"], ["logits"]),
    ]
    return _save_gate(path, "stuck_gate", nodes, inits, size)


def _save_gate(path: Path, name: str, nodes: list, inits: list, size: int) -> Path:
    """A checked ONNX classifier ``name`` (``image`` uint8 NHWC in, 3 ``logits`` out) with
    nerveseg metadata, saved to ``path``."""
    image = helper.make_tensor_value_info("image", TensorProto.UINT8, ["N", size, size, 3])
    out = helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 3])
    graph = helper.make_graph(nodes, name, [image], [out], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    meta = EngineMeta(model=name, task="classify", classes=("nerve", "opening_wound", "tendon"),
                      input_size=(size, size), recipe_hash="test", revision="test")
    model.metadata_props.add(key=META_KEY, value=meta.to_json())
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path
