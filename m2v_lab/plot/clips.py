"""One clip over time: its waveform and its spectrogram, on the time axis :func:`~m2v_lab.plot.feature_image` shares;
several clips side by side (:func:`clip_grid`), and a player for each (:func:`players`)."""

from __future__ import annotations

import numpy as np

from ..errors import AnalysisError
from ._axes import axes_for

__all__ = ["waveform", "spectrogram", "clip_grid", "players"]


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


def _named(waves) -> list[tuple[str, np.ndarray]]:
    items = list(waves.items()) if hasattr(waves, "items") else [(f"clip {i}", w) for i, w in enumerate(waves)]
    if not items:
        raise AnalysisError("no clips given: pass {name: wave} (or a list of waves).")
    return [(str(name), _mono(wave)) for name, wave in items]


def clip_grid(waves, sample_rate: int, *, fig=None, title: str | None = None, width: float = 3.2):
    """Several clips side by side: each clip's waveform (small) above its spectrogram.

    Parameters
    ----------
    waves : mapping of str to array_like, or a sequence of arrays
        ``{name: wave}`` (each ``(samples,)`` at ``sample_rate``); the names title the columns.
    sample_rate : int
        Hz, e.g. the model's (``m2v.audio.load(path, sample_rate=model.sample_rate)``): the figure then
        shows what the model hears, up to ``sample_rate / 2``.
    fig : matplotlib Figure, optional
        Drawn on; a new pyplot figure (``width`` inches per clip) if None.
    title : str, optional
        The figure's title.

    Returns
    -------
    np.ndarray of matplotlib Axes, shape (2, clips)
        Row 0 the waveforms, row 1 the spectrograms; a column shares its time axis.
    """
    items = _named(waves)
    if fig is None:
        import matplotlib.pyplot as plt

        fig = plt.figure(figsize=(width * len(items), 3.8), layout="constrained")
    axes = fig.subplots(2, len(items), sharex="col", squeeze=False, gridspec_kw={"height_ratios": (1, 2.4)})
    for column, (name, wave) in enumerate(items):
        waveform(wave, sample_rate, ax=axes[0, column], title=name)
        spectrogram(wave, sample_rate, ax=axes[1, column])
        axes[0, column].set_xlabel("")
        if column:
            axes[0, column].set_ylabel("")
            axes[1, column].set_ylabel("")
    if title:
        fig.suptitle(title)
    return axes


def players(waves, sample_rate: int):
    """An audio player per clip, each beside its name, as one HTML table (for a notebook cell).

    Parameters
    ----------
    waves : mapping of str to array_like, or a sequence of arrays
        ``{name: wave}``, each ``(samples,)`` at ``sample_rate``.
    sample_rate : int
        Hz.  Each player plays its wave scaled to its own peak (``IPython.display.Audio``'s default).

    Returns
    -------
    IPython.display.HTML
    """
    import html

    from IPython.display import HTML, Audio

    rows = "".join(f"<tr><td style='text-align:left'><code>{html.escape(name)}</code></td>"
                   f"<td>{Audio(wave, rate=int(sample_rate))._repr_html_()}</td></tr>"
                   for name, wave in _named(waves))
    return HTML(f"<table>{rows}</table>")
