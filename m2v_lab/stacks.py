"""Layer stacks: the ``(layers, n, dim)`` arrays every analysis takes, checked once, one way.

Similarity and probing both accept a bare array or anything with ``.pooled`` and
``.layer_names`` (:class:`m2v_lab.Features`); :func:`layer_stack` is the one place that turns
either into a checked float array and its layer names, with errors that name the input.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from .errors import AnalysisError
from .layers import layer_names

__all__ = ["layer_stack", "default_layer_names"]


def default_layer_names(n_layers: int) -> tuple[str, ...]:
    """The names a bare array of ``n_layers`` states gets: ``pre_transformer, block_1 …``."""
    return layer_names(n_layers - 1)


def layer_stack(obj, *, name: str = "features", names: Sequence[str] | None = None,
                allow_single_layer: bool = False, min_samples: int = 1) -> tuple[np.ndarray, tuple[str, ...]]:
    """A checked layers-first array and its layer names.

    Parameters
    ----------
    obj : array_like, shape (layers, n, dim), or an object with ``.pooled`` and ``.layer_names``
        Features of ``n`` samples at each layer.
    name : str
        How error messages call this input (``"A"``, ``"features"`` …).
    names : sequence of str, optional
        Layer names; default the object's own, else :func:`default_layer_names`.
    allow_single_layer : bool
        Accept ``(n, dim)`` as one layer.
    min_samples : int
        Fewest samples (axis 1) the analysis can use.

    Returns
    -------
    array : ndarray, shape (layers, n, dim)
        float32 or float64 as given (integers become float64); not copied when avoidable.
    names : tuple of str, length layers

    Raises
    ------
    AnalysisError
        Wrong number of dimensions, empty, not real numbers, NaN or inf (naming the layer and
        the first sample), too few samples, or not one name per layer.
    """
    if hasattr(obj, "pooled"):
        if names is None:
            names = getattr(obj, "layer_names", None)
        obj = obj.pooled
    arr = np.asarray(obj)
    if arr.ndim == 2 and allow_single_layer:
        arr = arr[None]
    if arr.ndim != 3:
        single = " or (n, dim) for one layer" if allow_single_layer else "; for one layer X (n, dim) pass X[None]"
        raise AnalysisError(f"{name} must be shaped (layers, n, dim){single}; got shape {arr.shape}.")
    if arr.dtype == bool or not np.issubdtype(arr.dtype, np.number) or np.iscomplexobj(arr):
        raise AnalysisError(f"{name} must hold real numbers; got dtype {arr.dtype}.")
    if arr.dtype not in (np.float32, np.float64):
        arr = arr.astype(np.float64)
    if min(arr.shape) == 0:
        raise AnalysisError(f"{name} is empty (shape {arr.shape}): need at least one layer, sample and dim.")
    if arr.shape[1] < min_samples:
        raise AnalysisError(f"{name} has {arr.shape[1]} samples (axis 1 of shape {arr.shape}); this analysis "
                            f"needs at least {min_samples}.")
    names = default_layer_names(arr.shape[0]) if names is None else tuple(str(s) for s in names)
    if len(names) != arr.shape[0]:
        raise AnalysisError(f"{name} has {arr.shape[0]} layers but {len(names)} layer names {names!r}; pass one "
                            "name per layer (or none for the defaults).")
    finite = np.isfinite(arr).all(axis=(1, 2))
    if not finite.all():
        layer = int(np.argmin(finite))
        bad = ~np.isfinite(arr[layer])
        rows = np.flatnonzero(bad.any(axis=1))
        kind = "NaN" if np.isnan(arr[layer][bad]).any() else "inf"
        raise AnalysisError(
            f"{name} contain {kind} at layer {layer} ({names[layer]!r}): {int(bad.sum())} values in {rows.size} "
            f"samples (first at sample {rows[0]}); drop or impute those samples first.")
    return arr, names
