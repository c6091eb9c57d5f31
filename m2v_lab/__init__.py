"""m2v_lab: look inside self-supervised music audio models, layer by layer.

>>> import m2v_lab as m2v
>>> model = m2v.load_model("m-a-p/music2vec-v1")
>>> feats = m2v.extract(model, ["a.wav", "b.flac"], pool="mean", cache_dir=True)
>>> feats.pooled.shape          # (layers, clips, dim) = (13, 2, 768)

Computation lives in ``audio``, ``models``, ``extract``, ``cache``, ``features``,
``similarity``, ``probing`` and ``datasets``; drawing in ``plot``; interactive
views in ``widgets`` (the last two load matplotlib / ipywidgets on first use).
"""

import importlib

from .errors import (AnalysisError, AudioError, CacheError, DatasetError, FeaturesError, M2VLabError,
                     ModelError, OptionError)
from .extract import extract
from .features import Features
from .models import REGISTRY, LoadedModel, load_model, load_model_with_fallback, random_twin
from .cache import cache_info, clear_cache

__version__ = "0.1.0"

_LAZY = {"audio", "models", "extract", "cache", "features", "similarity", "probing", "datasets",
         "baselines", "plot", "widgets"}


def __getattr__(name):
    if name in _LAZY:
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'm2v_lab' has no attribute {name!r}")


__all__ = ["load_model", "load_model_with_fallback", "random_twin", "extract", "Features", "LoadedModel",
           "REGISTRY", "cache_info", "clear_cache", "M2VLabError", "AudioError", "ModelError", "CacheError",
           "FeaturesError", "DatasetError", "AnalysisError", "OptionError"]
