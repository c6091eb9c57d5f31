"""One clip over time: its waveform, its spectrogram and one layer's frame features, on a shared time axis."""

from __future__ import annotations

import numpy as np

from ..errors import AnalysisError

__all__ = ["waveform", "spectrogram", "frame_features"]


def _axes(ax, size):
    if ax is None:
        import matplotlib.pyplot as plt

        _, ax = plt.subplots(figsize=size)
    return ax


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
    ax = _axes(ax, (8, 2))
    wave = _mono(wave)
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
    ax = _axes(ax, (8, 2.5))
    wave = _mono(wave)
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


def frame_features(frames, times, *, ax=None, standardize: bool = True, title: str | None = None,
                   cmap: str = "magma", colorbar: bool = False):
    """One layer's features of one clip as a (dim × time) image, placed at each frame's time.

    Parameters
    ----------
    frames : array_like, shape (frames, dim)
        E.g. ``feats.frames(clip)[layer]``.
    times : array_like, shape (frames,)
        Centre of each frame in seconds (``feats.frame_times(clip)``), so the image lines up
        with :func:`waveform` and :func:`spectrogram` on a shared x axis.
    standardize : bool
        Z-score each dimension over time (a few very large dimensions would wash out the rest).
    colorbar : bool
        Off by default so that stacked axes keep the same width.

    Returns
    -------
    matplotlib Axes
    """
    ax = _axes(ax, (8, 3))
    image = np.asarray(frames, dtype=np.float64)
    times = np.asarray(times, dtype=np.float64)
    if image.ndim != 2 or image.shape[0] != times.size or image.shape[0] == 0:
        raise AnalysisError(f"frames must be (frames, dim) with one time per frame; got frames {image.shape} "
                            f"and {times.size} times.")
    image = image.T
    if standardize:
        image = (image - image.mean(axis=1, keepdims=True)) / (image.std(axis=1, keepdims=True) + 1e-8)
    mappable = ax.pcolormesh(times, np.arange(image.shape[0]), image, shading="nearest", cmap=cmap,
                             vmin=-3 if standardize else None, vmax=3 if standardize else None, rasterized=True)
    ax.set(xlabel="time (s)", ylabel="feature dimension")
    ax.invert_yaxis()
    if title:
        ax.set_title(title)
    if colorbar:
        ax.figure.colorbar(mappable, ax=ax, label="z-score over time" if standardize else "value", pad=0.01)
    return ax
