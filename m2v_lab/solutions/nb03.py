"""Reference solution of notebook 03's exercise: how far learned layer weights are from uniform.

A softmax-weighted layer sum starts with every layer at 1/L.  The KL divergence of the learned
weights from uniform, ``Σ w log(w L)``, is 0 when they never moved and ``log L`` when one layer takes
everything.  :class:`~m2v_lab.probing.LayerSumProbe` reports its median over the fold × seed fits
as ``kl_from_uniform_`` (the median, so that one fold that wandered off cannot hide that the others
stayed put).
"""

from __future__ import annotations

import numpy as np

__all__ = ["kl_from_uniform"]


def kl_from_uniform(weights) -> float:
    """Median over fits of the KL divergence (nats) of each fit's layer weights from uniform.

    Parameters
    ----------
    weights : array_like, shape (fits, layers)
        Softmax weights, each row summing to 1 (``LayerSumProbe.weights_``).

    Returns
    -------
    float
    """
    w = np.atleast_2d(np.asarray(weights, dtype=float))
    n_layers = w.shape[1]
    terms = np.where(w > 0, w * np.log(np.where(w > 0, w, 1.0) * n_layers), 0.0)  # 0 · log 0 = 0
    return float(np.median(terms.sum(axis=1)))
