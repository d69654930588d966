"""Where the default engines come from, wherever the command is run.

``$NERVESEG_MODELS`` (a folder holding ``gate.onnx`` and ``unet.onnx``) when set, else
the shipped sample engines of the installed project (``samples/models`` beside the
package folders). Never the current folder: ``cd`` elsewhere and ``nerveseg replay``
still finds them. An explicit ``--gate``/``--seg`` or YAML path always wins.
"""

from __future__ import annotations

import os
from pathlib import Path

ENV = "NERVESEG_MODELS"
GATE, SEGMENTER = "gate.onnx", "unet.onnx"


def models_folder() -> tuple[Path, str]:
    """The folder of the default engines and, in words, where that choice came from."""
    explicit = os.environ.get(ENV)
    if explicit:
        return Path(explicit).expanduser().resolve(), f"${ENV}"
    project = Path(__file__).resolve().parents[1]  # engines/ sits at the project's top level
    return project / "samples" / "models", f"the shipped sample engines of the project installed at {project}"


def default_engine(name: str) -> str:
    """The absolute path of default engine ``name`` (``gate.onnx``/``unet.onnx``)."""
    return str(models_folder()[0] / name)
