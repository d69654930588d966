"""Which optional install (pyproject extra) brings which package, and the one line a
command says when it needs one that is not installed."""

from __future__ import annotations

import importlib.util

# top-level import name → the extra that installs it
EXTRA_OF = {
    "torch": "train", "torchvision": "train", "onnx": "train", "onnxscript": "train",
    "pycocotools": "train", "torchmetrics": "train",
    "tensorrt": "tensorrt", "cuda": "tensorrt",
    "openvino": "openvino",
}


class MissingExtra(ImportError):
    """A command or backend needs an extra that is not installed (the CLI prints it as
    one line, exit 2)."""


def install_hint(extra: str) -> str:
    return f"pip install -e '.[{extra}]'"


def missing_extra(exc: BaseException) -> str | None:
    """The one-line message for an import that failed because an extra is not installed
    (None: some other error, or a package of no extra)."""
    if isinstance(exc, MissingExtra):
        return str(exc)
    if not isinstance(exc, ModuleNotFoundError) or not exc.name:
        return None
    top = exc.name.split(".")[0]
    extra = EXTRA_OF.get(top)
    if extra is None:
        return None
    return f"needs the {extra} extra ({top} is not installed): {install_hint(extra)}"


def available(module: str) -> bool:
    """True when ``module`` can be imported here (without importing it)."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def require(module: str, what: str) -> None:
    """Raise :class:`MissingExtra` when ``module`` cannot be imported: ``what`` needs it."""
    if not available(module):
        extra = EXTRA_OF.get(module.split(".")[0], "train")
        raise MissingExtra(f"{what} needs the {extra} extra ({module} is not installed): {install_hint(extra)}")
