"""The extension points are tables: a new backend, source or exporter is one module and
one table line, and the rest of the product picks it up (docs/ARCHITECTURE.md)."""

from __future__ import annotations

import shutil
import sys
import threading

import numpy as np
import pytest

from nerveseg.engines import backends
from nerveseg.engines.backends import Backend
from nerveseg.engines.loader import backend_for, load_engine
from nerveseg.engines.metadata import EngineError
from nerveseg.realtime import sources
from nerveseg.realtime.sources import SourceKind, open_source

BACKEND_MODULE = '''
from nerveseg.engines.onnxruntime_backend import OnnxRuntimeEngine

class CopyEngine(OnnxRuntimeEngine):
    """ONNX Runtime under another name and file suffix: a stand-in for a new runtime."""
    backend_name = "copy"
'''


@pytest.fixture
def copy_backend(tmp_path, monkeypatch):
    (tmp_path / "copy_backend.py").write_text(BACKEND_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    table = dict(backends.BACKENDS)
    table["copy"] = Backend("copy", "copy_backend", "CopyEngine", (".onnxcopy",), "runs .onnxcopy files only",
                            auto_for=(".onnxcopy",))
    monkeypatch.setattr(backends, "BACKENDS", table)
    monkeypatch.setattr(sys.modules["nerveseg.engines.loader"], "BACKENDS", table)
    yield
    sys.modules.pop("copy_backend", None)


def test_a_new_backend_is_one_module_and_one_table_line(copy_backend, tiny_engines, tmp_path):
    gate = tmp_path / "gate.onnxcopy"
    shutil.copy(tiny_engines[0], gate)
    assert backend_for(gate, "auto") == ("copy", "auto: .onnxcopy file")
    with load_engine(gate, task="classify") as engine:
        assert engine.provenance.backend == "copy"
        out = engine.run(np.zeros((2, *engine.input_size, 3), np.uint8))
        assert out["logits"].shape == (2, len(engine.classes))
    with pytest.raises(EngineError, match=r"choose one of auto, .*copy"):
        backend_for(gate, "nonesuch")
    with pytest.raises(EngineError, match="runs .onnxcopy files only"):
        backend_for(tiny_engines[0], "copy")


def test_a_backend_whose_package_is_missing_names_its_extra(tiny_engines, tmp_path, monkeypatch):
    table = dict(backends.BACKENDS)
    table["ghost"] = Backend("ghost", "nerveseg_no_such_module", "X", (".onnx",), "runs .onnx files only",
                             extra="ghost")
    monkeypatch.setattr(sys.modules["nerveseg.engines.loader"], "BACKENDS", table)
    with pytest.raises(EngineError) as info:
        load_engine(tiny_engines[0], "ghost")
    message = str(info.value)
    assert "\n" not in message and message.startswith(str(tiny_engines[0]))
    assert "needs the ghost extra: pip install -e '.[ghost]'" in message


def test_every_engine_takes_the_region_keyword_and_refuses_a_region_it_cannot_use(tiny_engines):
    with load_engine(tiny_engines[1], task="segment") as seg:
        batch = np.zeros((1, *seg.input_size, 3), np.uint8)
        assert seg.run(batch, region=None)["mask_logits"].shape[:2] == (1, 1)
        with pytest.raises(ValueError, match="takes no region input"):
            seg.run(batch, region=np.ones((1, *seg.input_size), np.uint8))


class _Counting(sources.Source):
    """A test pattern source: ``pattern:N`` gives N grey frames."""

    def __init__(self, spec: str):
        super().__init__()
        self.name, self.fps, self.count = spec, 30.0, int(spec.split(":")[1])

    def frames(self, stop: threading.Event):
        from nerveseg.realtime.frames import Frame, now_ns

        for i in range(self.count):
            yield Frame(i, now_ns(), np.full((48, 64, 3), 10 * i, np.uint8))
        self.status.set("ended", "end of pattern")


def test_a_new_source_kind_is_one_class_and_one_table_line(monkeypatch, tmp_path):
    kind = SourceKind("pattern", lambda spec: spec.startswith("pattern:"), lambda spec, pace: _Counting(spec))
    monkeypatch.setattr(sources, "SOURCES", (kind, *sources.SOURCES))
    source = open_source("pattern:3")
    images = [f.image for f in source.frames(threading.Event())]
    assert [int(i[0, 0, 0]) for i in images] == [0, 10, 20]
    # the table keeps its other kinds: a folder is still a folder
    (tmp_path / "f").mkdir()
    with pytest.raises(Exception, match="no images in folder"):
        open_source(str(tmp_path / "f"))


def test_every_exporter_task_is_in_the_table():
    pytest.importorskip("torch")
    from nerveseg.engines.metadata import TASKS
    from nerveseg.training.exporters import EXPORTERS

    assert set(EXPORTERS) == set(TASKS)
