"""nerveseg.realtime."""

import nerveseg.engines  # noqa: F401  (first: it turns ONNX Runtime's telemetry off)
