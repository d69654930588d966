"""``nerveseg validate``: the four non-clinical tests and the documents that go with them.

    testsets      labelled folders and video ground truth; engines run through the
                  pipeline's own operators (standalone performance)
    degradation   displayed and recorded pixels against the raw input, outside the overlay
    display       where "on screen" is stamped (the subscriber; ``nerveseg.ui.paint_probe``: the view's paint)
    delays        annotation and video delay from those stamps, thresholds
    passes        the two pipeline runs: every frame (accuracy, pixels) and real time (delays)
    components    software versions and the machine
    modelcard     model card and engine provenance
    figures       matplotlib figures as PNG bytes
    sections      results → the report's sections; ``render`` writes HTML, PDF and JSON

Torch-free: this runs in the runtime install.
"""
