"""Scatter of a 2-D :class:`~m2v_lab.projection.Projection`, coloured by a label column."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..errors import AnalysisError
from ._axes import axes_for

__all__ = ["projection_scatter"]

_MISSING_COLOUR = "0.75"


def projection_scatter(projection, labels=None, *, ax=None, title: str | None = None, legend: bool = True,
                       max_classes: int = 20, label_name: str | None = None, size: float = 18):
    """One dot per sample at its projected position, coloured by its label.

    Parameters
    ----------
    projection : Projection or array_like, shape (n, 2)
        From :func:`m2v_lab.projection.project` (its axis labels and title are used).
    labels : array_like, shape (n,), optional
        Up to ``max_classes`` distinct values are drawn as categories (one colour each, with a
        legend); numbers with more distinct values get a continuous colour scale and a colour
        bar.  Missing labels (NaN / None) are grey.
    ax : matplotlib Axes, optional
    title : str, optional
        Default: the projection's title.
    legend : bool
    max_classes : int
    label_name : str, optional
        Legend / colour-bar title; default the Series' name.
    size : float
        Marker area.

    Returns
    -------
    matplotlib Axes
    """
    import matplotlib

    coords = np.asarray(getattr(projection, "coords", projection), dtype=float)
    if coords.ndim != 2 or coords.shape[1] != 2:
        raise AnalysisError(f"projection must be (n, 2) coordinates; got shape {coords.shape}.")
    ax = axes_for(ax, size=(4.5, 4))
    if labels is None:
        ax.scatter(coords[:, 0], coords[:, 1], s=size, color="C0", linewidths=0)
    else:
        series = labels if isinstance(labels, pd.Series) else pd.Series(np.asarray(labels, dtype=object))
        if len(series) != len(coords):
            raise AnalysisError(f"{len(series)} labels for {len(coords)} points: pass one label per sample.")
        label_name = label_name or series.name
        missing = series.isna().to_numpy()
        values = series.to_numpy(dtype=object)
        if missing.any():
            ax.scatter(coords[missing, 0], coords[missing, 1], s=size, color=_MISSING_COLOUR, linewidths=0,
                       label=f"missing ({missing.sum()})")
        present = pd.Series(values[~missing])
        numbers = pd.to_numeric(present, errors="coerce")
        if numbers.notna().all() and present.nunique() > max_classes:
            points = ax.scatter(coords[~missing, 0], coords[~missing, 1], c=numbers.to_numpy(float), s=size,
                                cmap="viridis", linewidths=0)
            ax.figure.colorbar(points, ax=ax, label=label_name, pad=0.01)
        else:
            classes = sorted(present.unique(), key=_sort_key)
            shown, rest = classes[:max_classes], set(classes[max_classes:])
            colours = matplotlib.colormaps["tab10" if len(shown) <= 10 else "tab20"]
            for i, value in enumerate(shown):
                hit = np.array([not m and v == value for v, m in zip(values, missing)], dtype=bool)
                ax.scatter(coords[hit, 0], coords[hit, 1], s=size, color=colours(i % colours.N), linewidths=0,
                           label=str(value))
            if rest:
                hit = np.array([not m and v in rest for v, m in zip(values, missing)], dtype=bool)
                ax.scatter(coords[hit, 0], coords[hit, 1], s=size, color="0.4", linewidths=0,
                           label=f"{len(rest)} more classes")
        if legend and ax.get_legend_handles_labels()[0]:
            ax.legend(title=label_name, fontsize="x-small", title_fontsize="small", frameon=False,
                      loc="center left", bbox_to_anchor=(1.0, 0.5), markerscale=1.2)
    xlabel, ylabel = getattr(projection, "axis_labels", ("dim 1", "dim 2"))
    ax.set(xlabel=xlabel, ylabel=ylabel, title=title if title is not None else getattr(projection, "title", ""))
    ax.set_xticks([])
    ax.set_yticks([])
    return ax


def _sort_key(value):
    """Numbers in numeric order before strings in text order (labels may mix both)."""
    return (0, float(value), "") if isinstance(value, (int, float, np.integer, np.floating)) else (1, 0.0, str(value))
