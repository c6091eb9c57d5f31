"""Reading layers × layers maps: how similarity falls with layer distance, which layer of B matches
each layer of A, and whether two intervals separate.

Used by the course notebooks 04 (layer similarity) and 05 (comparing models)::

    from m2v_lab.similarity import compare, layer_similarity
    within = layer_similarity(feats)
    compare.distance_profile(within)            # mean CKA of layers 1, 2, … apart
    compare.layer_matching(layer_similarity(feats_a, feats_b))   # best layer of B per layer of A
"""

from __future__ import annotations

import numpy as np

from ..errors import AnalysisError

__all__ = ["distance_profile", "adjacent_vs_distant", "layer_matching", "interval_verdict"]


def _values(result) -> np.ndarray:
    values = np.asarray(getattr(result, "values", result), dtype=float)
    if values.ndim != 2:
        raise AnalysisError(f"a layers × layers map is 2-D; got shape {values.shape}.")
    return values


def distance_profile(result):
    """Mean similarity of layers ``d`` apart, for ``d = 1 … layers - 1``, of a within-model map.

    Parameters
    ----------
    result : SimilarityResult or array_like, shape (layers, layers)
        A square map (a model against itself); NaN cells (constant layers) are left out.

    Returns
    -------
    pandas.Series
        Indexed by the distance ``d`` (name ``"distance"``): the mean of the map's ``d``-th
        off-diagonal (both triangles).  Empty for a one-layer map.

    Raises
    ------
    AnalysisError
        The map is not square.
    """
    import pandas as pd

    values = _values(result)
    if values.shape[0] != values.shape[1]:
        raise AnalysisError(f"distance_profile needs a within-model (square) map; got {values.shape}.")
    sym = (values + values.T) / 2
    means = []
    for d in range(1, values.shape[0]):
        diagonal = np.diagonal(sym, offset=d)
        finite = diagonal[np.isfinite(diagonal)]
        means.append(float(finite.mean()) if finite.size else np.nan)
    return pd.Series(means, index=pd.RangeIndex(1, values.shape[0], name="distance"), name="mean similarity",
                     dtype=float)


def adjacent_vs_distant(result) -> tuple[float, float]:
    """``(adjacent, distant)``: the mean similarity of neighbouring layers (``d = 1``) and of
    layers at least two apart (every such pair weighs the same).

    A model whose layers form blocks has neighbours far more alike than distant layers; a map
    that is high everywhere has the two close.

    Raises
    ------
    AnalysisError
        Fewer than three layers (no pair two apart), or a map that is not square.
    """
    values = _values(result)
    if values.shape[0] != values.shape[1] or values.shape[0] < 3:
        raise AnalysisError(f"adjacent_vs_distant needs a square map of at least 3 layers; got {values.shape}.")
    sym = (values + values.T) / 2
    i, j = np.triu_indices(values.shape[0], k=1)
    gap = j - i
    cells = sym[i, j]
    ok = np.isfinite(cells)
    return float(cells[ok & (gap == 1)].mean()), float(cells[ok & (gap >= 2)].mean())


def layer_matching(result):
    """For each layer of A (a row), the layer of B (a column) most similar to it.

    Parameters
    ----------
    result : SimilarityResult
        A map of model A (rows) against model B (columns), e.g. ``layer_similarity(feats_a, feats_b)``.

    Returns
    -------
    pandas.DataFrame
        One row per layer of A: ``layer`` (its name), ``match`` (B's best layer's name),
        ``match_index``, ``value`` (the similarity there), ``depth`` and ``match_depth``
        (relative depth, 0 for the first layer and 1 for the last, so models of different
        depths compare).  A row that is all NaN gets no match (``match_index`` -1).
    """
    import pandas as pd

    values = _values(result)
    rows = list(getattr(result, "rows", range(values.shape[0])))
    cols = list(getattr(result, "cols", range(values.shape[1])))
    records = []
    for i, row in enumerate(values):
        finite = np.isfinite(row)
        j = int(np.nanargmax(np.where(finite, row, -np.inf))) if finite.any() else -1
        records.append({
            "layer": rows[i],
            "match": cols[j] if j >= 0 else None,
            "match_index": j,
            "value": float(row[j]) if j >= 0 else np.nan,
            "depth": i / max(values.shape[0] - 1, 1),
            "match_depth": j / max(values.shape[1] - 1, 1) if j >= 0 else np.nan,
        })  # fmt: skip
    return pd.DataFrame(records)


def interval_verdict(low_a: float, high_a: float, low_b: float, high_b: float) -> str:
    """``"above"`` when interval A lies wholly above interval B, ``"below"`` when wholly below,
    else ``"overlap"`` (no difference these intervals can show)."""
    if low_a > high_b:
        return "above"
    if high_a < low_b:
        return "below"
    return "overlap"
