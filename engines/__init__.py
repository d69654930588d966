"""nerveseg.engines.

ONNX Runtime's official wheels collect usage telemetry and send it to Microsoft (its
``Privacy.md``): on import they write a persistent device identifier and an event
queue under ``~/.cache/Microsoft/DeveloperTools/.onnxruntime`` and look up the upload
host every few seconds from short-lived threads. An operating-room machine must not
phone home, keep such an identifier, or start threads in the middle of a run, so
nerveseg turns it off before ONNX Runtime is first imported (every nerveseg package
imports this one first). A user who wants it sets ``ORT_DISABLE_TELEMETRY=0``.
"""

import os

os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
