"""Reference solution of notebook 06 (the explorer): which layers a probe run cannot tell from the best."""

from __future__ import annotations

import pandas as pd

__all__ = ["tied_with_best"]


def tied_with_best(summary: pd.DataFrame, metric: str = "accuracy") -> list[str]:
    """The layers whose interval reaches the best layer's mean score, in layer order (the best included).

    A probe run ranks layers by their mean score over folds; with a hundred-odd clips the intervals
    are wide, and a layer whose interval reaches the best layer's mean is one these clips cannot tell
    apart from the best.  "The best layer" is then a set, not a single layer.

    Parameters
    ----------
    summary : DataFrame
        One probe run's ``ProbeResult.summary()`` (or the rows of ``ProbeExplorer.table`` for one
        run): columns ``layer``, ``layer_name``, ``metric``, ``mean`` and ``ci_high``.
    metric : str
        Which metric's rows to read.

    Returns
    -------
    list of str
        Layer names, ordered by ``layer``.
    """
    rows = summary[summary["metric"] == metric].sort_values("layer")
    if rows.empty:
        raise ValueError(f"summary has no rows for metric {metric!r} (it has {sorted(summary['metric'].unique())})")
    best = rows["mean"].max()
    return rows.loc[rows["ci_high"] >= best, "layer_name"].tolist()
