"""Heatmap of a layers × layers :class:`~m2v_lab.similarity.SimilarityResult`."""

from __future__ import annotations

import re

import matplotlib.pyplot as plt
import numpy as np

__all__ = ["similarity_heatmap", "layer_label"]


def layer_label(name: str) -> str:
    """Tick label of a layer: ``"pre_transformer"`` → ``"0 (pre-transformer)"``, ``"block_7"`` → ``"7"``."""
    if name == "pre_transformer":
        return "0 (pre-transformer)"
    match = re.fullmatch(r"block_(\d+)", name)
    return match.group(1) if match else name


def similarity_heatmap(result, ax=None, *, annotate: bool | None = None, cmap: str = "viridis", colorbar: bool = True):
    """Draw ``result.values`` on a fixed 0–1 colour scale, so maps can be compared by eye.

    Parameters
    ----------
    result : SimilarityResult
        Rows are A's layers (y axis), columns B's (x axis).
    ax : matplotlib Axes, optional
        Drawn on; a new figure's axes if None.
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
    if ax is None:
        _, ax = plt.subplots(figsize=(5.5, 4.5))
    values = np.asarray(result.values, dtype=float)
    colours = plt.get_cmap(cmap).with_extremes(bad="0.85")
    image = ax.imshow(values, vmin=0.0, vmax=1.0, cmap=colours, origin="lower", aspect="auto")
    ax.set_xticks(range(values.shape[1]), [layer_label(c) for c in result.cols], rotation=90)
    ax.set_yticks(range(values.shape[0]), [layer_label(r) for r in result.rows])
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
