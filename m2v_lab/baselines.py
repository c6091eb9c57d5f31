"""Hand-crafted audio features (librosa) to probe next to a model's layers.

Each function takes clips as a list of mono float arrays at one sample rate
and returns ``(1, n, dim)`` float32 — one "layer" — ready for
``probe_layers(..., baselines={"MFCC": mfcc_features(clips, sr)})``.  Every
feature is summarised over time by its mean and standard deviation, the
classic bag-of-frames baseline.  librosa is imported inside the functions.

``handcrafted_features(..., cache_dir=True)`` keeps its result on disk, keyed by
the clips' samples, the rate, the options and librosa's version, and checked
against its digest on every read (a notebook's second run skips the minute of
librosa on the teaching set).
"""

from __future__ import annotations

import hashlib
import json
import os
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


def handcrafted_features(clips: Sequence, sr: int, *, n_mfcc: int = 20, cache_dir=None) -> np.ndarray:
    """MFCC and chroma summaries side by side.

    Parameters
    ----------
    clips : sequence of ndarray, each shape (samples,)
    sr : int
    n_mfcc : int
    cache_dir : bool, path or None
        As :func:`m2v_lab.extract`'s: True for the default cache folder, a folder, or None/False for no
        disk cache.  Entries live in ``<cache>/baselines/`` and are verified against their digest when read;
        one that fails is recomputed.

    Returns
    -------
    ndarray, shape (1, n, 2 · n_mfcc + 24), float32
    """
    from .cache import is_uri, resolve_cache_dir

    clips = _checked(clips, sr)
    root = resolve_cache_dir(cache_dir)
    if root is None or is_uri(root):
        return _handcrafted(clips, sr, n_mfcc)
    path = root / "baselines" / f"handcrafted-{_key(clips, sr, n_mfcc)}.safetensors"
    stored = _read(path)
    if stored is not None:
        return stored
    features = _handcrafted(clips, sr, n_mfcc)
    _write(path, features)
    return features


def _handcrafted(clips, sr, n_mfcc):
    return np.concatenate([mfcc_features(clips, sr, n_mfcc=n_mfcc), chroma_features(clips, sr)], axis=2)


def _key(clips: list[np.ndarray], sr, n_mfcc: int) -> str:
    import librosa

    h = hashlib.sha256(json.dumps({"sr": float(sr), "n_mfcc": n_mfcc, "n_fft": _N_FFT, "hop": _HOP,
                                   "librosa": librosa.__version__, "format": 1}).encode())
    for clip in clips:
        h.update(len(clip).to_bytes(8, "little"))
        h.update(np.ascontiguousarray(clip, dtype=np.float32).tobytes())
    return h.hexdigest()[:40]


def _read(path) -> np.ndarray | None:
    from safetensors import safe_open

    from .cache import _digest

    if not path.is_file():
        return None
    try:
        with safe_open(str(path), framework="numpy") as f:
            features, digest = f.get_tensor("features"), (f.metadata() or {}).get("sha256")
    except Exception as exc:  # noqa: BLE001 - unreadable entry: recompute it
        _warn(f"the baseline cache entry {path.name} cannot be read ({exc}); recomputing it")
        return None
    if digest != _digest(features):
        _warn(f"the baseline cache entry {path.name} does not match its digest (corrupted); recomputing it")
        return None
    return features


def _write(path, features: np.ndarray) -> None:
    from safetensors.numpy import save_file

    from .cache import _digest

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        save_file({"features": features}, str(tmp), metadata={"sha256": _digest(features)})
        os.replace(tmp, path)
    except OSError as exc:  # a read-only or full cache must not cost the result
        _warn(f"could not write the baseline cache entry {path}: {exc}; the features are returned uncached")


def _warn(message: str) -> None:
    import warnings

    from .cache import CacheWarning

    warnings.warn(message, CacheWarning, stacklevel=4)
