"""Draw extracted features: one layer's frames of one clip as an image over time."""

from __future__ import annotations

import numpy as np


def feature_image(feats, clip=0, layer=-1, *, ax=None, cmap="magma", standardize=True):
    """One layer's frame-level features of one clip as a (dim × time) image.

    Parameters
    ----------
    feats : Features
        Extracted with ``pool=None``.
    clip : int or str
        Clip index or id.
    layer : int or str
        Position among the held layers (negative counts from the end) or a layer name.
    standardize : bool
        Z-score each dimension over time, so that a few large dimensions do not wash out the rest
        (transformer states carry a handful of very large ones).

    Returns
    -------
    matplotlib.axes.Axes
    """
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(8, 3))
    position = feats.layer_names.index(layer) if isinstance(layer, str) else layer % feats.num_layers
    frames = feats.frames(clip)[position]  # (frames, dim)
    image = frames.T.astype(np.float64)
    if standardize:
        image = (image - image.mean(axis=1, keepdims=True)) / (image.std(axis=1, keepdims=True) + 1e-8)
    times = feats.frame_times(clip)
    extent = (times[0], times[-1], frames.shape[1], 0) if len(times) > 1 else None
    mappable = ax.imshow(image, aspect="auto", cmap=cmap, extent=extent, interpolation="nearest",
                         vmin=-3 if standardize else None, vmax=3 if standardize else None)
    name = feats.layer_names[position]
    label = f"{name} (input to block 1)" if name == "pre_transformer" else name
    clip_id = feats.clips[feats.position(clip)]
    ax.set(xlabel="time (s)", ylabel="feature dimension", title=f"{feats.meta.get('model')} · {label} · {clip_id}")
    ax.figure.colorbar(mappable, ax=ax, label="z-score over time" if standardize else "value", pad=0.01)
    return ax
