"""m2v_lab: look inside self-supervised music audio models, layer by layer.

>>> import m2v_lab as m2v
>>> model = m2v.load_model("m-a-p/music2vec-v1")
>>> feats = m2v.extract(model, ["a.wav", "b.flac"], pool="mean", cache_dir=True)
>>> feats.pooled.shape          # (layers, clips, dim) = (13, 2, 768)

Computation lives in ``audio``, ``models``, ``extract``, ``cache``, ``features``,
``similarity``, ``probing``, ``projection`` and ``datasets``, with the shared pieces
``layers``, ``settings``, ``stacks``, ``devices`` and ``errors``; drawing in ``plot``;
interactive views in ``widgets``.  Each is an attribute (``m2v.projection.project``),
imported on first use; ``m2v.extract`` is the function, its module ``m2v_lab.extract``.
"""

import importlib

from .errors import (AnalysisError, AudioError, CacheError, DatasetError, FeaturesError, M2VLabError,
                     ModelError, OptionError)
from .extract import extract
from .features import Features
from .models import REGISTRY, LoadedModel, load_model, load_model_with_fallback, random_twin
from .cache import cache_info, clear_cache

__version__ = "0.1.0"

#: Submodules reachable as attributes; imported on first use, so ``import m2v_lab`` stays light.
_LAZY = {"pretrain", "course", "solutions", "audio", "models", "cache", "features", "similarity", "probing", "projection", "datasets",
         "baselines", "layers", "settings", "stacks", "devices", "errors", "plot", "widgets"}


def __getattr__(name):
    if name in _LAZY:
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'm2v_lab' has no attribute {name!r}")


def __dir__():
    # Tab completion in a notebook lists the lazy submodules too.
    return sorted(set(globals()) | _LAZY)


__all__ = ["load_model", "load_model_with_fallback", "random_twin", "extract", "Features", "LoadedModel",
           "REGISTRY", "cache_info", "clear_cache", "M2VLabError", "AudioError", "ModelError", "CacheError",
           "FeaturesError", "DatasetError", "AnalysisError", "OptionError"]
