"""Region-conditioned segmentation: data, training, evaluation and export.

A sample is an image plus a binary region; the answer is the structures inside that
region (see :mod:`nerveseg.training.synth.regions` for the synthetic set and its layout).
``data``, ``instances`` and ``evaluate`` are torch-free (engines from any backend);
``dataset``, ``train`` and ``export`` use torch.
"""
