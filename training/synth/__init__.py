"""Synthetic stereoscope data: scenes, a renderer, and the dataset and video writers.

``nerveseg synth`` (see :mod:`.cli`) drives it from the command line. Only numpy, OpenCV
and PyAV are used, so it runs on the runtime install (no torch).
"""

from .datasets import write_classification, write_segmentation
from .render import render_stereo
from .scene import CLASSES, Scene, random_scene
from .video import write_video

__all__ = ["CLASSES", "Scene", "random_scene", "render_stereo", "write_classification",
           "write_segmentation", "write_video"]
