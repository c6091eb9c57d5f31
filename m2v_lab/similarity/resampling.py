"""Uncertainty of layer similarities: resampling over groups (tracks), and a permutation null.

Resampling never draws with replacement: a duplicated sample pairs with itself, and for
debiased CKA such pairs inflate the similarity of independent data from ≈ 0 to ≈ 0.6.
Whole groups (tracks, recordings) are kept together, since clips of one track are not
independent samples.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from ..errors import AnalysisError, OptionError
from ._inputs import as_stacks
from ..options import one_of, random_generator, real_number, whole_number
from .api import layer_similarity
from .result import SimilarityResult

__all__ = ["similarity_ci", "permutation_test", "group_subsamples", "group_blocks"]


def _group_codes(groups, A, n: int) -> np.ndarray:
    """Group index ``0 … G-1`` of each sample, in sorted order of the groups, shape ``(n,)``.

    ``groups`` is None (every sample its own group), one label per sample, or the name of a
    column of ``A.clip_table``, read with ``A.labels``.
    """
    if groups is None:
        return np.arange(n)
    if isinstance(groups, str):
        if not hasattr(A, "labels"):
            raise OptionError(f"groups={groups!r} names a column of feats.clip_table, but A is a "
                              f"{type(A).__name__}, which has none; pass Features, or one group per sample.")
        groups = A.labels(groups)
    groups = np.asarray(groups)
    if groups.shape != (n,):
        raise AnalysisError(f"groups has shape {groups.shape}; give one group label per sample, shape ({n},).")
    missing = np.flatnonzero(pd.isna(groups))
    if missing.size:
        raise AnalysisError(f"groups has no value for {missing.size} samples (first at sample {missing[0]}); give "
                            "every sample a group, or drop those samples.")
    return np.unique(groups, return_inverse=True)[1].reshape(n)


def _inputs(A, B, groups, options: dict):
    """Checked stacks, group codes and the pairing details; takes ``rows``/``cols`` out of ``options``."""
    sa, sb, pairing = as_stacks(A, B, rows=options.pop("rows", None), cols=options.pop("cols", None))
    return sa, sb, _group_codes(groups, A, sa.n), pairing


def group_subsamples(codes: np.ndarray, size: int, n_resamples: int, rng) -> list[np.ndarray]:
    """Sample indices of ``size`` distinct groups drawn without replacement, per resample."""
    n_groups = codes.max() + 1
    return [np.flatnonzero(np.isin(codes, rng.choice(n_groups, size, replace=False))) for _ in range(n_resamples)]


def group_blocks(codes: np.ndarray, n_blocks: int, rng) -> list[np.ndarray]:
    """Sample indices left after deleting each of ``n_blocks`` random blocks of whole groups."""
    blocks = np.array_split(rng.permutation(codes.max() + 1), n_blocks)
    return [np.flatnonzero(~np.isin(codes, block)) for block in blocks]


def _similarity(sa, sb, options, idx=slice(None)) -> SimilarityResult:
    """``layer_similarity`` of the samples ``idx`` of A and B (of A with itself when B is None)."""
    B = None if sb is None else sb.data[:, idx]
    return layer_similarity(sa.data[:, idx], B, rows=sa.names, cols=None if sb is None else sb.names, **options)


def _replicates(sa, sb, index_sets, options) -> np.ndarray:
    with warnings.catch_warnings():
        # constant layers were reported once, for the full sample
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.stack([_similarity(sa, sb, options, idx).values for idx in index_sets])


def similarity_ci(
    A,
    B=None,
    *,
    groups=None,
    scheme: str = "subsample",
    n_resamples: int = 100,
    fraction: float = 0.5,
    n_blocks: int = 20,
    level: float = 0.95,
    seed: int = 0,
    **similarity_options,
) -> SimilarityResult:
    """:func:`~m2v_lab.similarity.layer_similarity` with confidence intervals.

    Parameters
    ----------
    A, B : ndarray, shape (layers, n, dim), or Features
        As for ``layer_similarity`` (arrays, not streams); Features are paired by clip id.
    groups : str, or array_like, shape (n,), optional
        Group of each sample (e.g. track id), in A's clip order, or the name of a column of
        ``A.clip_table`` (``groups="group"``; A must then be Features).  Groups are drawn or
        deleted whole.  Default: every sample its own group.
    scheme : {"subsample", "jackknife"}
        ``"subsample"``: ``n_resamples`` draws of ``fraction`` of the groups without
        replacement; the spread of the draws around the full-sample value, rescaled by
        ``√(m / (G - m))`` for ``m`` of ``G`` groups (1 for half-samples), gives a basic
        interval.  ``"jackknife"``: delete one of ``n_blocks`` random blocks of groups at
        a time; normal interval with a t quantile.
    n_resamples : int
        Draws of the subsample scheme, at least 2.
    fraction : float in (0, 1)
        Share of the groups each draw keeps.
    n_blocks : int
        Blocks of the jackknife, at least 2 (fewer when there are fewer groups).
    level : float in (0, 1)
        Coverage of the interval, e.g. 0.95.
    seed : int
        Seed of the random draws.
    **similarity_options
        Passed to ``layer_similarity`` (``measure``, ``debiased``, ``method``, ``rows``, ...).

    Returns
    -------
    SimilarityResult
        The full-sample result with ``ci_low``, ``ci_high`` and ``replicates`` set.

    Raises
    ------
    OptionError
        An option outside its range, or ``groups`` given as a column name with a bare array.
    AnalysisError
        Malformed features or groups (wrong length, missing values), A and B holding
        different clips, too few groups for the scheme.

    Notes
    -----
    Each resample recomputes all pairs.  Intervals for biased CKA also reflect its bias,
    which grows as samples are removed: prefer the debiased estimator.
    """
    one_of("scheme", scheme, ("subsample", "jackknife"))
    n_resamples = whole_number("n_resamples", n_resamples, minimum=2)
    fraction = real_number("fraction", fraction, low=0, high=1, hint=" (the share of groups each draw keeps)")
    n_blocks = whole_number("n_blocks", n_blocks, minimum=2)
    level = real_number("level", level, low=0, high=1, hint=" (the coverage, e.g. 0.95)")
    rng = random_generator(seed)
    sa, sb, codes, pairing = _inputs(A, B, groups, similarity_options)
    n_groups = int(codes.max()) + 1
    full = _similarity(sa, sb, similarity_options)
    theta = full.values
    alpha = 1 - level
    if scheme == "subsample":
        size = int(round(fraction * n_groups))
        if not 2 <= size < n_groups:
            raise AnalysisError(
                f"fraction={fraction} of {n_groups} groups keeps {size}; need at least 2 and fewer than all."
            )
        reps = _replicates(sa, sb, group_subsamples(codes, size, n_resamples, rng), similarity_options)
        scale = np.sqrt(size / (n_groups - size))
        q_lo, q_hi = np.nanquantile(reps, [alpha / 2, 1 - alpha / 2], axis=0)
        low, high = theta - scale * (q_hi - theta), theta - scale * (q_lo - theta)
        how = f"subsample: {n_resamples} draws of {size}/{n_groups} groups without replacement"
    else:
        from scipy import stats

        n_blocks = min(n_blocks, n_groups)
        if n_blocks < 2:
            raise AnalysisError(f"the jackknife needs at least 2 groups; got {n_groups}.")
        reps = _replicates(sa, sb, group_blocks(codes, n_blocks, rng), similarity_options)
        var = (n_blocks - 1) / n_blocks * ((reps - reps.mean(0)) ** 2).sum(0)
        half = stats.t.ppf(1 - alpha / 2, n_blocks - 1) * np.sqrt(var)
        low, high = theta - half, theta + half
        how = f"jackknife: delete one of {n_blocks} blocks of {n_groups} groups"
    details = {**full.details, **pairing, "ci": f"{level:.0%} {how}"}
    return full.with_(ci_low=low, ci_high=high, replicates=reps, details=details)


def _permuted_index(codes: np.ndarray, rng) -> np.ndarray:
    """Permute samples, or whole equal-sized groups when samples share groups."""
    n_groups = int(codes.max()) + 1
    if n_groups == codes.size:
        return rng.permutation(codes.size)
    members = [np.flatnonzero(codes == g) for g in range(n_groups)]
    sizes = {m.size for m in members}
    if len(sizes) > 1:
        raise AnalysisError(
            f"groups have sizes {sorted(sizes)}; permuting whole groups needs equal sizes. "
            "Pool to one sample per group (e.g. average a track's clips) or subsample groups to equal size."
        )
    idx = np.empty(codes.size, dtype=int)
    for g, h in enumerate(rng.permutation(n_groups)):
        idx[members[g]] = members[h]
    return idx


def permutation_test(
    A,
    B=None,
    *,
    n_permutations: int = 200,
    groups=None,
    seed: int = 0,
    **similarity_options,
) -> SimilarityResult:
    """Is each layer pair more similar than unrelated samples would be?

    The samples of B (of a copy of A when B is None) are permuted, breaking the pairing
    with A while keeping each representation's own structure; the one-sided p-value is
    ``(1 + #{null ≥ observed}) / (1 + n_permutations)``.

    Parameters
    ----------
    A, B : ndarray, shape (layers, n, dim), or Features
        Features are paired by clip id, as in ``layer_similarity``.
    n_permutations : int
        At least 1.
    groups : str, or array_like, shape (n,), optional
        As for :func:`similarity_ci`.  With several samples per group (clips of a track),
        whole groups are permuted, so that the null keeps the within-group dependence;
        groups must then be equal-sized.
    seed : int
    **similarity_options
        Passed to :func:`~m2v_lab.similarity.layer_similarity`.

    Returns
    -------
    SimilarityResult
        The observed result with ``p_values`` and ``replicates`` (the null values) set.

    Raises
    ------
    OptionError, AnalysisError
        As for :func:`similarity_ci`; unequal group sizes are an AnalysisError.
    """
    n_permutations = whole_number("n_permutations", n_permutations, minimum=1)
    rng = random_generator(seed)
    sa, sb, codes, pairing = _inputs(A, B, groups, similarity_options)
    other = sa if sb is None else sb
    observed = _similarity(sa, sb, similarity_options)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        null = np.stack(
            [
                layer_similarity(sa.data, other.data[:, _permuted_index(codes, rng)], rows=sa.names,
                                 cols=other.names, **similarity_options).values  # fmt: skip
                for _ in range(n_permutations)
            ]
        )
    p = (1 + (null >= observed.values).sum(0)) / (1 + n_permutations)
    p = np.where(np.isnan(observed.values), np.nan, p)
    unit = "groups" if groups is not None else "samples"
    details = {**observed.details, **pairing, "null": f"{n_permutations} permutations of B's {unit}"}
    return observed.with_(p_values=p, replicates=null, details=details)
