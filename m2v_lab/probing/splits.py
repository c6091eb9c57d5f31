"""Outer folds (grouped whenever groups are known), and the control task's labels and split.

Every probe works on one fold assignment per seed: ``folds[i]`` is the test
fold of sample ``i``.  Hyper-parameters of outer fold ``k`` are chosen by an
inner CV whose folds are the other ``cv - 1`` outer folds, so inner splits are
grouped exactly as the outer ones and never see fold ``k``.  The control task has a split of
its own (:func:`control_split`).
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


def control_split(types: np.ndarray, members: np.ndarray, *, cv: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows and test folds of Hewitt & Liang's control task: each type's members dealt across the folds.

    A probe can only show that it memorises a type's (random) label on members of that type it
    did not train on, so the split keeps members whole (a clip's segments stay together) but
    spreads each type's members over different folds: every test member has others of its type
    in the training folds.  A type with a single member cannot be split that way and is left
    out of the control task.

    Parameters
    ----------
    types : ndarray, shape (n,), int
        Type (group) code per sample: what gets one control label.
    members : ndarray, shape (n,), int
        Member (clip, or sample) code per sample: what a fold keeps whole.
    cv : int
    seed : int

    Returns
    -------
    rows : ndarray, int
        Samples in the control task (those of types with ≥ 2 members), in order.
    folds : ndarray, shape (len(rows),), int
        Test fold of each of them, ``0 … cv-1``.

    Raises
    ------
    AnalysisError
        Fewer than ``cv`` members in types with two or more.
    """
    rng = np.random.default_rng([seed, 0xC0])
    pairs = np.unique(np.stack([types, members], axis=1), axis=0)  # (type, member), sorted by type
    type_codes, starts, sizes = np.unique(pairs[:, 0], return_index=True, return_counts=True)
    member_fold = {}
    dealt = 0
    for t in rng.permutation(len(type_codes)):
        if sizes[t] < 2:
            continue
        mine = pairs[starts[t]:starts[t] + sizes[t], 1]
        # consecutive folds from where the last type stopped: a type's members land in different
        # folds and the folds stay within one member of each other in size
        for i, member in enumerate(rng.permutation(mine)):
            member_fold[member] = (dealt + i) % cv
        dealt += sizes[t]
    if dealt < cv:
        raise AnalysisError(f"the control task needs groups with ≥ 2 members each (one is held out while another "
                            f"is trained on) and ≥ cv={cv} such members; there are {dealt}. Pass groups with "
                            "several clips each, or lower cv.")
    rows = np.flatnonzero(np.isin(members, list(member_fold)))
    return rows, np.array([member_fold[m] for m in members[rows]], dtype=np.int64)


def control_codes(labels: Labels, types: np.ndarray, *, seed: int) -> np.ndarray:
    """Control-task targets ``Y`` (n, k): one random label per type (Hewitt & Liang).

    Classes are dealt to the types at random in the real labels' proportions (largest
    remainders), so the control task is as balanced as the real one but unrelated to the
    features: a probe scores above chance on it only by telling types apart and remembering
    each one's label.  Labels and values (multilabel, regression) are those of a random
    member of each type, dealt to the types by a random permutation.
    """
    rng = np.random.default_rng([seed, 0xC1])
    codes, position = np.unique(types, return_inverse=True)
    if labels.task == "multiclass":
        quota = len(codes) * labels.Y.mean(0)
        counts = np.floor(quota).astype(int)
        counts[np.argsort(counts - quota)[:len(codes) - counts.sum()]] += 1
        rows = np.eye(labels.Y.shape[1])[rng.permutation(np.repeat(np.arange(len(counts)), counts))]
    else:
        # a random member's row, not the first one's: values vary within a group (pitch within an instrument)
        picked = np.array([rng.choice(np.flatnonzero(position == t)) for t in range(len(codes))])
        rows = labels.Y[picked][rng.permutation(len(codes))]
    return rows[position]


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
