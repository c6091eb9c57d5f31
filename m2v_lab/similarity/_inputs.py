"""Turning what users pass (arrays, Features, chunk streams) into checked, paired layer stacks.

Two inputs are compared sample by sample, so their samples must be paired.  When both carry
clip ids (``.clips``, one per sample in clip-axis order, as :class:`m2v_lab.Features` do) they
are paired by id: B is put in A's clip order, and inputs that hold different clips are refused
with the ids in only one of them.  Bare arrays and chunk streams are paired by position.
Each array is checked by :func:`m2v_lab.stacks.layer_stack`, the one validator of layer stacks.
"""

from __future__ import annotations

import warnings
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace

import numpy as np

from ..errors import AnalysisError, M2VLabError
from ..options import flag, real_number
from ..stacks import layer_stack

__all__ = [
    "Stack",
    "Preprocess",
    "as_stack",
    "as_stacks",
    "is_stream",
    "ChunkPairs",
    "constant_layers",
    "warn_constant",
]

#: How many clip ids a message about different clip sets lists per side.
_SHOWN = 5


@dataclass(frozen=True)
class Stack:
    """Checked features of one model.

    Attributes
    ----------
    data : ndarray, shape (layers, n, dim)
        float32 or float64, finite.
    names : tuple of str, length layers
    label : str
        How error messages refer to this input (``"A"`` or ``"B"``).
    clips : tuple of str, length n, or None
        The samples' clip ids, when the input carried them.
    """

    data: np.ndarray
    names: tuple[str, ...]
    label: str
    clips: tuple[str, ...] | None = None

    @property
    def n(self) -> int:
        return self.data.shape[1]


@dataclass(frozen=True)
class Preprocess:
    """What is done to each layer's features before a measure sees them; checked when made.

    Attributes
    ----------
    standardize : bool
        z-score every dimension over the samples (dimensions without variance become 0), so
        that each dimension counts alike.  Linear CKA, Procrustes and RSA weigh dimensions by
        their variance: a few loud dimensions (transformer states have some, with values tens
        of times the rest) can hide everything else (three unrelated dimensions × 60 take
        linear CKA of otherwise related layers from 0.80 to 0.001).
    clip : float in (0.5, 1), optional
        Winsorise: per layer, clamp every value's deviation from its dimension's mean to ± the
        ``clip`` quantile of all the layer's absolute deviations (one threshold per layer), then
        add the means back.  This is the outlier handling of Huh et al.'s platonic-rep
        (``remove_outliers``, q = 0.95 before mutual kNN), except that platonic-rep clamps the raw
        values around 0; around the means, a layer's common offset neither decides what is an
        outlier nor is clipped away.  Applied before ``standardize``.
    """

    standardize: bool = False
    clip: float | None = None

    def __post_init__(self):
        flag("standardize", self.standardize)
        if self.clip is not None:
            real_number("clip", self.clip, low=0.5, high=1,
                        hint=" (the quantile of absolute deviations kept, e.g. 0.95 as platonic-rep)")

    @property
    def active(self) -> bool:
        return self.standardize or self.clip is not None

    def details(self) -> dict:
        """What the result's details record (nothing when inactive)."""
        return {**({"clip": self.clip} if self.clip is not None else {}),
                **({"standardize": True} if self.standardize else {})}

    def apply(self, stack: Stack) -> Stack:
        """``stack`` with its features clipped and/or standardized (float64), or itself when inactive."""
        if not self.active:
            return stack
        data = stack.data.astype(np.float64)
        for x in data:  # a layer at a time: one layer's temporaries, not the stack's
            mean = x.mean(0)
            x -= mean
            if self.clip is not None:
                limit = np.quantile(np.abs(x), self.clip)
                np.clip(x, -limit, limit, out=x)
            if self.standardize:
                x -= x.mean(0)  # clipping moved the means off zero
                sd = x.std(0)
                np.divide(x, sd, out=x, where=sd > 0)
                x[:, sd == 0] = 0.0
            else:
                x += mean
        return replace(stack, data=data)


def _frames_only(obj) -> bool:
    """True for Features that hold frames only (no ``.pooled``)."""
    if isinstance(obj, np.ndarray) or not all(hasattr(obj, a) for a in ("frames", "layer_names", "__len__")):
        return False
    try:
        obj.pooled
    except M2VLabError:
        return True
    return False


def is_stream(obj) -> bool:
    """True for an iterator, a list/tuple of ``(layers, n_chunk, dim)`` arrays, or frame-level Features."""
    if isinstance(obj, Iterator) or _frames_only(obj):
        return True
    return isinstance(obj, (list, tuple)) and len(obj) > 0 and getattr(obj[0], "ndim", None) == 3


def _clip_ids(obj, label: str, n: int) -> tuple[str, ...] | None:
    """``obj.clips`` as a tuple, checked against ``n`` samples; None for objects without clip ids."""
    clips = getattr(obj, "clips", None)
    if clips is None:
        return None
    clips = tuple(clips)
    if len(clips) != n:
        raise AnalysisError(f"{label} has {len(clips)} clip ids (.clips) for {n} samples: give one id per sample, "
                            "in clip-axis order.")
    if len(set(clips)) != n:
        repeated = [c for c, k in Counter(clips).items() if k > 1]
        raise AnalysisError(f"{label} repeats clip ids {repeated[:_SHOWN]}: clips are paired by id, so ids must be "
                            "unique.")
    return clips


def _shown(ids: list) -> str:
    more = f" and {len(ids) - _SHOWN} more" if len(ids) > _SHOWN else ""
    return f"{ids[:_SHOWN]}{more}"


def _pair_clips(ids_a, ids_b, labels: tuple[str, str]) -> tuple[np.ndarray | None, dict]:
    """Positions in B of A's clips (None: keep B as it is) and what the result's details record.

    Raises
    ------
    AnalysisError
        Both have clip ids but not the same set of them.
    """
    if ids_a is None or ids_b is None:
        return None, {}
    if ids_a == ids_b:
        return None, {"clips": "paired by clip id"}
    in_a, in_b = set(ids_a), set(ids_b)
    if in_a != in_b:
        la, lb = labels
        only_a = [c for c in ids_a if c not in in_b]
        only_b = [c for c in ids_b if c not in in_a]
        raise AnalysisError(
            f"{la} and {lb} hold different clips ({len(ids_a)} and {len(ids_b)}; {len(in_a & in_b)} shared): "
            f"{len(only_a)} only in {la} {_shown(only_a)}, {len(only_b)} only in {lb} {_shown(only_b)}. Clips are "
            f"paired by id; compare the clips both hold: common = [c for c in {la}.clips if c in set({lb}.clips)], "
            f"then {la}.select(clips=common) and {lb}.select(clips=common).")
    where = {c: i for i, c in enumerate(ids_b)}
    return np.array([where[c] for c in ids_a]), {"clips": f"paired by clip id ({labels[1]} reordered to "
                                                           f"{labels[0]}'s clip order)"}


def as_stack(obj, *, label: str, names: Sequence[str] | None = None) -> Stack:
    """Check an array ``(layers, n, dim)`` or an object with ``.pooled`` and ``.layer_names``.

    Raises
    ------
    AnalysisError
        A stream or frame-level Features; anything :func:`m2v_lab.stacks.layer_stack`
        refuses (fewer than 2 samples among it); clip ids that do not fit the samples.
    """
    if _frames_only(obj):
        raise AnalysisError(f"{label} holds frames only; this analysis compares pooled features: pass "
                            f"{label}.pool('mean'), or stream the frames with layer_similarity(...) "
                            "(measure='cka', method 'feature' or 'minibatch').")
    if is_stream(obj):
        raise AnalysisError(f"{label} is a stream of chunks; only method='feature' or 'minibatch' of measure='cka' "
                            "accept streams. Pass an array (layers, n, dim) for this analysis.")
    data, names = layer_stack(obj, name=label, names=names, min_samples=2)
    return Stack(data, names, label, _clip_ids(obj, label, data.shape[1]))


def as_stacks(A, B, *, rows=None, cols=None, labels=("A", "B")) -> tuple[Stack, Stack | None, dict]:
    """Check A and, if given, B, paired sample by sample.

    Returns
    -------
    a, b : Stack, and Stack or None
        ``b`` in A's clip order when both carry clip ids.
    details : dict
        How the samples were paired, for the result's details (empty for position).

    Raises
    ------
    AnalysisError
        As :func:`as_stack`; different clips in A and B; different n (both shapes named).
    """
    sa = as_stack(A, label=labels[0], names=rows)
    if B is None:
        return sa, None, {}
    sb = as_stack(B, label=labels[1], names=cols)
    order, details = _pair_clips(sa.clips, sb.clips, labels)
    if order is not None:
        sb = replace(sb, data=sb.data[:, order], clips=sa.clips)
    if sb.n != sa.n:
        raise AnalysisError(
            f"{labels[0]} has shape {sa.data.shape} and {labels[1]} has shape {sb.data.shape}: both need "
            "the same samples on axis 1 (layers, n, dim)."
        )
    return sa, sb, details


class ChunkPairs:
    """Checked ``(chunk_a, chunk_b)`` pairs of two streams, each ``(layers, n_chunk, dim)``.

    A stream is an iterator or list of chunks, or Features holding frames (one chunk per clip,
    ``feats.frames(i)``).  Two frame-level Features are paired by clip id like arrays; other
    streams chunk by chunk.  Layers and dims must stay the same from chunk to chunk, and paired
    chunks must hold the same samples (same ``n_chunk``).

    Parameters
    ----------
    A, B : stream; B may be None
    rows, cols : sequence of str, optional
        Layer names of A and B; default the Features' names, else the defaults.
    labels : pair of str
        How messages call A and B.

    Attributes
    ----------
    rows, cols : tuple of str
        The layer names, set once the first chunk has been checked.
    details : dict
        How the samples were paired (empty for position).
    cross : bool
        Whether there is a B.

    Raises
    ------
    AnalysisError
        A or a given B not a stream; while iterating, a malformed chunk, a change of layout,
        unequal paired chunks, or streams of different lengths.
    """

    def __init__(self, A, B, *, rows=None, cols=None, labels=("A", "B")):
        if not is_stream(A) or (B is not None and not is_stream(B)):
            raise AnalysisError(f"{labels[0]} and {labels[1]} must both be streams of chunks, or both arrays.")
        ids_a, ids_b = (_clip_ids(X, label, len(X)) if _frames_only(X) else None for X, label in zip((A, B), labels))
        order, self.details = _pair_clips(ids_a, ids_b, labels)
        self._a, self._b = self._chunks(A, None), None if B is None else self._chunks(B, order)
        self._names = [self._names_of(A, rows), self._names_of(B, cols)]
        self.labels, self.cross = labels, B is not None
        self.rows = self.cols = None

    @staticmethod
    def _chunks(obj, order):
        if not _frames_only(obj):
            return obj
        return (obj.frames(int(i)) for i in (range(len(obj)) if order is None else order))

    @staticmethod
    def _names_of(obj, given):
        return given if given is not None or not _frames_only(obj) else obj.layer_names

    def _checked(self, chunk, side: int, i: int, layout):
        label = self.labels[side]
        chunk, names = layer_stack(chunk, name=f"{label} chunk {i}", names=self._names[side])
        if layout is not None and (chunk.shape[0], chunk.shape[2]) != layout:
            raise AnalysisError(
                f"{label} chunk {i} has shape {chunk.shape}, but earlier chunks had "
                f"{layout[0]} layers of dim {layout[1]}; every chunk must be (layers, n_chunk, dim)."
            )
        return chunk, names

    def __iter__(self) -> Iterator[tuple[np.ndarray, np.ndarray | None]]:
        la, lb = self.labels
        b_iter = None if self._b is None else iter(self._b)
        layout_a = layout_b = None
        for i, ca in enumerate(self._a):
            ca, self.rows = self._checked(ca, 0, i, layout_a)
            layout_a = (ca.shape[0], ca.shape[2])
            if b_iter is None:
                self.cols = self.rows
                yield ca, None
                continue
            try:
                cb = next(b_iter)
            except StopIteration:
                raise AnalysisError(f"{lb} ran out of chunks at chunk {i}; {la} and {lb} must yield the same "
                                    "samples.") from None
            cb, self.cols = self._checked(cb, 1, i, layout_b)
            layout_b = (cb.shape[0], cb.shape[2])
            if cb.shape[1] != ca.shape[1]:
                raise AnalysisError(
                    f"chunk {i}: {la} has shape {ca.shape} and {lb} has shape {cb.shape}; paired chunks "
                    "must hold the same samples (same n_chunk on axis 1)."
                )
            yield ca, cb
        if b_iter is not None and next(b_iter, None) is not None:
            raise AnalysisError(f"{lb} yields more chunks than {la}; {la} and {lb} must yield the same samples.")


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
