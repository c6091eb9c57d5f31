"""RSA, orthogonal Procrustes, SVCCA, PWCCA and mutual-kNN alignment for all layer pairs.

Each measure works in three steps: statistics of each layer computed once (an RDM, a thin SVD
of the centred features, neighbour lists), the same statistics for the samples in another order
(cheap: a permutation of rows, which is what a permutation null needs), and all pairs combined
from them.  RSA and mutual kNN run in NumPy; the SVD-based measures (Procrustes, SVCCA, PWCCA)
run where ``device=`` says (:mod:`~m2v_lab.similarity._backend`: NumPy by default, torch's
``linalg`` on a GPU), float64 everywhere.  Every ``*_layers`` function returns ``(values, bad_a,
bad_b, estimator, method, details)`` for :func:`~m2v_lab.similarity.layer_similarity` to wrap.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, replace

import numpy as np

from ..errors import AnalysisError, OptionError
from ._backend import get_backend
from ._inputs import Stack, constant_layers
from ..options import one_of, real_number, whole_number

__all__ = ["rsa_layers", "procrustes_layers", "svcca_layers", "pwcca_layers", "mutual_knn_layers", "make_measure"]


@dataclass(frozen=True)
class Side:
    """Per-layer statistics of one input: ``stats[i]`` (None for layers flagged ``bad``)."""

    stats: list
    bad: np.ndarray
    names: tuple[str, ...]
    n: int
    dim: int


class _Measure:
    """A measure as three steps; subclasses set ``estimator``, ``method`` and the three methods."""

    estimator = method = ""
    details: dict = {}

    def prepare(self, stack: Stack) -> Side:
        """Statistics of each layer of ``stack``."""
        raise NotImplementedError

    def permuted(self, side: Side, order: np.ndarray) -> Side:
        """The statistics of the same samples taken in ``order`` (without recomputing them)."""
        raise NotImplementedError

    def compare(self, a: Side, b: Side, *, symmetric: bool) -> np.ndarray:
        """``(layers_A, layers_B)`` values; ``symmetric`` when ``b`` is ``a`` (fills the lower half by mirroring)."""
        raise NotImplementedError

    def run(self, sa: Stack, sb: Stack | None):
        """The tuple ``layer_similarity`` wraps (see the module docstring)."""
        a = self.prepare(sa)
        b = a if sb is None else self.prepare(sb)
        return self.compare(a, b, symmetric=sb is None), a.bad, b.bad, self.estimator, self.method, dict(self.details)


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


# --- RSA -------------------------------------------------------------------------------


class _Rsa(_Measure):
    method = "gram"

    def __init__(self, distance: str = "correlation", compare: str = "spearman"):
        self.distance = one_of("distance", distance, ("correlation", "euclidean"))
        self.estimator = one_of("compare", compare, ("spearman", "pearson"))
        self.details = {"distance": distance}

    def prepare(self, stack):
        from scipy.spatial.distance import pdist

        out = []
        bad = constant_layers(stack.data)
        for i, x in enumerate(stack.data):
            if bad[i] or (self.distance == "correlation" and _unit_rows(x, centre=True) is None):
                bad[i] = True
                out.append(None)
                continue
            # direct differences (not the Gram) so that equal distances tie exactly, as ranks need
            v = pdist(x.astype(np.float64), self.distance)
            v = _rank(v) if self.estimator == "spearman" else v
            v = v - v.mean()
            norm = np.linalg.norm(v)
            bad[i] = norm == 0
            out.append(None if bad[i] else v / norm)
        return Side(out, bad, stack.names, stack.n, stack.data.shape[2])

    def permuted(self, side, order):
        # pair (i, j) of the reordered samples is pair (order[i], order[j]) of the original ones
        n = side.n
        i, j = np.triu_indices(n, 1)
        p, q = np.minimum(order[i], order[j]), np.maximum(order[i], order[j])
        where = n * p - p * (p + 1) // 2 + q - p - 1  # position of (p, q) in a condensed distance vector
        return replace(side, stats=[None if v is None else v[where] for v in side.stats])

    def compare(self, a, b, *, symmetric):
        size = a.n * (a.n - 1) // 2
        Ra = np.stack([np.zeros(size) if v is None else v for v in a.stats])
        Rb = Ra if symmetric else np.stack([np.zeros(size) if v is None else v for v in b.stats])
        return Ra @ Rb.T


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
    return _Rsa(distance, compare).run(sa, sb)


# --- SVD-based: Procrustes, SVCCA, PWCCA ---------------------------------------------------


class _SvdMeasure(_Measure):
    """Measures from each layer's thin SVD ``(U, s, Vt)`` of the centred features, rank-truncated."""

    method = "svd"

    def __init__(self, device="numpy"):
        self.backend = get_backend(device)

    def prepare(self, stack):
        bk = self.backend
        bad = constant_layers(stack.data)
        out = []
        for i, layer in enumerate(stack.data):
            if bad[i]:
                out.append(None)
                continue
            x = bk.asarray(layer)
            U, s, Vt = bk.svd(x - x.mean(0)[None, :])
            r = int((s > float(s[0]) * max(layer.shape) * np.finfo(np.float64).eps).sum())
            out.append((U[:, :r], s[:r], Vt[:r]))
        return Side(out, bad, stack.names, stack.n, stack.data.shape[2])

    def permuted(self, side, order):
        index = self.backend.index(order)
        return replace(side, stats=[None if t is None else (t[0][index], t[1], t[2]) for t in side.stats])

    def compare(self, a, b, *, symmetric):
        values = np.full((len(a.stats), len(b.stats)), np.nan)
        for i, x in enumerate(a.stats):
            for j, y in enumerate(b.stats):
                if x is None or y is None or (symmetric and j < i):
                    continue
                values[i, j] = self.pair(x, y, (a.names[i], b.names[j]), a.n)
                if symmetric:
                    values[j, i] = values[i, j]
        return values

    def pair(self, x, y, names: tuple[str, str], n: int) -> float:
        raise NotImplementedError


def _norm(s) -> float:
    return float((s * s).sum()) ** 0.5


class _Procrustes(_SvdMeasure):
    estimator = "nuclear norm"

    def pair(self, x, y, names, n):
        M = (x[0] * x[1]).T @ (y[0] * y[1])
        return float(self.backend.svdvals(M).sum()) / (_norm(x[1]) * _norm(y[1]))


def procrustes_layers(sa: Stack, sb: Stack | None, *, device="numpy"):
    """Orthogonal Procrustes similarity ``‖X̃ᵀỸ‖_* / (‖X̃‖_F ‖Ỹ‖_F)``, in [0, 1].

    With both inputs centred and scaled to unit Frobenius norm, the Procrustes distance of
    Ding et al. (2021) is ``2 - 2·value``: the residual of the best rotation of one onto the
    other.  Invariant to orthogonal transforms, isotropic scaling and translation, not to
    general invertible linear maps (unlike CCA).  Its value depends on n: with fewer samples
    than dimensions, unrelated layers score well above 0.
    """
    return _Procrustes(device).run(sa, sb)


def _need_samples(n: int, k_a: int, k_b: int, what: str, names: tuple[str, str]) -> None:
    if k_a + k_b > n - 1:
        raise AnalysisError(
            f"{what} of layers {names[0]!r} ({k_a} directions) and {names[1]!r} ({k_b} directions) needs "
            f"n - 1 ≥ {k_a + k_b} samples, but n = {n}: in the (n-1)-dimensional centred sample space the "
            f"two subspaces share at least {k_a + k_b - (n - 1)} directions, giving spurious correlations "
            "of 1. Use more samples, keep fewer directions (svcca variance=0.9 or n_components=), or use CKA."
        )


class _Svcca(_SvdMeasure):
    estimator = "mean CCA"

    def __init__(self, *, n_components=None, variance=None, keep=None, device="numpy"):
        if keep is not None:
            if n_components is not None or variance is not None:
                raise OptionError("keep= is the old name of n_components= (a whole number) and variance= (a "
                                  "fraction); give only the new ones.")
            count = isinstance(keep, (int, np.integer)) and not isinstance(keep, (bool, np.bool_)) and keep >= 1
            if not count and not (isinstance(keep, (float, np.floating)) and 0 < keep <= 1):
                raise OptionError(f"keep={keep!r}: give a variance fraction in (0, 1] or a number of directions ≥ 1 "
                                  "(better: variance= or n_components=, keep= is deprecated).")
            new = f"n_components={keep!r}" if count else f"variance={keep!r}"
            warnings.warn(f"svcca keep={keep!r} is deprecated: it means {new}; pass that instead (keep=1 kept one "
                          "direction, keep=1.0 all of them).", DeprecationWarning, stacklevel=5)
            n_components, variance = (keep, None) if count else (None, keep)
        if n_components is not None and variance is not None:
            raise OptionError(f"n_components={n_components!r} and variance={variance!r}: give one of them.")
        if n_components is not None:
            self.count = whole_number("n_components", n_components, minimum=1)
            self.details = {"n_components": self.count}
        else:
            self.count = None
            self.fraction = 0.99 if variance is None else real_number(
                "variance", variance, low=0, high=1, high_ok=True, hint=" (the share of variance kept, e.g. 0.99)")
            self.details = {"variance": self.fraction}
        super().__init__(device)

    def kept(self, s) -> int:
        if self.count is not None:
            return min(self.count, s.shape[0])
        energy = np.cumsum(self.backend.to_numpy(s) ** 2)
        return int(np.searchsorted(energy / energy[-1], self.fraction - 1e-12) + 1)

    def pair(self, x, y, names, n):
        ka, kb = self.kept(x[1]), self.kept(y[1])
        _need_samples(n, ka, kb, "SVCCA", names)
        rho = self.backend.svdvals(x[0][:, :ka].T @ y[0][:, :kb])
        return float(rho.clip(0.0, 1.0).mean())


def svcca_layers(sa: Stack, sb: Stack | None, *, n_components: int | None = None, variance: float | None = None,
                 keep=None, device="numpy"):
    """SVCCA (Raghu et al. 2017): mean canonical correlation after an SVD reduction.

    Parameters
    ----------
    n_components : int, optional
        Keep this many directions per layer (fewer when the layer has lower rank).
    variance : float in (0, 1], optional
        Keep enough directions to explain this share of each layer's variance; the default
        when neither is given, 0.99 as in the paper.  ``variance=1.0`` keeps every direction.
    keep : int or float, optional
        Deprecated: an int meant ``n_components``, a float ``variance`` (so ``keep=1`` kept one
        direction and ``keep=1.0`` all of them); warns with a DeprecationWarning.

    Notes
    -----
    Requires ``n - 1 ≥ k_A + k_B`` samples (kept directions of both layers); otherwise
    canonical correlations of 1 appear by construction and an :class:`AnalysisError` is
    raised.  Even then the mean is biased upwards unless ``n ≫ k_A + k_B``.  Invariant to
    orthogonal transforms, isotropic scaling and translation; the CCA step alone would be
    invariant to any invertible linear map, the variance-based truncation is not.
    """
    return _Svcca(n_components=n_components, variance=variance, keep=keep, device=device).run(sa, sb)


class _Pwcca(_SvdMeasure):
    estimator = "weighted CCA"

    def compare(self, a, b, *, symmetric):
        self.smaller_a = a.dim <= b.dim  # whose neurons weigh the correlations
        return super().compare(a, b, symmetric=False)  # not a symmetric measure

    def pair(self, x, y, names, n):
        _need_samples(n, x[1].shape[0], y[1].shape[0], "PWCCA", names)
        P, rho, Qt = self.backend.svd(x[0].T @ y[0])
        base, dirs = (x, P) if self.smaller_a else (y, Qt.T)
        weights = abs(dirs.T @ (base[1][:, None] * base[2])).sum(1)
        return float((weights * rho.clip(0.0, 1.0)).sum() / weights.sum())


def pwcca_layers(sa: Stack, sb: Stack | None, *, device="numpy"):
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
    return _Pwcca(device).run(sa, sb)


# --- mutual kNN ----------------------------------------------------------------------------


class _MutualKnn(_Measure):
    method = "gram"

    def __init__(self, *, k: int = 10, metric: str = "cosine"):
        self.metric = one_of("metric", metric, ("cosine", "euclidean"))
        self.k = k

    def prepare(self, stack):
        n = stack.n
        self.k = k = whole_number("k", self.k, minimum=1, below=n - 1, why=f" (n - 1 for these n = {n} samples)")
        self.estimator = f"k={k}"
        self.details = {"k": k, "metric": self.metric, "chance": k / (n - 1)}
        bad = constant_layers(stack.data)
        out = []
        for i, x in enumerate(stack.data):
            if bad[i]:
                out.append(None)
                continue
            if self.metric == "euclidean":
                dist = _sq_distances(_centred(x))
            else:
                z = _unit_rows(x, centre=False)
                if z is None:
                    bad[i] = True
                    out.append(None)
                    continue
                dist = -(z @ z.T)
            np.fill_diagonal(dist, np.inf)
            out.append(np.argpartition(dist, k - 1, axis=1)[:, :k])
        return Side(out, bad, stack.names, n, stack.data.shape[2])

    def permuted(self, side, order):
        # sample i of the reordered data is sample order[i]; its neighbours, renamed likewise
        where = np.argsort(order)
        return replace(side, stats=[None if nb is None else where[nb[order]] for nb in side.stats])

    def _indicator(self, side):
        """Sparse ``(layers, n·n)``: row ``l`` marks each sample's k neighbours at layer ``l``."""
        from scipy import sparse

        n, k = side.n, self.k
        rows = [np.full(n * k, i) for i, nb in enumerate(side.stats) if nb is not None]
        cols = [(np.arange(n)[:, None] * n + nb).ravel() for nb in side.stats if nb is not None]
        rows = np.concatenate(rows) if rows else np.zeros(0, int)
        cols = np.concatenate(cols) if cols else np.zeros(0, int)
        return sparse.csr_matrix((np.ones(rows.size), (rows, cols)), shape=(len(side.stats), n * n))

    def compare(self, a, b, *, symmetric):
        Sa = self._indicator(a)
        Sb = Sa if symmetric else self._indicator(b)
        return (Sa @ Sb.T).toarray() / (a.n * self.k)


def mutual_knn_layers(sa: Stack, sb: Stack | None, *, k: int = 10, metric: str = "cosine"):
    """Mutual k-nearest-neighbour alignment (Huh et al. 2024).

    The mean over samples of ``|N_A(i) ∩ N_B(i)| / k``, where ``N(i)`` are the ``k`` nearest
    other samples.  Independent layers score about ``k / (n - 1)`` (stored in
    ``details["chance"]``).  With k fixed, the value depends on n (neighbourhoods shrink as n
    grows): compare values at equal n.

    Parameters
    ----------
    k : int
        Neighbours per sample, ``1 ≤ k < n - 1``.
    metric : {"cosine", "euclidean"}
        ``"cosine"`` (the default) on the raw features is Huh et al.'s: their code scales each
        sample to unit length and takes inner products.  It is invariant to rotations and
        per-sample scaling but not to translation.  ``"euclidean"`` (on centred features) is
        invariant to orthogonal transforms, isotropic scaling and translation.  Earlier
        versions of m2v_lab defaulted to ``"euclidean"``; pass it to reproduce their numbers.
        Huh et al. also clip outliers first: ``layer_similarity(..., clip=0.95)``.

    Ties among distances are broken arbitrarily but deterministically.
    """
    return _MutualKnn(k=k, metric=metric).run(sa, sb)


def make_measure(name: str, *, device="numpy", **options) -> _Measure:
    """The measure object of ``name`` (not ``"cka"``) with its options checked."""
    if name in ("procrustes", "pwcca"):
        return (_Procrustes if name == "procrustes" else _Pwcca)(device, **options)
    if name == "svcca":
        return _Svcca(device=device, **options)
    return {"rsa": _Rsa, "mutual_knn": _MutualKnn}[name](**options)
