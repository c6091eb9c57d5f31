"""Outer folds (grouped whenever groups are known) and control-task labels.

Every probe works on one fold assignment per seed: ``folds[i]`` is the test
fold of sample ``i``.  Hyper-parameters of outer fold ``k`` are chosen by an
inner CV whose folds are the other ``cv - 1`` outer folds, so inner splits are
grouped exactly as the outer ones and never see fold ``k``.
"""

from __future__ import annotations

import numpy as np
from sklearn.model_selection import GroupKFold, KFold, StratifiedGroupKFold, StratifiedKFold

from ..errors import AnalysisError
from .inputs import Labels, encode_groups, encode_labels
from ..options import whole_number


def fold_ids(labels: Labels, groups: np.ndarray | None, *, cv: int, seed: int) -> np.ndarray:
    """Test-fold index per sample, shape (n,), from encoded labels and group codes.

    Multiclass labels are stratified; with groups, every group lands in
    exactly one fold (StratifiedGroupKFold / GroupKFold, shuffled by ``seed``).
    """
    n = labels.n
    if groups is None and n < cv:
        raise AnalysisError(f"{n} samples cannot fill cv={cv} folds; lower cv.")
    stratify = labels.codes if labels.task == "multiclass" else None
    if groups is not None:
        splitter = (StratifiedGroupKFold(cv, shuffle=True, random_state=seed) if stratify is not None
                    else GroupKFold(cv, shuffle=True, random_state=seed))
    else:
        splitter = (StratifiedKFold(cv, shuffle=True, random_state=seed) if stratify is not None
                    else KFold(cv, shuffle=True, random_state=seed))
    folds = np.full(n, -1, dtype=np.int64)
    target = stratify if stratify is not None else np.zeros(n)
    for k, (_, test) in enumerate(splitter.split(np.zeros((n, 1)), target, groups)):
        folds[test] = k
    empty = sorted(set(range(cv)) - set(folds.tolist()))
    if empty:
        raise AnalysisError(f"folds {empty} came out empty (too few groups for cv={cv}); lower cv.")
    return folds


def make_folds(y, *, groups=None, cv: int = 5, seed: int = 0, task: str = "auto") -> np.ndarray:
    """Test-fold index per sample, as :func:`probe_layers` makes them.

    Parameters
    ----------
    y : array_like, shape (n,) or (n, k)
        Labels, as for :func:`probe_layers`.
    groups : array_like, shape (n,), optional
        Group id per sample (e.g. track): a group never straddles two folds.
    cv : int
    seed : int
        Shuffles the assignment; each seed of a repeated CV uses its own.
    task : {"auto", "multiclass", "multilabel", "regression"}

    Returns
    -------
    ndarray, shape (n,), int
    """
    cv = whole_number("cv", cv, minimum=2)
    n = len(np.asarray(y))
    labels = encode_labels(y, n, task=task, cv=cv)
    codes = None if groups is None else encode_groups(groups, n, cv=cv)
    return fold_ids(labels, codes, cv=cv, seed=seed)


def control_codes(labels: Labels, groups: np.ndarray, folds: np.ndarray, *, seed: int) -> np.ndarray:
    """Control-task targets ``Y`` (n, k): group labels shuffled among the groups of each fold.

    Hewitt & Liang's control task, grouped: every group gets one random label
    (that of a random member of some group of its fold), so each fold keeps its real label
    distribution — train/test proportions stay as stratified — and a probe can
    only score above chance by telling groups apart.  ``groups`` are group codes
    (one code per sample when there are no groups).
    """
    rng = np.random.default_rng([seed, 0xC0])
    # A random member's label, not the first one's: when labels vary within a group (pitch within an
    # instrument), first members share a label by construction (every instrument starts at C).
    codes = np.unique(groups)
    first = np.array([rng.choice(np.flatnonzero(groups == g)) for g in codes])
    group_rows = labels.Y[first]
    group_fold = folds[first]
    for k in np.unique(group_fold):
        members = np.flatnonzero(group_fold == k)
        group_rows[members] = group_rows[rng.permutation(members)]
    return group_rows[groups]


def describe(*, cv: int, n_groups: int | None, grouped_by: str, stratified: bool, n_seeds: int,
             inner: str | None) -> str:
    """One line saying how the CV was done, for results and figure captions."""
    kind = ("Stratified" if stratified else "") + ("GroupKFold" if n_groups else "KFold")
    text = f"{cv}-fold {kind}"
    if n_groups:
        text += f" over {n_groups} {grouped_by}"
    text += f", {n_seeds} seed{'s' if n_seeds > 1 else ''}"
    if inner:
        text += f"; {inner}"
    return text
