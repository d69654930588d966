"""The commands that bind several layers: the ``nerveseg`` dispatcher, ``validate``,
``bench``, ``build-engine`` and ``verify``. Nothing below imports this package."""

import nerveseg.engines  # noqa: F401  (first: it turns ONNX Runtime's telemetry off)
