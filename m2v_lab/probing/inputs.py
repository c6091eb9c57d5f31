"""Checking and encoding what the probes are given: labels, groups, clip ids (by value or column name).

Every check runs before any fitting and names the input at fault and the fix:
:class:`~m2v_lab.errors.AnalysisError` for data that cannot be probed,
:class:`~m2v_lab.errors.OptionError` for an option value that cannot be used.
The features themselves are checked by :func:`m2v_lab.stacks.layer_stack`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..errors import AnalysisError, OptionError

TASKS = ("multiclass", "multilabel", "regression")


def _show(value) -> str:
    """repr of a label or id as the user wrote it (no ``np.int64(...)`` wrapper)."""
    return repr(value.item() if isinstance(value, np.generic) else value)


def from_table(features, value, what: str):
    """``value`` as given, or, when it is a string, that column of ``features.clip_table`` (one per sample).

    Labels travel with a :class:`~m2v_lab.Features`: ``probe_layers(feats, "genre", groups="track")``
    reads both from ``feats.clip_table``.

    Raises
    ------
    OptionError
        A string where ``features`` is a bare array, which has no columns.
    FeaturesError
        No such column (the message lists the columns there are).
    """
    if not isinstance(value, str):
        return value
    if not callable(getattr(features, "labels", None)):
        raise OptionError(f"{what}={value!r} names a column, but the features are a bare array with no clip_table: "
                          f"pass {what} as an array (one per sample), or pass a Features whose clip_table has a "
                          f"{value!r} column.")
    return features.labels(value)


@dataclass(frozen=True)
class Labels:
    """Encoded labels of one task.

    Attributes
    ----------
    task : {"multiclass", "multilabel", "regression"}
    Y : ndarray, shape (n, k), float64
        One-hot (multiclass), binary indicators (multilabel) or values (regression).
    columns : list of str
        Name of each column of ``Y`` (the classes, labels or targets).
    codes : ndarray, shape (n,), int, or None
        Class index per sample (multiclass only).
    classes : ndarray or None
        The class labels as given, in column order (multiclass only).
    """

    task: str
    Y: np.ndarray
    columns: list
    codes: np.ndarray | None = None
    classes: np.ndarray | None = None

    @property
    def n(self) -> int:
        return self.Y.shape[0]


def _check_length(values: np.ndarray, n: int, what: str, unit: str) -> None:
    if len(values) != n:
        raise AnalysisError(f"{what} has {len(values)} {unit} but features have {n} samples (axis 1).")


def infer_task(y) -> str:
    """Floats mean regression, 2-D 0/1 matrices multilabel; integers, strings and booleans classes."""
    arr = np.asarray(y)
    if arr.ndim == 2:
        numeric = np.issubdtype(arr.dtype, np.number) or arr.dtype == bool
        if numeric and np.isin(arr, (0, 1)).all():
            return "multilabel"
        return "regression"
    if np.issubdtype(arr.dtype, np.floating):
        return "regression"
    return "multiclass"


def encode_labels(y, n: int, *, task: str = "auto", cv: int = 5, classes=None) -> Labels:
    """Check ``y`` against ``n`` samples and ``cv`` folds and encode it for ``task``.

    Parameters
    ----------
    y : array_like, shape (n,) or (n, k), or pandas Series / DataFrame
        Class labels (any hashable; strings fine), a binary indicator matrix
        (multilabel) or real values (regression).
    n : int
        Number of samples the features have.
    task : {"auto", "multiclass", "multilabel", "regression"}
    cv : int
        Number of outer folds: each class needs at least that many members.
    classes : sequence, optional
        Fixed class list (used for control labels, which must keep the real classes).
    """
    columns = list(map(str, y.columns)) if isinstance(y, pd.DataFrame) else None
    arr = np.asarray(y)
    if arr.ndim not in (1, 2):
        raise AnalysisError(f"y must be 1-D (labels or values) or 2-D (n, labels); got shape {arr.shape}.")
    _check_length(arr, n, "y", "labels")
    if task == "auto":
        task = infer_task(arr)
    if task not in TASKS:
        raise OptionError(f"task={task!r} is not one of 'auto', {', '.join(map(repr, TASKS))}.")
    if task == "multiclass":
        return _encode_classes(arr, cv, classes)
    numeric = np.issubdtype(arr.dtype, np.number) or arr.dtype == bool
    if not numeric:
        raise AnalysisError(f"task={task!r} needs numeric y; got dtype {arr.dtype}. Use task='multiclass' "
                            "for class names.")
    Y = arr.astype(np.float64).reshape(n, -1)
    if not np.isfinite(Y).all():
        raise AnalysisError(f"y has {int((~np.isfinite(Y)).sum())} missing or infinite values; drop those "
                            "samples first.")
    columns = columns or ([f"label_{j}" if task == "multilabel" else f"target_{j}" for j in range(Y.shape[1])]
                          if Y.shape[1] > 1 else ["y"])
    if task == "multilabel":
        if arr.ndim != 2 or not np.isin(Y, (0, 1)).all():
            raise AnalysisError("task='multilabel' needs y as an (n, labels) matrix of 0/1 (or bool).")
        counts = Y.sum(axis=0)
        for j in np.flatnonzero((counts < cv) | (counts > n - cv)):
            side = "positive" if counts[j] < cv else "negative"
            raise AnalysisError(f"label column {j} ({columns[j]!r}) has {int(min(counts[j], n - counts[j]))} "
                                f"{side} samples: need ≥ {cv} (cv) of each, or drop the column.")
    elif (Y.std(axis=0) == 0).any():
        j = int(np.flatnonzero(Y.std(axis=0) == 0)[0])
        raise AnalysisError(f"regression target {columns[j]!r} is constant: R² is undefined; drop it.")
    return Labels(task, Y, columns)


def _encode_classes(arr: np.ndarray, cv: int, classes) -> Labels:
    if arr.ndim != 1:
        raise AnalysisError(f"task='multiclass' needs 1-D labels; got shape {arr.shape} (use 'multilabel' for "
                            "an indicator matrix).")
    missing = pd.isna(arr)
    if missing.any():
        raise AnalysisError(f"y has {int(missing.sum())} missing labels (first at sample "
                            f"{int(np.flatnonzero(missing)[0])}); drop those samples first.")
    if classes is None:
        try:
            classes, codes = np.unique(arr, return_inverse=True)
        except TypeError as err:
            raise AnalysisError(f"y mixes label types that cannot be sorted ({err}); convert them to str.") from None
        if len(classes) < 2:
            raise AnalysisError(f"y has a single class {_show(classes[0])}: probing needs ≥ 2 classes.")
        counts = np.bincount(codes, minlength=len(classes))
        for c in np.flatnonzero(counts < cv):
            word = "member" if counts[c] == 1 else "members"
            raise AnalysisError(f"class {_show(classes[c])} has {counts[c]} {word}: need ≥ {cv} (cv) per class, "
                                f"or drop it (keep = y != {_show(classes[c])}).")
    else:
        classes = np.asarray(classes)
        lookup = {c: i for i, c in enumerate(classes.tolist())}
        unknown = [v for v in arr.tolist() if v not in lookup]
        if unknown:
            raise AnalysisError(f"labels {sorted(set(map(str, unknown)))[:5]} are not among the classes "
                                f"{classes.tolist()}.")
        codes = np.array([lookup[v] for v in arr.tolist()], dtype=np.int64)
    Y = np.zeros((len(codes), len(classes)))
    Y[np.arange(len(codes)), codes] = 1.0
    return Labels("multiclass", Y, [str(c) for c in classes], codes.astype(np.int64), classes)


def encode_groups(groups, n: int, *, cv: int, what: str = "groups") -> np.ndarray:
    """Integer group code per sample; checks length, missing values and that ≥ ``cv`` groups exist."""
    arr = np.asarray(groups)
    if arr.ndim != 1:
        raise AnalysisError(f"{what} must be 1-D (one id per sample); got shape {arr.shape}.")
    _check_length(arr, n, what, "ids")
    if pd.isna(arr).any():
        raise AnalysisError(f"{what} has {int(pd.isna(arr).sum())} missing ids; give every sample an id.")
    codes, uniques = pd.factorize(arr)
    if len(uniques) < 2:
        raise AnalysisError(f"only one group ({_show(uniques[0])}) in {what}: grouped CV needs ≥ 2 groups "
                            f"(≥ cv={cv}); pass a per-track id, or groups=None if samples are independent.")
    if len(uniques) < cv:
        raise AnalysisError(f"{what} has {len(uniques)} distinct ids but cv={cv} needs ≥ {cv} groups; lower "
                            f"cv to ≤ {len(uniques)}.")
    return codes.astype(np.int64)


def encode_clips(clip_ids, n: int, groups: np.ndarray | None, labels: Labels) -> np.ndarray:
    """Integer clip code per sample; a clip must sit inside one group and carry one label.

    Otherwise averaging its segments' predictions would mix training and test
    folds, or labels.
    """
    arr = np.asarray(clip_ids)
    if arr.ndim != 1:
        raise AnalysisError(f"clip_ids must be 1-D (one id per sample); got shape {arr.shape}.")
    _check_length(arr, n, "clip_ids", "ids")
    if pd.isna(arr).any():
        raise AnalysisError(f"clip_ids has {int(pd.isna(arr).sum())} missing ids; give every segment its clip id.")
    codes, uniques = pd.factorize(arr)
    if groups is not None:
        spread = pd.Series(groups).groupby(codes).nunique()
        if (spread > 1).any():
            raise AnalysisError(f"clip {_show(uniques[spread.idxmax()])} spans {int(spread.max())} groups: all "
                                "segments of a clip need the same group id.")
    spread = pd.DataFrame(labels.Y).groupby(codes).nunique().max(axis=1)
    if (spread > 1).any():
        raise AnalysisError(f"clip {_show(uniques[spread.idxmax()])} has segments with different labels; a clip "
                            "carries one label: fix y or clip_ids.")
    return codes.astype(np.int64)
