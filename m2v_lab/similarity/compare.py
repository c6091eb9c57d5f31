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

__all__ = ["distance_profile", "adjacent_vs_distant", "layer_matching", "interval_verdict", "estimators_by_n"]


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
        ``match_index``, ``value`` (the similarity there), ``margin`` (how far it beats the
        runner-up of its row: a match by a few thousandths is a match by noise; NaN with a
        single finite cell), ``depth`` and ``match_depth`` (relative depth, 0 for the first
        layer and 1 for the last, so models of different depths compare).  A row that is all
        NaN gets no match (``match_index`` -1).
    """
    import pandas as pd

    values = _values(result)
    rows = list(getattr(result, "rows", range(values.shape[0])))
    cols = list(getattr(result, "cols", range(values.shape[1])))
    records = []
    for i, row in enumerate(values):
        finite = np.isfinite(row)
        j = int(np.nanargmax(np.where(finite, row, -np.inf))) if finite.any() else -1
        ranked = np.sort(row[finite])
        records.append({
            "layer": rows[i],
            "match": cols[j] if j >= 0 else None,
            "match_index": j,
            "value": float(row[j]) if j >= 0 else np.nan,
            "margin": float(ranked[-1] - ranked[-2]) if ranked.size >= 2 else np.nan,
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


def estimators_by_n(X, Y, sizes, *, repeats: int = 20, seed: int = 0):
    """Biased and debiased linear CKA of ``X`` and ``Y`` on random subsets of ``n`` samples, paired
    and shuffled (the null: the same features, the pairing of samples broken).

    Parameters
    ----------
    X, Y : array_like, shape (N, dim_X) and (N, dim_Y)
        The same N samples (e.g. clips) in two representations.
    sizes : sequence of int
        Subset sizes, each between 4 and N.
    repeats : int
        Random subsets per size (each drawn without replacement; the shuffled pairing permutes
        Y's rows within the subset).
    seed : int

    Returns
    -------
    pandas.DataFrame
        One row per (n, pairing, estimator): ``n``, ``pairing`` (``"paired"`` or
        ``"shuffled"``), ``estimator`` (``"biased"`` or ``"debiased"``), ``mean`` and ``sd`` over
        the subsets.
    """
    import pandas as pd

    from .cka import cka

    X, Y = np.asarray(X, dtype=float), np.asarray(Y, dtype=float)
    if len(X) != len(Y):
        raise AnalysisError(f"X and Y must hold the same samples; got {len(X)} and {len(Y)} rows.")
    rng = np.random.default_rng(seed)
    records = []
    for n in sizes:
        if not 4 <= n <= len(X):
            raise AnalysisError(f"subset size {n}: need 4 ≤ n ≤ {len(X)} (debiased CKA needs at least 4 samples).")
        values = {(p, e): [] for p in ("paired", "shuffled") for e in ("biased", "debiased")}
        for _ in range(repeats):
            idx = rng.choice(len(X), size=n, replace=False)
            for pairing, other in (("paired", idx), ("shuffled", rng.permutation(idx))):
                for estimator in ("biased", "debiased"):
                    values[pairing, estimator].append(cka(X[idx], Y[other], debiased=estimator == "debiased"))
        for (pairing, estimator), v in values.items():
            records.append({"n": int(n), "pairing": pairing, "estimator": estimator, "mean": float(np.mean(v)),
                            "sd": float(np.std(v, ddof=1)) if len(v) > 1 else np.nan})
    return pd.DataFrame(records)
