"""``nerveseg bench``: the pipeline against the naive loop and the bare engines, side by
side in one process on the same frames.

Modes (each a function returning a plain dict of figures):

* :func:`.modes.naive` — the original tool's loop: read, PyTorch eager gate then
  segmenter, draw, write, one after another in one thread.
* :func:`.modes.bare` — gate + segmenter inference alone on pre-decoded, pre-resized
  frames (the compute bound of the engines).
* :func:`.modes.replay` — the full pipelined replay to AVI, every frame.
* :func:`.modes.live` — frames offered at a source frame rate with the newest-frame
  policy: video delay, annotation delay, drops, queue growth.
* :func:`.costs.stage_costs` — each stage's CPU time alone, warm: where the CPU goes
  (not a bound; the replay's bound and efficiency come from its own clocks,
  :func:`.modes.machine_use`).
* :func:`.formats.formats` — one row per backend/precision: size, accuracy, speed.
"""
