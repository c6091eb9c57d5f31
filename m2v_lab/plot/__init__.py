"""Figures drawn from m2v_lab results: each function draws on a given ``ax`` (or a new one) and returns it."""

from .features import feature_image

__all__ = ["feature_image"]

from .clips import frame_features, spectrogram, waveform  # noqa: E402
from .projection import projection_scatter  # noqa: E402

__all__ += ["waveform", "spectrogram", "frame_features", "projection_scatter"]

from .similarity import similarity_heatmap  # noqa: E402
from .probing import layer_curve, layer_weights  # noqa: E402

__all__ += ["similarity_heatmap", "layer_curve", "layer_weights"]
