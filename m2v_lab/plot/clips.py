"""One clip over time: its waveform and its spectrogram, on the time axis :func:`~m2v_lab.plot.feature_image` shares."""

from __future__ import annotations

import numpy as np

from ..errors import AnalysisError
from ._axes import axes_for

__all__ = ["waveform", "spectrogram"]


def _mono(wave) -> np.ndarray:
    wave = np.asarray(wave, dtype=np.float64)
    if wave.ndim != 1 or wave.size == 0:
        raise AnalysisError(f"wave must be a non-empty mono signal (samples,); got shape {wave.shape}.")
    return wave


def waveform(wave, sample_rate: int, *, ax=None, title: str | None = None, color="C0"):
    """The signal against time in seconds.

    Parameters
    ----------
    wave : array_like, shape (samples,)
    sample_rate : int
        Hz.
    ax : matplotlib Axes, optional
    title : str, optional

    Returns
    -------
    matplotlib Axes
    """
    wave = _mono(wave)
    ax = axes_for(ax, size=(8, 2))
    ax.plot(np.arange(wave.size) / sample_rate, wave, lw=0.5, color=color)
    ax.set(xlabel="time (s)", ylabel="amplitude", xlim=(0, wave.size / sample_rate))
    if title:
        ax.set_title(title)
    return ax


def spectrogram(wave, sample_rate: int, *, ax=None, n_fft: int = 1024, hop: int = 256, top_db: float = 80.0,
                log_freq: bool = True, title: str | None = None, cmap: str = "magma"):
    """Log-magnitude short-time spectrum (dB below the clip's peak, floored at ``-top_db``).

    Parameters
    ----------
    wave : array_like, shape (samples,)
    sample_rate : int
        Hz.
    n_fft, hop : int
        Hann window length and step, in samples (shorter clips use one window of their length).
    top_db : float
        Dynamic range shown.
    log_freq : bool
        Logarithmic frequency axis from 30 Hz (octaves equally spaced, as pitch is heard).

    Returns
    -------
    matplotlib Axes
    """
    wave = _mono(wave)
    ax = axes_for(ax, size=(8, 2.5))
    n_fft = min(n_fft, wave.size)
    starts = np.arange(0, wave.size - n_fft + 1, hop)
    frames = np.stack([wave[s:s + n_fft] for s in starts]) * np.hanning(n_fft)
    power = np.abs(np.fft.rfft(frames, axis=1)) ** 2  # (windows, bins)
    db = 10 * np.log10(np.maximum(power, 1e-20))
    db = np.maximum(db - db.max(), -top_db)
    times = (starts + n_fft / 2) / sample_rate
    freqs = np.fft.rfftfreq(n_fft, 1 / sample_rate)
    ax.pcolormesh(times, freqs, db.T, shading="nearest", cmap=cmap, vmin=-top_db, vmax=0, rasterized=True)
    ax.set(xlabel="time (s)", ylabel="frequency (Hz)", xlim=(0, wave.size / sample_rate))
    if log_freq:
        ax.set_yscale("log")
        ax.set_ylim(30, sample_rate / 2)
    if title:
        ax.set_title(title)
    return ax
