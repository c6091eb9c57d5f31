"""Heatmap of a layers × layers :class:`~m2v_lab.similarity.SimilarityResult`."""

from __future__ import annotations

import numpy as np

from ._axes import axes_for, layer_ticks

__all__ = ["similarity_heatmap"]


def similarity_heatmap(result, ax=None, *, annotate: bool | None = None, cmap: str = "viridis", colorbar: bool = True):
    """Draw ``result.values`` on a fixed 0–1 colour scale, so maps can be compared by eye.

    Parameters
    ----------
    result : SimilarityResult
        Rows are A's layers (y axis), columns B's (x axis).
    ax : matplotlib Axes, optional
        Drawn on; a new figure's axes if None.  Ticks are the layers' tick labels
        (:func:`m2v_lab.layers.layer_label`: ``"0 (pre)"``, ``"1"`` …).
    annotate : bool, optional
        Write each value in its cell; default when the map has at most 13 × 13 cells.
    cmap : str
        Colormap name.  Values below 0 (possible for debiased CKA) take the lowest colour,
        marked by the colour bar's pointed end; NaN cells (constant layers) are grey.
    colorbar : bool

    Returns
    -------
    matplotlib Axes
        Title: the measure, its estimator and n (``result.title``).
    """
    import matplotlib

    ax = axes_for(ax, size=(5.5, 4.5))
    values = np.asarray(result.values, dtype=float)
    colours = matplotlib.colormaps[cmap].with_extremes(bad="0.85")
    image = ax.imshow(values, vmin=0.0, vmax=1.0, cmap=colours, origin="lower", aspect="auto")
    layer_ticks(ax, result.cols, axis="x")
    layer_ticks(ax, result.rows, axis="y")
    same = tuple(result.rows) == tuple(result.cols)
    ax.set_xlabel("layer" if same else "layer of B")
    ax.set_ylabel("layer" if same else "layer of A")
    ax.set_title(result.title)
    if annotate if annotate is not None else values.size <= 169:
        for (i, j), v in np.ndenumerate(values):
            if np.isfinite(v):
                ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=7, color="white" if v < 0.6 else "black")
    if colorbar:
        below = bool((values[np.isfinite(values)] < 0).any())
        ax.figure.colorbar(image, ax=ax, extend="min" if below else "neither", label=result.measure.upper().replace("_", " "))
    return ax
