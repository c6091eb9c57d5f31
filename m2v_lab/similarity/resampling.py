"""Uncertainty of layer similarities: resampling over groups (tracks), and a permutation null.

Resampling never draws with replacement: a duplicated sample pairs with itself, and for
debiased CKA such pairs inflate the similarity of independent data from ≈ 0 to ≈ 0.6.
Whole groups (tracks, recordings) are kept together, since clips of one track are not
independent samples.

Subsample intervals pivot on the draws themselves (their spread around their own median), not
on the full-sample value: for a measure whose value depends on n (biased CKA, Procrustes, SVCCA,
PWCCA, mutual kNN with a fixed k), half-samples sit systematically higher than the full sample,
and an interval reflected about the full-sample value then misses that value altogether.

Permutation p-values come with a correction across the layers × layers map (max-statistic
for the family-wise error, or Benjamini–Hochberg for the false discovery rate).  Each
measure's per-layer statistics (centred Grams, SVDs, RDMs, neighbour lists) are computed once;
a permutation only reorders B's.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from ..errors import AnalysisError, OptionError
from ._inputs import as_stacks
from ..options import one_of, random_generator, real_number, whole_number
from .api import model_labels, plan
from .result import SimilarityResult

__all__ = ["similarity_ci", "permutation_test", "group_subsamples", "group_blocks", "CORRECTIONS"]

#: ``correction=`` of :func:`permutation_test`
CORRECTIONS = ("fwer", "fdr", "none")


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
    """The checked plan, stacks, group codes and pairing details; ``options`` as ``layer_similarity`` takes them."""
    rows, cols = options.pop("rows", None), options.pop("cols", None)
    job = plan(**options)
    sa, sb, pairing = as_stacks(A, B, rows=rows, cols=cols)
    return job, sa, sb, _group_codes(groups, A, sa.n), pairing


def group_subsamples(codes: np.ndarray, size: int, n_resamples: int, rng) -> list[np.ndarray]:
    """Sample indices of ``size`` distinct groups drawn without replacement, per resample."""
    n_groups = codes.max() + 1
    return [np.flatnonzero(np.isin(codes, rng.choice(n_groups, size, replace=False))) for _ in range(n_resamples)]


def group_blocks(codes: np.ndarray, n_blocks: int, rng) -> list[np.ndarray]:
    """Sample indices left after deleting each of ``n_blocks`` random blocks of whole groups."""
    blocks = np.array_split(rng.permutation(codes.max() + 1), n_blocks)
    return [np.flatnonzero(~np.isin(codes, block)) for block in blocks]


def _similarity(job, sa, sb, idx=slice(None)) -> SimilarityResult:
    """The plan ``job`` run on the samples ``idx`` of A and B (of A with itself when B is None)."""
    B = None if sb is None else sb.data[:, idx]
    return job.run(sa.data[:, idx], B, rows=sa.names, cols=None if sb is None else sb.names)


def _replicates(job, sa, sb, index_sets) -> np.ndarray:
    with warnings.catch_warnings():
        # constant layers were reported once, for the full sample
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.stack([_similarity(job, sa, sb, idx).values for idx in index_sets])


def _depends_on_n(result: SimilarityResult) -> bool:
    """Whether the measure's expected value changes with n (all but debiased CKA)."""
    return not (result.measure == "cka" and result.estimator == "debiased")


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
        replacement.  The draws' spread around their own median, rescaled by
        ``√(m / (G - m))`` for ``m`` of ``G`` groups (1 for half-samples: the delete-d
        jackknife's factor), is laid around the full-sample value as a basic interval:
        ``[θ̂ - s·(q_hi - med), θ̂ - s·(q_lo - med)]``.  It always contains θ̂.
        ``"jackknife"``: delete one of ``n_blocks`` random blocks of groups at a time; normal
        interval with a t quantile.
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
    Each resample recomputes all pairs.  The interval is for the value the measure takes at
    this n.  For debiased CKA that is the population value (coverage of the population CKA of
    a Gaussian model: 90 % intervals cover it in 59 of 60 simulated datasets).  Biased CKA,
    Procrustes, SVCCA, PWCCA and mutual kNN read higher at smaller n (biased CKA of X and
    X + noise, 20 dimensions, n = 100: 0.58 on average where the population value is 0.5), so
    their interval covers their value at this n (57 of 60 there), not the population value,
    and intervals at different n are not comparable; ``details["ci"]`` says so.  Prefer
    debiased CKA for a value that does not depend on n.
    """
    one_of("scheme", scheme, ("subsample", "jackknife"))
    n_resamples = whole_number("n_resamples", n_resamples, minimum=2)
    fraction = real_number("fraction", fraction, low=0, high=1, hint=" (the share of groups each draw keeps)")
    n_blocks = whole_number("n_blocks", n_blocks, minimum=2)
    level = real_number("level", level, low=0, high=1, hint=" (the coverage, e.g. 0.95)")
    rng = random_generator(seed)
    job, sa, sb, codes, pairing = _inputs(A, B, groups, similarity_options)
    n_groups = int(codes.max()) + 1
    full = _similarity(job, sa, sb)
    theta = full.values
    alpha = 1 - level
    if scheme == "subsample":
        size = int(round(fraction * n_groups))
        if not 2 <= size < n_groups:
            raise AnalysisError(
                f"fraction={fraction} of {n_groups} groups keeps {size}; need at least 2 and fewer than all."
            )
        reps = _replicates(job, sa, sb, group_subsamples(codes, size, n_resamples, rng))
        scale = np.sqrt(size / (n_groups - size))
        with warnings.catch_warnings():  # all-NaN cells of constant layers, reported already
            warnings.simplefilter("ignore", RuntimeWarning)
            q_lo, centre, q_hi = np.nanquantile(reps, [alpha / 2, 0.5, 1 - alpha / 2], axis=0)
        low, high = theta - scale * (q_hi - centre), theta - scale * (q_lo - centre)
        how = (f"subsample: {n_resamples} draws of {size}/{n_groups} groups without replacement, their spread "
               "around their median")
    else:
        from scipy import stats

        n_blocks = min(n_blocks, n_groups)
        if n_blocks < 2:
            raise AnalysisError(f"the jackknife needs at least 2 groups; got {n_groups}.")
        reps = _replicates(job, sa, sb, group_blocks(codes, n_blocks, rng))
        var = (n_blocks - 1) / n_blocks * ((reps - reps.mean(0)) ** 2).sum(0)
        half = stats.t.ppf(1 - alpha / 2, n_blocks - 1) * np.sqrt(var)
        low, high = theta - half, theta + half
        how = f"jackknife: delete one of {n_blocks} blocks of {n_groups} groups"
    if _depends_on_n(full):
        how += f"; for the value at n = {full.n} (this measure's value depends on n)"
    details = {**full.details, **pairing, "ci": f"{level:.0%} {how}"}
    return full.with_(ci_low=low, ci_high=high, replicates=reps, details=details, models=model_labels(A, B))


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


def _family(values: np.ndarray, within: bool) -> np.ndarray:
    """The cells tested together: finite ones; within one model, each pair of distinct layers once (i < j)."""
    family = np.isfinite(values)
    return np.triu(family, 1) if within else family


def _max_statistic(observed: np.ndarray, null: np.ndarray) -> np.ndarray:
    """Westfall–Young single-step max-T adjusted p-values of cells ``(cells,)`` with nulls ``(P, cells)``.

    Each cell is put on its own scale first (mean 0, sd 1 over its null values and the observed
    one): cells whose nulls spread more (a low-rank layer, a small one) would otherwise decide
    the maximum alone.  The observed value takes part in the scale as one more draw, so that the
    observed map and the permuted ones are treated alike, as a permutation test's exactness needs
    (from the null alone, the family-wise error of 4 independent layers was 0.13 at level 0.1).
    """
    every = np.vstack([null, observed[None]])
    mu, sd = every.mean(0), every.std(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        z_obs = np.where(sd > 0, (observed - mu) / sd, -np.inf)
        z_null = np.where(sd > 0, (null - mu) / sd, -np.inf)  # a cell whose values never vary sets no maximum
    top = z_null.max(1)
    return (1 + (top[:, None] >= z_obs[None, :]).sum(0)) / (1 + null.shape[0])


def _adjusted(p: np.ndarray, observed: np.ndarray, null: np.ndarray, family: np.ndarray, correction: str):
    """``p_adjusted`` over the cells of ``family`` (NaN elsewhere)."""
    from scipy.stats import false_discovery_control

    out = np.full(p.shape, np.nan)
    if not family.any():
        return out
    if correction == "fwer":
        out[family] = _max_statistic(observed[family], null[:, family])
    elif correction == "fdr":
        out[family] = false_discovery_control(p[family], method="bh")
    else:
        out[family] = p[family]
    return out


def _mirror_upper(a: np.ndarray) -> np.ndarray:
    """``a`` (``(..., L, L)``) with its lower triangle replaced by the mirrored upper one."""
    i, j = np.triu_indices(a.shape[-1], 1)
    a = a.copy()
    a[..., j, i] = a[..., i, j]
    return a


def permutation_test(
    A,
    B=None,
    *,
    n_permutations: int = 200,
    groups=None,
    correction: str = "fwer",
    seed: int = 0,
    **similarity_options,
) -> SimilarityResult:
    """Is each layer pair more similar than unrelated samples would be?

    The samples of B (of a copy of A when B is None) are permuted, breaking the pairing
    with A while keeping each representation's own structure; the one-sided p-value is
    ``(1 + #{null ≥ observed}) / (1 + n_permutations)``.  Each layer's statistics (for CKA its
    centred Gram; SVDs, RDMs or neighbour lists for the other measures) are computed once and
    only B's are reordered per permutation.

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
    correction : {"fwer", "fdr", "none"}
        How ``p_adjusted`` accounts for testing every cell of the map.  ``"fwer"``: the
        single-step max-statistic method (Westfall & Young), each cell standardised by its own
        null: ``p_adjusted ≤ α`` controls the chance of any false positive at α.  ``"fdr"``:
        Benjamini–Hochberg on the cells' p-values (the expected share of false positives among
        the cells called significant ≤ α).  ``"none"``: ``p_adjusted`` is ``p_values``.  The
        family is every finite cell across two models; within one model, each pair of distinct
        layers once (the map is symmetric: the upper triangle's tests are mirrored, and the
        diagonal, a layer with itself, is not tested: NaN).
    seed : int
    **similarity_options
        Passed to :func:`~m2v_lab.similarity.layer_similarity`.

    Returns
    -------
    SimilarityResult
        The observed result with ``p_values``, ``p_adjusted`` and ``replicates`` (the null
        values) set; ``details["null"]`` says how they were made.  ``to_frame("long")`` lists
        them by layer pair; ``similarity_heatmap(res, mask_nonsignificant=0.05)`` blanks the
        cells not significant.

    Raises
    ------
    OptionError, AnalysisError
        As for :func:`similarity_ci`; unequal group sizes are an AnalysisError.

    Notes
    -----
    For CKA the Grams of both sides are kept (``8·n²`` bytes per layer, up to 768 MiB: n up to
    about 2,800 within a 13-layer model, 1,900 across two); beyond that, or for minibatch CKA,
    each permutation is recomputed from the features.
    """
    n_permutations = whole_number("n_permutations", n_permutations, minimum=1)
    one_of("correction", correction, CORRECTIONS)
    rng = random_generator(seed)
    job, sa, sb, codes, pairing = _inputs(A, B, groups, similarity_options)
    other = sa if sb is None else sb
    observed = _similarity(job, sa, sb)
    orders = [_permuted_index(codes, rng) for _ in range(n_permutations)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        reuse = job.null(sa, sb)
        if reuse is None:
            null = np.stack([job.run(sa.data, other.data[:, order], rows=sa.names, cols=other.names).values
                             for order in orders])  # fmt: skip
        else:
            null = np.stack([reuse(order) for order in orders])
    within = sb is None
    if within:
        null = _mirror_upper(null)
    p = (1 + (null >= observed.values).sum(0)) / (1 + n_permutations)
    p = np.where(np.isnan(observed.values), np.nan, p)
    family = _family(observed.values, within)
    p_adjusted = _adjusted(p, observed.values, null, family, correction)
    if within:
        p_adjusted = _mirror_upper(p_adjusted)
    unit = "groups" if groups is not None else "samples"
    named = {"fwer": "max-statistic (FWER)", "fdr": "Benjamini–Hochberg (FDR)", "none": "not adjusted"}[correction]
    pairs = f"{int(family.sum())} {'distinct layer pairs' if within else 'layer pairs'}"
    details = {**observed.details, **pairing, "correction": correction,
               "null": f"{n_permutations} permutations of B's {unit}; p_adjusted: {named} over {pairs}"}  # fmt: skip
    return observed.with_(p_values=p, p_adjusted=p_adjusted, replicates=null, details=details,
                          models=model_labels(A, B))
