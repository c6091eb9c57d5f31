"""The exception hierarchy of m2v_lab.

Every message names the input at fault and says how to fix it.  Catch
:class:`M2VLabError` to handle anything this package raises on purpose.
"""

__all__ = [
    "M2VLabError",
    "AudioError",
    "ModelError",
    "CacheError",
    "FeaturesError",
    "DatasetError",
    "AnalysisError",
    "OptionError",
]


class M2VLabError(Exception):
    """Base class of every error m2v_lab raises on purpose."""


class AudioError(M2VLabError, ValueError):
    """An audio input cannot be read or is unfit for the model (names the file)."""


class ModelError(M2VLabError, RuntimeError):
    """A model cannot be found, loaded or run."""


class CacheError(M2VLabError, OSError):
    """The feature cache cannot be used (unwritable directory, bad entry)."""


class FeaturesError(M2VLabError, ValueError):
    """A :class:`~m2v_lab.features.Features` object was asked for something it does not hold."""


class DatasetError(M2VLabError, ValueError):
    """A dataset folder, label file or layout is not usable."""


class AnalysisError(M2VLabError, ValueError):
    """Input to an analysis (similarity, probing) is malformed: wrong shapes, lengths, NaNs."""


class OptionError(M2VLabError, ValueError):
    """An option has a value m2v_lab cannot use (names the option and the values it takes)."""
