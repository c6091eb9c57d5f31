"""Heatmap of a layers × layers :class:`~m2v_lab.similarity.SimilarityResult`."""

from __future__ import annotations

import math

import numpy as np

from ..errors import OptionError
from ..options import real_number
from ._axes import axes_for, layer_ticks

__all__ = ["similarity_heatmap", "cell_colours", "colour_scale_css"]

_CORRECTED = {"fwer": "FWER-adjusted p", "fdr": "FDR-adjusted p", "none": "p (not adjusted)"}


def _nonsignificant(result, alpha) -> np.ndarray:
    """``(layers_A, layers_B)`` bool: cells whose adjusted p-value exceeds ``alpha`` (untested cells: False)."""
    real_number("mask_nonsignificant", alpha, low=0, high=1, hint=" (the significance level, e.g. 0.05)")
    if getattr(result, "p_adjusted", None) is None:
        raise OptionError("mask_nonsignificant needs p-values: this result holds none; use the result of "
                          "permutation_test(...).")
    with np.errstate(invalid="ignore"):
        return np.asarray(result.p_adjusted, dtype=float) > alpha


def similarity_heatmap(result, ax=None, *, annotate: bool | None = None, cmap: str = "viridis", colorbar: bool = True,
                       mask_nonsignificant: float | None = None, vmin: float | str = 0.0):
    """Draw ``result.values`` on a fixed 0–1 colour scale, so maps can be compared by eye.

    ``vmin="data"`` stretches the scale over the map's own range instead (for a map whose
    values all lie between, say, 0.6 and 1: contrast within the map, at the price of
    comparing colours across maps); the colour bar then starts at that value.

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
    vmin : float or "data"
        The value of the lowest colour (the highest is always 1); "data": the map's
        minimum rounded down to 0.05 (at most 0.95).
    mask_nonsignificant : float in (0, 1), optional
        Blank (white, unannotated) the cells whose ``result.p_adjusted`` exceeds this level,
        e.g. 0.05; the title says which adjustment (``permutation_test``'s ``correction``).
        Cells not tested (the diagonal of a within-model map) are drawn.

    Returns
    -------
    matplotlib Axes
        Title: the measure, its estimator and n (``result.title``).  With a mask, its image is
        ``ax.images[1]`` (opaque where a cell is masked).

    Raises
    ------
    OptionError
        ``mask_nonsignificant`` outside (0, 1), or given for a result without p-values.
    """
    import matplotlib
    from matplotlib.colors import ListedColormap

    hidden = None if mask_nonsignificant is None else _nonsignificant(result, mask_nonsignificant)
    ax = axes_for(ax, size=(5.5, 4.5))
    values = np.asarray(result.values, dtype=float)
    colours = matplotlib.colormaps[cmap].with_extremes(bad="0.85")
    low = _lowest(values, vmin)
    image = ax.imshow(values, vmin=low, vmax=1.0, cmap=colours, origin="lower", aspect="auto")
    title = result.title
    if hidden is not None:
        ax.imshow(np.ma.masked_array(np.zeros(values.shape), mask=~hidden), cmap=ListedColormap(["white"]),
                  vmin=0.0, vmax=1.0, origin="lower", aspect="auto")  # fmt: skip
        which = _CORRECTED.get(result.details.get("correction"), "adjusted p")
        title += f"\nblank: {which} > {mask_nonsignificant:g}"
    layer_ticks(ax, result.cols, axis="x")
    layer_ticks(ax, result.rows, axis="y")
    same = tuple(result.rows) == tuple(result.cols)
    ax.set_xlabel("layer" if same else "layer of B")
    ax.set_ylabel("layer" if same else "layer of A")
    ax.set_title(title)
    if annotate if annotate is not None else values.size <= 169:
        for (i, j), v in np.ndenumerate(values):
            if np.isfinite(v) and (hidden is None or not hidden[i, j]):
                dark = (v - low) / (1.0 - low) < 0.6
                ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=7, color="white" if dark else "black")
    if colorbar:
        below = bool((values[np.isfinite(values)] < low).any())
        ax.figure.colorbar(image, ax=ax, extend="min" if below else "neither", label=result.measure.upper().replace("_", " "))
    return ax


def _lowest(values: np.ndarray, vmin) -> float:
    if isinstance(vmin, str):
        if vmin != "data":
            raise OptionError(f'vmin={vmin!r}: use a number below 1 or "data".')
        finite = values[np.isfinite(values)]
        return float(min(np.floor(finite.min() * 20) / 20, 0.95)) if finite.size else 0.0
    return real_number("vmin", vmin, low=-math.inf, high=1.0, hint=" (the value of the lowest colour; the highest is 1)")


def cell_colours(values, *, cmap: str = "viridis") -> np.ndarray:
    """The colour :func:`similarity_heatmap` gives each cell, as ``"#rrggbb"`` text (for HTML and widgets).

    Same fixed 0–1 scale: values below 0 take the lowest colour, above 1 the highest, NaN is grey.

    Parameters
    ----------
    values : array_like
        E.g. ``result.values``.
    cmap : str

    Returns
    -------
    ndarray of str, the shape of ``values``
    """
    import matplotlib
    from matplotlib.colors import to_hex

    values = np.asarray(values, dtype=float)
    colours = matplotlib.colormaps[cmap].with_extremes(bad="0.85")
    rgba = colours(np.ma.masked_invalid(np.clip(values, 0.0, 1.0)))
    return np.array([to_hex(c) for c in rgba.reshape(-1, 4)], dtype=object).reshape(values.shape)


def colour_scale_css(cmap: str = "viridis", *, steps: int = 9) -> str:
    """A CSS ``linear-gradient`` from the colour of 0 to that of 1 (a colour bar for HTML)."""
    stops = cell_colours(np.linspace(0.0, 1.0, steps), cmap=cmap)
    return f"linear-gradient(to right, {', '.join(stops)})"
