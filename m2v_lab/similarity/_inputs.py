"""Turning what users pass (arrays, Features, chunk streams) into checked layer stacks."""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from ..errors import AnalysisError, M2VLabError

__all__ = [
    "Stack",
    "as_stack",
    "as_stacks",
    "is_stream",
    "iter_chunk_pairs",
    "frame_stream",
    "default_layer_names",
    "constant_layers",
    "warn_constant",
]


def default_layer_names(n_layers: int) -> list[str]:
    """Names used for a bare array: ``pre_transformer``, ``block_1``, ... ."""
    return ["pre_transformer"] + [f"block_{i}" for i in range(1, n_layers)]


@dataclass(frozen=True)
class Stack:
    """Checked features of one model.

    Attributes
    ----------
    data : ndarray, shape (layers, n, dim)
        Floating point features, finite.
    names : tuple of str, length layers
    label : str
        How error messages refer to this input (``"A"`` or ``"B"``).
    """

    data: np.ndarray
    names: tuple[str, ...]
    label: str

    @property
    def n(self) -> int:
        return self.data.shape[1]


def is_stream(obj) -> bool:
    """True for an iterator, or a list/tuple of ``(layers, n_chunk, dim)`` arrays."""
    if isinstance(obj, Iterator):
        return True
    return isinstance(obj, (list, tuple)) and len(obj) > 0 and getattr(obj[0], "ndim", None) == 3


def _names(given: Sequence[str] | None, from_obj, n_layers: int, label: str) -> tuple[str, ...]:
    names = given if given is not None else from_obj
    names = tuple(default_layer_names(n_layers) if names is None else (str(s) for s in names))
    if len(names) != n_layers:
        raise AnalysisError(
            f"{label} has {n_layers} layers but {len(names)} layer names {names!r}; "
            "pass one name per layer (or none for the defaults)."
        )
    return names


def _checked_array(arr, label: str, what: str) -> np.ndarray:
    arr = np.asarray(arr)
    if arr.ndim != 3:
        raise AnalysisError(
            f"{label} {what} has shape {arr.shape}; expected (layers, n, dim). "
            "For a single layer X of shape (n, dim) pass X[None]."
        )
    if arr.dtype.kind in "biu":
        arr = arr.astype(np.float64)
    elif arr.dtype.kind != "f":
        raise AnalysisError(f"{label} {what} has dtype {arr.dtype}; pass real floating point features.")
    finite = np.isfinite(arr).all(axis=(1, 2))
    if not finite.all():
        raise AnalysisError(
            f"{label} {what} holds NaN or inf in layer {int(np.argmin(finite))}; "
            "remove or impute those samples before comparing layers."
        )
    return arr


def as_stack(obj, *, label: str, names: Sequence[str] | None = None) -> Stack:
    """Check an array ``(layers, n, dim)`` or an object with ``.pooled`` and ``.layer_names``.

    Raises
    ------
    AnalysisError
        Wrong number of dimensions, non-float or non-finite values, too few samples,
        or as many names as layers not given.
    """
    if is_stream(obj):
        raise AnalysisError(
            f"{label} is a stream of chunks; only method='feature' or 'minibatch' of measure='cka' "
            "accept streams. Pass an array (layers, n, dim) for this analysis."
        )
    arr = _checked_array(getattr(obj, "pooled", obj), label, "features")
    if arr.shape[1] < 2:
        raise AnalysisError(f"{label} has shape {arr.shape}: need at least 2 samples (axis 1).")
    return Stack(arr, _names(names, getattr(obj, "layer_names", None), arr.shape[0], label), label)


def frame_stream(obj, names: Sequence[str] | None):
    """``(chunks, names)`` for Features that hold frames only, else ``(obj, names)`` unchanged.

    The chunks are ``obj.frames(i)`` for each clip in order, ``(layers, frames_i, dim)``.
    """
    if isinstance(obj, np.ndarray) or not all(hasattr(obj, a) for a in ("frames", "layer_names", "__len__")):
        return obj, names
    try:
        obj.pooled
    except M2VLabError:
        return (obj.frames(i) for i in range(len(obj))), (obj.layer_names if names is None else names)
    return obj, names


def as_stacks(A, B, *, rows=None, cols=None, labels=("A", "B")) -> tuple[Stack, Stack | None]:
    """Check A and, if given, B; they must hold the same samples (same n)."""
    sa = as_stack(A, label=labels[0], names=rows)
    sb = None if B is None else as_stack(B, label=labels[1], names=cols)
    if sb is not None and sb.n != sa.n:
        raise AnalysisError(
            f"{labels[0]} has shape {sa.data.shape} and {labels[1]} has shape {sb.data.shape}: both need "
            "the same samples on axis 1 (layers, n, dim)."
        )
    return sa, sb


def iter_chunk_pairs(a_chunks: Iterable, b_chunks: Iterable | None) -> Iterator[tuple[np.ndarray, np.ndarray | None]]:
    """Yield checked ``(chunk_a, chunk_b)`` pairs, each ``(layers, n_chunk, dim)``.

    Layers and dims must stay the same from chunk to chunk, and paired chunks must hold
    the same samples (same ``n_chunk``).
    """
    b_iter = None if b_chunks is None else iter(b_chunks)
    first_a = first_b = None
    for i, ca in enumerate(a_chunks):
        ca = _checked_array(ca, "A", f"chunk {i}")
        first_a = _same_layout(first_a, ca, "A", i)
        if b_iter is None:
            yield ca, None
            continue
        try:
            cb = _checked_array(next(b_iter), "B", f"chunk {i}")
        except StopIteration:
            raise AnalysisError(f"B ran out of chunks at chunk {i}; A and B must yield the same samples.") from None
        first_b = _same_layout(first_b, cb, "B", i)
        if cb.shape[1] != ca.shape[1]:
            raise AnalysisError(
                f"chunk {i}: A has shape {ca.shape} and B has shape {cb.shape}; paired chunks "
                "must hold the same samples (same n_chunk on axis 1)."
            )
        yield ca, cb
    if b_iter is not None and next(b_iter, None) is not None:
        raise AnalysisError("B yields more chunks than A; A and B must yield the same samples.")


def _same_layout(first: tuple | None, chunk: np.ndarray, label: str, i: int) -> tuple:
    layout = (chunk.shape[0], chunk.shape[2])
    if first is not None and layout != first:
        raise AnalysisError(
            f"{label} chunk {i} has shape {chunk.shape}, but earlier chunks had "
            f"{first[0]} layers of dim {first[1]}; every chunk must be (layers, n_chunk, dim)."
        )
    return layout


def constant_layers(data: np.ndarray) -> np.ndarray:
    """``(layers,)`` bool: True where every feature takes a single value over the samples."""
    return (data.max(axis=1) == data.min(axis=1)).all(axis=1)


def warn_constant(
    names: Sequence[str], which: np.ndarray, label: str, n: int, reason: str | None = None, stacklevel: int = 4
) -> None:
    """Warn once per input about layers whose similarities are NaN, naming them."""
    bad = [names[i] for i in np.flatnonzero(which)]
    if bad:
        reason = reason or f"have zero variance over the n={n} samples"
        warnings.warn(
            f"layer(s) {', '.join(map(repr, bad))} of {label} {reason}; their similarities are NaN.",
            RuntimeWarning,
            stacklevel=stacklevel,
        )
