"""Extraction settings: everything that changes the numbers, in one frozen, typed record.

:class:`ExtractSettings` is resolved once per :func:`m2v_lab.extract` call from its options and
the model (its rate, context, processor, device and precision).  The same record is the
non-audio, non-model part of every cache key, is flattened into ``feats.meta``, and comes back
with :meth:`ExtractSettings.from_meta` — so ``extract(model, clips, like=feats)`` reproduces how
``feats`` were made without anyone rebuilding keyword arguments from strings.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

import numpy as np

from .errors import OptionError

__all__ = ["ExtractSettings", "EXTRACTION_VERSION"]

#: Bumped whenever a change to the extraction code changes its numbers (invalidates cache entries).
#: 2: the last state of pre-LN encoders is after the final LayerNorm, as the model cards give it;
#: integer PCM arrays are scaled as soundfile scales them.
EXTRACTION_VERSION = "2"
POOLS = ("mean", "max", None)
FRAME_DTYPES = ("float32", "float16")


def _seconds(option: str, value) -> float:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise OptionError(f"{option}={value!r} must be a number of seconds.")
    return float(value)


@dataclass(frozen=True)
class ExtractSettings:
    """How features were (or will be) extracted, resolved for one model.

    Attributes
    ----------
    pool : {"mean", "max", None}
        Pooling over each clip's frames; None keeps frames.
    sample_rate : int
        The model's input rate (Hz); audio is resampled to it.
    window_samples, min_last_samples : int
        Window length, and the shortest last window kept, in samples at ``sample_rate``.
    do_normalize : bool
        Waveforms are z-normalised (the model processor's ``do_normalize``).
    normalize_scope : {"track", "window"} or None
        Statistics of the whole track or of each window (None when not normalising).
    frames_dtype : {"float32", "float16"} or None
        Precision of kept frames (None for pooled features, always float32).
    dtype, device_type : str
        The model's precision and device type.
    torch, transformers : str
        Major.minor versions: kernels and model code change numbers between releases.
    extraction_version : str
        :data:`EXTRACTION_VERSION` of the code that made the numbers.
    """

    pool: str | None
    sample_rate: int
    window_samples: int
    min_last_samples: int
    do_normalize: bool
    normalize_scope: str | None
    frames_dtype: str | None
    dtype: str
    device_type: str
    torch: str
    transformers: str
    extraction_version: str = EXTRACTION_VERSION

    @classmethod
    def for_model(cls, model, *, pool="mean", window=None, min_last=1.0, do_normalize=None,
                  normalize_scope="track", frames_dtype="float32") -> "ExtractSettings":
        """Check :func:`m2v_lab.extract`'s options and resolve them for ``model``.

        Raises
        ------
        OptionError
            Any option m2v_lab cannot use, naming it and the values it takes.
        """
        import torch
        import transformers

        if pool not in POOLS:
            raise OptionError(f"pool={pool!r}: use 'mean', 'max' or None (frames).")
        window_s = model.context_seconds if window is None else _seconds("window", window)
        if not window_s > 0:
            raise OptionError(f"window={window!r} must be a positive number of seconds.")
        if window_s > 3600:
            raise OptionError(f"window={window!r} s is over an hour: did you pass samples instead of seconds?")
        window_samples = int(round(window_s * model.sample_rate))
        if window_samples < model.min_samples:
            raise OptionError(f"window={window_s} s is shorter than one frame's receptive field "
                              f"({model.min_samples} samples at {model.sample_rate} Hz).")
        if normalize_scope not in ("track", "window"):
            raise OptionError(f"normalize_scope={normalize_scope!r}: use 'track' or 'window'.")
        if not _seconds("min_last", min_last) >= 0:
            raise OptionError(f"min_last={min_last!r} must be a non-negative number of seconds.")
        if do_normalize is not None and not isinstance(do_normalize, (bool, np.bool_)):
            raise OptionError(f"do_normalize={do_normalize!r}: use True, False or None (the model's processor).")
        if frames_dtype not in FRAME_DTYPES:
            raise OptionError(f"frames_dtype={frames_dtype!r}: use 'float32' or 'float16'.")
        if frames_dtype != "float32" and pool is not None:
            raise OptionError(f"frames_dtype={frames_dtype!r} applies to frames (pool=None); pooled features are "
                              "always float32.")
        normalise = model.do_normalize if do_normalize is None else bool(do_normalize)
        return cls(
            pool=pool, sample_rate=int(model.sample_rate), window_samples=window_samples,
            min_last_samples=int(round(float(min_last) * model.sample_rate)), do_normalize=normalise,
            normalize_scope=normalize_scope if normalise else None,
            frames_dtype=frames_dtype if pool is None else None,
            dtype=str(model.dtype).replace("torch.", ""), device_type=model.device.type,
            torch=".".join(torch.__version__.split(".")[:2]),
            transformers=".".join(transformers.__version__.split(".")[:2]))

    @property
    def window_seconds(self) -> float:
        return self.window_samples / self.sample_rate

    @property
    def min_last_seconds(self) -> float:
        return self.min_last_samples / self.sample_rate

    def key(self) -> dict:
        """The fields, as the cache key and ``feats.meta`` hold them."""
        return asdict(self)

    def options(self) -> dict:
        """:func:`m2v_lab.extract` keyword arguments that make these settings again (on any model)."""
        return {"pool": self.pool, "window": self.window_seconds, "min_last": self.min_last_seconds,
                "do_normalize": self.do_normalize, "normalize_scope": self.normalize_scope or "track",
                "frames_dtype": self.frames_dtype or "float32"}

    @classmethod
    def from_meta(cls, meta: dict) -> "ExtractSettings":
        """The settings recorded in ``feats.meta`` (or a saved Features' meta).

        Raises
        ------
        OptionError
            The meta does not hold extraction settings (e.g. features built by hand).
        """
        names = [f.name for f in fields(cls)]
        missing = [n for n in names if n not in meta]
        if missing:
            raise OptionError(f"these features carry no extraction settings (missing {missing}); they were not "
                              "made by m2v_lab.extract, so pass the options to extract() yourself.")
        return cls(**{n: meta[n] for n in names})
