"""Hand-crafted audio features (librosa) to probe next to a model's layers.

Each function takes clips as a list of mono float arrays at one sample rate
and returns ``(1, n, dim)`` float32 — one "layer" — ready for
``probe_layers(..., baselines={"MFCC": mfcc_features(clips, sr)})``.  Every
feature is summarised over time by its mean and standard deviation, the
classic bag-of-frames baseline.  librosa is imported inside the functions.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .errors import AudioError

__all__ = ["mfcc_features", "chroma_features", "handcrafted_features"]

_N_FFT = 2048
_HOP = 512


def _checked(clips: Sequence, sr) -> list[np.ndarray]:
    if isinstance(clips, np.ndarray) and clips.ndim == 1:
        raise AudioError("clips is a single 1-D array; pass a list of clips, e.g. [audio].")
    if len(clips) == 0:
        raise AudioError("clips is empty: pass at least one mono array.")
    if not np.isscalar(sr) or not sr > 0:
        raise AudioError(f"sr={sr!r} must be a positive sample rate in Hz.")
    out = []
    for i, clip in enumerate(clips):
        arr = np.asarray(clip)
        if arr.ndim != 1:
            raise AudioError(f"clip {i} is shaped {arr.shape}: pass mono 1-D arrays (average the channels first).")
        if not np.issubdtype(arr.dtype, np.number):
            raise AudioError(f"clip {i} has dtype {arr.dtype}: pass float samples.")
        if len(arr) < _N_FFT:
            raise AudioError(f"clip {i} has {len(arr)} samples, fewer than one {_N_FFT}-sample frame "
                             f"({_N_FFT / sr * 1000:.0f} ms at {sr} Hz): pad or drop it.")
        if not np.isfinite(arr).all():
            raise AudioError(f"clip {i} contains NaN or inf samples; clean or drop it.")
        out.append(arr.astype(np.float32))
    return out


def _summarise(frames_by_clip: list[np.ndarray]) -> np.ndarray:
    """(features, frames) per clip → (1, clips, 2·features): time mean then time sd."""
    rows = [np.concatenate([f.mean(axis=1), f.std(axis=1)]) for f in frames_by_clip]
    return np.stack(rows)[None].astype(np.float32)


def mfcc_features(clips: Sequence, sr: int, *, n_mfcc: int = 20) -> np.ndarray:
    """MFCC mean and sd over time per clip.

    Parameters
    ----------
    clips : sequence of ndarray, each shape (samples,)
        Mono audio, any length ≥ 2048 samples.
    sr : int
        Sample rate of all clips (Hz).
    n_mfcc : int

    Returns
    -------
    ndarray, shape (1, n, 2 · n_mfcc), float32
    """
    import librosa

    clips = _checked(clips, sr)
    return _summarise([librosa.feature.mfcc(y=c, sr=sr, n_mfcc=n_mfcc, n_fft=_N_FFT, hop_length=_HOP)
                       for c in clips])


def chroma_features(clips: Sequence, sr: int) -> np.ndarray:
    """Chroma (STFT) mean and sd over time per clip.

    Parameters
    ----------
    clips : sequence of ndarray, each shape (samples,)
    sr : int

    Returns
    -------
    ndarray, shape (1, n, 24), float32
    """
    import librosa

    clips = _checked(clips, sr)
    return _summarise([librosa.feature.chroma_stft(y=c, sr=sr, n_fft=_N_FFT, hop_length=_HOP) for c in clips])


def handcrafted_features(clips: Sequence, sr: int, *, n_mfcc: int = 20) -> np.ndarray:
    """MFCC and chroma summaries side by side.

    Returns
    -------
    ndarray, shape (1, n, 2 · n_mfcc + 24), float32
    """
    return np.concatenate([mfcc_features(clips, sr, n_mfcc=n_mfcc), chroma_features(clips, sr)], axis=2)
