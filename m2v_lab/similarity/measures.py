"""RSA, orthogonal Procrustes, SVCCA, PWCCA and mutual-kNN alignment for all layer pairs.

Each works from per-layer statistics computed once (an RDM, a thin SVD of the centred
features, a neighbour set) and combines them pair by pair or in one product.  All run on
the CPU in float64.  Every function returns ``(values, bad_a, bad_b, estimator, method,
details)`` for :func:`~m2v_lab.similarity.layer_similarity` to wrap.
"""

from __future__ import annotations

import numpy as np

from ..errors import AnalysisError, OptionError
from ._inputs import Stack, constant_layers
from ..options import one_of, whole_number

__all__ = ["rsa_layers", "procrustes_layers", "svcca_layers", "pwcca_layers", "mutual_knn_layers"]


def _centred(x: np.ndarray) -> np.ndarray:
    x = x.astype(np.float64)
    return x - x.mean(0)


def _sq_distances(xc: np.ndarray) -> np.ndarray:
    """Squared Euclidean distances ``(n, n)`` from centred features (no offset to cancel)."""
    G = xc @ xc.T
    k = np.diag(G)
    return np.maximum(k[:, None] + k[None, :] - 2 * G, 0.0)


def _unit_rows(x: np.ndarray, *, centre: bool):
    """Rows scaled to unit norm (after removing each row's mean over features if ``centre``)."""
    z = x.astype(np.float64)
    if centre:
        z = z - z.mean(1, keepdims=True)
    norms = np.linalg.norm(z, axis=1)
    if not (norms > 0).all():
        return None
    return z / norms[:, None]


def _rank(v: np.ndarray) -> np.ndarray:
    """Ranks from 1, ties sharing their average rank (as Spearman's correlation needs)."""
    order = np.argsort(v, kind="stable")
    sv = v[order]
    starts = np.flatnonzero(np.r_[True, sv[1:] != sv[:-1], True])
    ranks = np.empty(v.size)
    ranks[order] = np.repeat((starts[:-1] + starts[1:] + 1) / 2, np.diff(starts))
    return ranks


def _per_side(sa: Stack, sb: Stack | None, fn):
    """Apply ``fn(stack)`` → ``(stats, bad)`` to A and, if given, B."""
    a = fn(sa)
    return a, a if sb is None else fn(sb)


# --- RSA -------------------------------------------------------------------------------


def _rdm_vectors(stack: Stack, distance: str, compare: str):
    from scipy.spatial.distance import pdist

    n = stack.n
    out = np.zeros((stack.data.shape[0], n * (n - 1) // 2))
    bad = constant_layers(stack.data)
    for i, x in enumerate(stack.data):
        if bad[i] or (distance == "correlation" and _unit_rows(x, centre=True) is None):
            bad[i] = True
            continue
        # direct differences (not the Gram) so that equal distances tie exactly, as ranks need
        v = pdist(x.astype(np.float64), distance)
        v = _rank(v) if compare == "spearman" else v
        v = v - v.mean()
        norm = np.linalg.norm(v)
        if norm == 0:
            bad[i] = True
            continue
        out[i] = v / norm
    return out, bad


def rsa_layers(sa: Stack, sb: Stack | None, *, distance: str = "correlation", compare: str = "spearman"):
    """Representational similarity analysis: correlate the layers' dissimilarity matrices.

    Parameters
    ----------
    distance : {"correlation", "euclidean"}
        Dissimilarity of two samples: ``1 - Pearson r`` of their feature vectors, or the
        Euclidean distance.
    compare : {"spearman", "pearson"}
        Correlation between the upper triangles of two RDMs.

    Notes
    -----
    Euclidean RDMs are invariant to orthogonal transforms, isotropic scaling and
    translation of the features.  Correlation RDMs are invariant to scaling and to adding
    a constant to all features of a sample, but not to rotations nor to translation by a
    general vector (a large common offset makes all samples look alike).  Spearman
    comparison also ignores any monotone change of the dissimilarities.  Memory and time
    grow as ``layers · n²``.
    """
    one_of("distance", distance, ("correlation", "euclidean"))
    one_of("compare", compare, ("spearman", "pearson"))
    (Ra, bad_a), (Rb, bad_b) = _per_side(sa, sb, lambda s: _rdm_vectors(s, distance, compare))
    return Ra @ Rb.T, bad_a, bad_b, compare, "gram", {"distance": distance}


# --- SVD-based: Procrustes, SVCCA, PWCCA ---------------------------------------------------


def _thin_svds(stack: Stack):
    """Per layer ``(U, s, Vt)`` of the centred features, rank-truncated; None if constant."""
    bad = constant_layers(stack.data)
    out = []
    for i, x in enumerate(stack.data):
        if bad[i]:
            out.append(None)
            continue
        U, s, Vt = np.linalg.svd(_centred(x), full_matrices=False)
        r = int((s > s[0] * max(x.shape) * np.finfo(np.float64).eps).sum())
        out.append((U[:, :r], s[:r], Vt[:r]))
    return out, bad


def _pairwise(sa: Stack, sb: Stack | None, svd_a, svd_b, fn, symmetric: bool):
    """``fn(svd_a, svd_b, (row_name, col_name))`` over all pairs (mirrored when ``symmetric``)."""
    cols = (sa if sb is None else sb).names
    values = np.full((len(svd_a), len(svd_b)), np.nan)
    for i, a in enumerate(svd_a):
        for j, b in enumerate(svd_b):
            if a is None or b is None or (symmetric and j < i):
                continue
            values[i, j] = fn(a, b, (sa.names[i], cols[j]))
            if symmetric:
                values[j, i] = values[i, j]
    return values


def procrustes_layers(sa: Stack, sb: Stack | None):
    """Orthogonal Procrustes similarity ``‖X̃ᵀỸ‖_* / (‖X̃‖_F ‖Ỹ‖_F)``, in [0, 1].

    With both inputs centred and scaled to unit Frobenius norm, the Procrustes distance of
    Ding et al. (2021) is ``2 - 2·value``: the residual of the best rotation of one onto the
    other.  Invariant to orthogonal transforms, isotropic scaling and translation, not to
    general invertible linear maps (unlike CCA).
    """
    (svd_a, bad_a), (svd_b, bad_b) = _per_side(sa, sb, _thin_svds)

    def similarity(a, b, _names):
        M = (a[0] * a[1]).T @ (b[0] * b[1])
        return np.linalg.svd(M, compute_uv=False).sum() / (np.linalg.norm(a[1]) * np.linalg.norm(b[1]))

    return _pairwise(sa, sb, svd_a, svd_b, similarity, sb is None), bad_a, bad_b, "nuclear norm", "svd", {}


def _need_samples(n: int, k_a: int, k_b: int, what: str, names: tuple[str, str]) -> None:
    if k_a + k_b > n - 1:
        raise AnalysisError(
            f"{what} of layers {names[0]!r} ({k_a} directions) and {names[1]!r} ({k_b} directions) needs "
            f"n - 1 ≥ {k_a + k_b} samples, but n = {n}: in the (n-1)-dimensional centred sample space the "
            f"two subspaces share at least {k_a + k_b - (n - 1)} directions, giving spurious correlations "
            "of 1. Use more samples, keep fewer directions (svcca keep=0.9 or an int), or use CKA."
        )


def _kept(s: np.ndarray, keep) -> int:
    if isinstance(keep, (int, np.integer)) and not isinstance(keep, bool):
        return int(min(keep, s.size))
    energy = np.cumsum(s**2) / np.sum(s**2)
    return int(np.searchsorted(energy, keep - 1e-12) + 1)


def svcca_layers(sa: Stack, sb: Stack | None, *, keep=0.99):
    """SVCCA (Raghu et al. 2017): mean canonical correlation after an SVD reduction.

    Parameters
    ----------
    keep : float in (0, 1] or int
        Directions kept per layer: enough to explain this fraction of the variance
        (0.99 as in the paper), or this many.

    Notes
    -----
    Requires ``n - 1 ≥ k_A + k_B`` samples (kept directions of both layers); otherwise
    canonical correlations of 1 appear by construction and an :class:`AnalysisError` is
    raised.  Even then the mean is biased upwards unless ``n ≫ k_A + k_B``.  Invariant to
    orthogonal transforms, isotropic scaling and translation; the CCA step alone would be
    invariant to any invertible linear map, the variance-based truncation is not.
    """
    count = isinstance(keep, (int, np.integer)) and not isinstance(keep, (bool, np.bool_)) and keep >= 1
    if not count and not (isinstance(keep, (float, np.floating)) and 0 < keep <= 1):
        raise OptionError(f"keep={keep!r}: give a variance fraction in (0, 1] or a number of directions ≥ 1.")
    (svd_a, bad_a), (svd_b, bad_b) = _per_side(sa, sb, _thin_svds)
    n = sa.n

    def mean_cc(a, b, names):
        ka, kb = _kept(a[1], keep), _kept(b[1], keep)
        _need_samples(n, ka, kb, "SVCCA", names)
        rho = np.linalg.svd(a[0][:, :ka].T @ b[0][:, :kb], compute_uv=False)
        return float(np.clip(rho, 0.0, 1.0).mean())

    values = _pairwise(sa, sb, svd_a, svd_b, mean_cc, sb is None)
    return values, bad_a, bad_b, "mean CCA", "svd", {"keep": keep}


def pwcca_layers(sa: Stack, sb: Stack | None):
    """PWCCA (Morcos et al. 2018): canonical correlations weighted by their share of the neurons.

    The weight of canonical variate ``h_i`` is ``Σ_j |⟨h_i, x̃_j⟩|`` over the neurons ``x̃_j``
    (centred columns) of the side with fewer neurons (A on ties), so the measure is not
    symmetric.  The reference code weights with uncentred activations; centred ones are used
    here, so that translation does not change the result.

    Notes
    -----
    Requires ``n - 1 ≥ rank_A + rank_B`` (at most ``dim_A + dim_B``), else canonical
    correlations of 1 appear by construction and an :class:`AnalysisError` is raised.
    Invariant to translation, isotropic scaling and to permuting or flipping the sign of
    neurons; not to rotations of the feature space (the weights change).
    """
    (svd_a, bad_a), (svd_b, bad_b) = _per_side(sa, sb, _thin_svds)
    n = sa.n
    dim_a, dim_b = sa.data.shape[2], (sa if sb is None else sb).data.shape[2]

    def weighted_cc(a, b, names):
        _need_samples(n, a[1].size, b[1].size, "PWCCA", names)
        P, rho, Qt = np.linalg.svd(a[0].T @ b[0], full_matrices=False)
        base, dirs = (a, P) if dim_a <= dim_b else (b, Qt.T)
        weights = np.abs(dirs.T @ (base[1][:, None] * base[2])).sum(1)
        return float(np.sum(weights * np.clip(rho, 0.0, 1.0)) / np.sum(weights))

    values = _pairwise(sa, sb, svd_a, svd_b, weighted_cc, symmetric=False)
    return values, bad_a, bad_b, "weighted CCA", "svd", {}


# --- mutual kNN ----------------------------------------------------------------------------


def _neighbour_codes(stack: Stack, k: int, metric: str):
    """Sparse indicator ``(layers, n·n)`` of each sample's k nearest neighbours."""
    from scipy import sparse

    n = stack.n
    bad = constant_layers(stack.data)
    rows, cols = [], []
    for i, x in enumerate(stack.data):
        if bad[i]:
            continue
        if metric == "euclidean":
            dist = _sq_distances(_centred(x))
        else:
            z = _unit_rows(x, centre=False)
            if z is None:
                bad[i] = True
                continue
            dist = -(z @ z.T)
        np.fill_diagonal(dist, np.inf)
        nbrs = np.argpartition(dist, k - 1, axis=1)[:, :k]
        rows.append(np.full(n * k, i))
        cols.append((np.arange(n)[:, None] * n + nbrs).ravel())
    rows = np.concatenate(rows) if rows else np.zeros(0, int)
    cols = np.concatenate(cols) if cols else np.zeros(0, int)
    indicator = sparse.csr_matrix((np.ones(rows.size), (rows, cols)), shape=(stack.data.shape[0], n * n))
    return indicator, bad


def mutual_knn_layers(sa: Stack, sb: Stack | None, *, k: int = 10, metric: str = "euclidean"):
    """Mutual k-nearest-neighbour alignment (Huh et al. 2024).

    The mean over samples of ``|N_A(i) ∩ N_B(i)| / k``, where ``N(i)`` are the ``k`` nearest
    other samples.  Independent layers score about ``k / (n - 1)`` (stored in
    ``details["chance"]``).

    Parameters
    ----------
    k : int
        Neighbours per sample, ``1 ≤ k < n - 1``.
    metric : {"euclidean", "cosine"}
        ``"cosine"`` on the raw features reproduces Huh et al.; it is invariant to rotations
        and per-sample scaling but not to translation.  ``"euclidean"`` (on centred
        features) is invariant to orthogonal transforms, isotropic scaling and translation.

    Ties among distances are broken arbitrarily but deterministically.
    """
    one_of("metric", metric, ("euclidean", "cosine"))
    n = sa.n
    k = whole_number("k", k, minimum=1, below=n - 1, why=f" (n - 1 for these n = {n} samples)")
    (Sa, bad_a), (Sb, bad_b) = _per_side(sa, sb, lambda s: _neighbour_codes(s, k, metric))
    values = (Sa @ Sb.T).toarray() / (n * k)
    return values, bad_a, bad_b, f"k={k}", "gram", {"k": k, "metric": metric, "chance": k / (n - 1)}
