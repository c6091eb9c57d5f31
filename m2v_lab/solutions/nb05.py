"""Reference solution of notebook 05's exercise (comparing models): the best-matching layer."""

import numpy as np


def best_match(values):
    """For each row (a layer of model A), the column (a layer of model B) with the highest similarity.

    ``values`` is a layers_A × layers_B map (``result.values``); returns an int array of length
    layers_A.  NaN cells (constant layers) never win.
    """
    values = np.asarray(values, dtype=float)
    return np.nanargmax(np.where(np.isnan(values), -np.inf, values), axis=1)
