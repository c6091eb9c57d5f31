"""Reference solution of notebook 04's exercise (layer similarity): the distance profile."""

import numpy as np


def distance_profile(values):
    """Mean similarity of layers d apart, for d = 1 … layers - 1 (a 1-D array of length layers - 1).

    ``values`` is a square layers × layers map (``result.values``).  The d-th off-diagonal holds the
    pairs (i, i + d); the map is symmetric, so one triangle is enough.  NaN cells (constant layers)
    are skipped.
    """
    values = np.asarray(values, dtype=float)
    return np.array([np.nanmean(np.diagonal(values, offset=d)) for d in range(1, len(values))])
