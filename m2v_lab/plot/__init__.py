"""Figures drawn from m2v_lab results: each function draws on a given ``ax`` (or a new one) and returns it.

Layers are labelled one way (:func:`m2v_lab.layers.layer_label`).  Importing this package does
not import matplotlib: a function loads what it draws with when called, and pyplot only when it is
called without ``ax`` (so a kernel's backend is never chosen on import).
"""

from .clips import clip_grid, players, spectrogram, waveform
from .features import clip_features, feature_image, frame_features
from .probing import layer_curve, layer_weights
from .projection import projection_scatter
from .similarity import cell_colours, colour_scale_css, similarity_heatmap

__all__ = ["feature_image", "clip_features", "waveform", "spectrogram", "clip_grid", "players", "frame_features",
           "projection_scatter", "similarity_heatmap", "cell_colours", "colour_scale_css", "layer_curve",
           "layer_weights"]
