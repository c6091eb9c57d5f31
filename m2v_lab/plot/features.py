"""One layer's frame features of one clip, as a (dim × time) image on the clip's time axis; and a clip's
spectrogram above the images of some of its layers (:func:`clip_features`)."""

from __future__ import annotations

import warnings

import numpy as np

from ..errors import AnalysisError
from ..layers import layer_label
from ._axes import axes_for

__all__ = ["feature_image", "frame_features", "clip_features"]  # and frame_image, the array-level drawing the widgets share


def feature_image(feats, clip=0, layer=-1, *, ax=None, title: str | None = None, standardize: bool = True,
                  cmap: str = "magma", colorbar: bool = True):
    """One layer's frame-level features of one clip as a (dim × time) image.

    Each frame is drawn at its time (``feats.frame_times(clip)``, seconds from the clip's start), so
    the image lines up with :func:`~m2v_lab.plot.waveform` and :func:`~m2v_lab.plot.spectrogram`
    on a shared x axis, windows of a long clip included.

    Parameters
    ----------
    feats : Features
        Extracted with ``pool=None``.
    clip : int or str
        Clip position (negative from the end) or clip id.
    layer : int or str
        A layer name, or an index among the model's states (negative from the end), as in
        ``feats.select(layers=...)``.
    ax : matplotlib Axes, optional
        Drawn on; a new figure's axes if None.
    title : str, optional
        Default: model, trained or not (``feats.model_label``), layer and clip, e.g.
        ``"music2vec-v1 · trained · block 6 · notes/c4"``.
    standardize : bool
        Z-score each dimension over time, so that a few large dimensions do not wash out the rest
        (transformer states carry a handful of very large ones); the colour scale is then ±3.
    cmap : str
    colorbar : bool
        Turn off to keep stacked axes the same width.

    Returns
    -------
    matplotlib Axes
        Dimension 0 at the top.

    Raises
    ------
    OptionError
        An unknown layer or an index out of range.
    FeaturesError
        Pooled features, a layer they do not hold, or an unknown clip.
    """
    one = feats.select(layers=[layer], clips=[clip])
    if title is None:
        model = one.model_label or str(one.meta.get("model"))
        title = f"{model} · {layer_label(one.layer_names[0])} · {one.clips[0]}"
    return frame_image(one.frames(0)[0], one.frame_times(0), ax=ax, title=title, standardize=standardize, cmap=cmap,
                       colorbar=colorbar)


def clip_features(feats, clip, wave, *, layers=(0, -1), sample_rate: int | None = None, fig=None,
                  height: float = 2.2, width: float = 9.0):
    """A clip's spectrogram above the feature images of some of its layers, on one time axis.

    What the model heard and what each layer made of it, frame under frame: an onset in the
    spectrogram sits above the frames it changes.

    Parameters
    ----------
    feats : Features
        Extracted with ``pool=None``.
    clip : int or str
        Clip position or clip id, as in :func:`feature_image`.
    wave : array_like, shape (samples,)
        The clip's waveform at ``sample_rate`` (e.g. ``m2v.audio.load(path, sample_rate=model.sample_rate)``).
    layers : sequence of int or str
        Layers to draw, top to bottom (indices among the model's states or names).
    sample_rate : int, optional
        Rate of ``wave``; default the features' (the model's) rate.
    fig : matplotlib Figure, optional
        Drawn on; a new pyplot figure if None.

    Returns
    -------
    np.ndarray of matplotlib Axes, shape (1 + len(layers),)
        The spectrogram's, then each layer's.  The figure's title names the model, trained or
        untrained (``feats.model_label``), and the clip.
    """
    from .clips import spectrogram

    layers = list(layers)
    rate = int(sample_rate or feats.meta["sample_rate"])
    if fig is None:
        import matplotlib.pyplot as plt

        fig = plt.figure(figsize=(width, height * (1 + len(layers))), layout="constrained")
    axes = fig.subplots(1 + len(layers), 1, sharex=True, squeeze=False)[:, 0]
    spectrogram(wave, rate, ax=axes[0], title=f"spectrogram at {rate} Hz (what the model hears)")
    # a colour bar on every row keeps the rows' time axes the same width
    fig.colorbar(axes[0].collections[-1], ax=axes[0], label="dB below peak", pad=0.01)
    for ax, layer in zip(axes[1:], layers):
        one = feats.select(layers=[layer], clips=[clip])
        frame_image(one.frames(0)[0], one.frame_times(0), ax=ax, title=layer_label(one.layer_names[0]),
                    colorbar=True)
    for ax in axes[:-1]:
        ax.set_xlabel("")
    axes[0].set_xlim(0, np.asarray(wave).size / rate)
    name = feats.select(clips=[clip]).clips[0]
    fig.suptitle(f"{feats.model_label or feats.meta.get('model')} · {name}")
    return axes


def frame_features(frames, times, *, ax=None, standardize: bool = True, title: str | None = None,
                   cmap: str = "magma", colorbar: bool = False):
    """Deprecated: :func:`feature_image` draws this image from Features; this older name takes arrays.

    Parameters
    ----------
    frames : array_like, shape (frames, dim)
        One layer of one clip, e.g. ``feats.frames(clip)[layer]``.
    times : array_like, shape (frames,)
        Each frame's time in seconds (``feats.frame_times(clip)``).

    Returns
    -------
    matplotlib Axes
    """
    warnings.warn("frame_features(frames, times) is deprecated: use feature_image(feats, clip, layer), which "
                  "draws the same image from Features.", DeprecationWarning, stacklevel=2)
    return frame_image(frames, times, ax=ax, title=title, standardize=standardize, cmap=cmap, colorbar=colorbar)


def frame_image(frames, times, *, ax=None, title: str | None = None, standardize: bool = True, cmap: str = "magma",
                colorbar: bool = True):
    """The drawing behind :func:`feature_image`, from arrays: ``frames`` (frames, dim) at ``times`` (frames,).

    For views that hold a clip's frames already (the clip browser reads them once per clip, not
    once per layer drawn); notebooks call :func:`feature_image`.

    Raises
    ------
    AnalysisError
        ``frames`` is not (frames, dim) with one time per frame.
    """
    from matplotlib.image import NonUniformImage

    image = np.asarray(frames, dtype=np.float64)
    times = np.asarray(times, dtype=np.float64)
    if image.ndim != 2 or image.shape[0] != times.size or image.shape[0] == 0:
        raise AnalysisError(f"frames must be (frames, dim) with one time per frame; got frames {image.shape} "
                            f"and {times.size} times.")
    ax = axes_for(ax, size=(8, 3))
    image = image.T
    if standardize:
        image = (image - image.mean(axis=1, keepdims=True)) / (image.std(axis=1, keepdims=True) + 1e-8)
    # An image placed at each frame's own time: windows of a long clip leave a gap that a plain
    # imshow would stretch away, and it draws 4x faster than a pcolormesh of the same cells.
    half = np.median(np.diff(times)) / 2 if times.size > 1 else 0.5  # one frame: any width shows it
    extent = (times[0] - half, times[-1] + half, image.shape[0] - 0.5, -0.5)
    # the extent is what layout engines measure; the pixels follow the times given to set_data
    picture = NonUniformImage(ax, interpolation="nearest", cmap=cmap, extent=extent)
    picture.set_data(times, np.arange(image.shape[0]), image)
    picture.set_clim(*((-3, 3) if standardize else (image.min(), image.max())))
    ax.add_image(picture)
    if ax.get_autoscalex_on():  # keep limits an axis shared with a waveform already has
        ax.set_xlim(extent[:2])
    ax.set_ylim(extent[2:])
    ax.set(xlabel="time (s)", ylabel="feature dimension")
    if title:
        ax.set_title(title)
    if colorbar:
        ax.figure.colorbar(picture, ax=ax, label="z-score over time" if standardize else "value", pad=0.01)
    return ax
