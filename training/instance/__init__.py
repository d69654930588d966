"""Instance segmentation (torchvision Mask R-CNN): data, training, evaluation.

``nerveseg train instance DATA --out RUN`` (:mod:`.train`), ``evaluate_instance``
(:mod:`.evaluate`); the models are in :mod:`nerveseg.training.models` (``INSTANCE``).
"""
