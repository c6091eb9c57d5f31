"""Reference solution of notebook 02's exercise: selectivity by hand.

Selectivity (Hewitt & Liang, 2019) is a layer's real-task score minus its control-task score: what
the probe reads about the *property*, beyond what it can memorise about the groups.
:meth:`ProbeResult.selectivity` computes it (with an interval); here it is from the tidy scores.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["selectivity"]


def selectivity(scores: pd.DataFrame, metric: str = "accuracy") -> np.ndarray:
    """Per layer: the mean ``metric`` of the real task minus that of the control task.

    Parameters
    ----------
    scores : DataFrame
        ``ProbeResult.scores``: one row per source, layer, seed, fold and metric (columns
        ``source, layer, layer_name, seed, fold, metric, value``), with ``source`` "model" for
        the real task and "control" for the control task.
    metric : str

    Returns
    -------
    ndarray, shape (layers,)
        In layer order.
    """
    rows = scores[scores["metric"] == metric]
    mean = {source: rows[rows["source"] == source].groupby("layer")["value"].mean() for source in ("model", "control")}
    return (mean["model"] - mean["control"]).sort_index().to_numpy()
