"""HSIC of every layer pair at once: Gram space, streamed feature space, minibatches, RBF.

Linear-kernel HSIC, biased or debiased, follows from four statistics of column-centred
features ``X̃_a`` (n × d):

- ``T[a, b] = ⟨K_a, K_b⟩ = ‖X̃_aᵀ X̃_b‖²_F`` with ``K_a = X̃_a X̃_aᵀ`` (already double-centred),
- ``D[a, b] = Σ_i k_ai k_bi`` with ``k_ai = ‖x̃_ai‖²`` (the Gram diagonal),
- ``t_a = Σ_i k_ai``.

Biased HSIC is ``T / (n-1)²``.  Because a centred Gram has zero row sums, the unbiased HSIC
of Song et al. (2012) reduces to
``(T - n/(n-2)·D + t_a t_b / ((n-1)(n-2))) / (n(n-3))``,
so Gram space (``T`` as one product of flattened Grams) and feature space (``T`` from the
cross-products ``X̃_aᵀ X̃_b``) share one formula.  Feature space accumulates raw sums over
chunks of samples and centres at the end; a per-layer shift (the first chunk's mean) keeps
those sums free of the cancellation a large common offset would cause.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = [
    "HsicStats",
    "hsic",
    "gram_stats",
    "FeatureMoments",
    "rbf_hsic",
    "MEMORY_BYTES",
]

#: Working memory the Gram slabs and feature chunks aim to stay under.
MEMORY_BYTES = 256 * 2**20
_SQRT2 = float(np.sqrt(2.0))


@dataclass(frozen=True)
class HsicStats:
    """Linear-kernel HSIC statistics over ``n`` samples (NumPy float64).

    ``T``, ``D``: ``(layers_A, layers_B)``; ``t_a``, ``T_aa``, ``D_aa``: ``(layers_A,)``;
    ``t_b``, ``T_bb``, ``D_bb``: ``(layers_B,)``.  See the module docstring.
    """

    n: int
    T: np.ndarray
    D: np.ndarray
    t_a: np.ndarray
    t_b: np.ndarray
    T_aa: np.ndarray
    D_aa: np.ndarray
    T_bb: np.ndarray
    D_bb: np.ndarray

    @classmethod
    def symmetric(cls, n, T, D, t):
        """Statistics of one model with itself: the self terms are the diagonals."""
        diag_T, diag_D = np.diag(T).copy(), np.diag(D).copy()
        return cls(n, T, D, t, t, diag_T, diag_D, diag_T, diag_D)


def _hsic(T, D, t_a, t_b, n: int, debiased: bool):
    if not debiased:
        return T / (n - 1) ** 2
    return (T - n / (n - 2) * D + t_a * t_b / ((n - 1) * (n - 2))) / (n * (n - 3))


def hsic(stats: HsicStats, *, debiased: bool):
    """HSIC for all pairs and for each layer with itself.

    Returns
    -------
    H_ab : ndarray, shape (layers_A, layers_B)
    H_aa : ndarray, shape (layers_A,)
    H_bb : ndarray, shape (layers_B,)
    """
    n = stats.n
    H_ab = _hsic(stats.T, stats.D, stats.t_a[:, None], stats.t_b[None, :], n, debiased)
    H_aa = _hsic(stats.T_aa, stats.D_aa, stats.t_a, stats.t_a, n, debiased)
    H_bb = _hsic(stats.T_bb, stats.D_bb, stats.t_b, stats.t_b, n, debiased)
    return H_ab, H_aa, H_bb


def _gram_slab(x, r0: int, r1: int, backend):
    """Rows ``r0:r1`` of each layer's Gram, upper part only, flattened: ``(layers, ·)``.

    Off-diagonal blocks stand for themselves and their mirror image, hence the √2: the
    inner product of two slabs then equals that of the full Grams' rows.
    """
    K = x[:, r0:r1] @ backend.mT(x[:, r0:])
    K[:, :, r1 - r0 :] *= _SQRT2
    return K.reshape(K.shape[0], -1)


def gram_stats(xa, xb, backend, *, memory: int | None = None) -> HsicStats:
    """Statistics from Grams, built a block of rows at a time.

    Parameters
    ----------
    xa : backend array, shape (layers_A, n, dim_A)
        Column-centred float64 features.
    xb : backend array, shape (layers_B, n, dim_B), or None
        Same for B; None compares A with itself.
    memory : int, optional
        Bytes for one block of Gram rows; default :data:`MEMORY_BYTES`.
    """
    memory = MEMORY_BYTES if memory is None else memory
    n = xa.shape[1]
    k_a = (xa * xa).sum(2)
    k_b = k_a if xb is None else (xb * xb).sum(2)
    n_layers = xa.shape[0] + (0 if xb is None else xb.shape[0])
    rows = int(max(1, min(n, memory // (8 * n * n_layers))))
    T = backend.zeros((xa.shape[0], k_b.shape[0]))
    T_aa, T_bb = backend.zeros(xa.shape[0]), backend.zeros(k_b.shape[0])
    for r0 in range(0, n, rows):
        r1 = min(n, r0 + rows)
        sa = _gram_slab(xa, r0, r1, backend)
        if xb is None:
            T += sa @ sa.T
            continue
        sb = _gram_slab(xb, r0, r1, backend)
        T += sa @ sb.T
        T_aa += (sa * sa).sum(1)
        T_bb += (sb * sb).sum(1)
    np_ = backend.to_numpy
    D, t_a = np_(k_a @ k_b.T), np_(k_a.sum(1))
    if xb is None:
        return HsicStats.symmetric(n, np_(T), D, t_a)
    return HsicStats(
        n, np_(T), D, t_a, np_(k_b.sum(1)), np_(T_aa), np_((k_a * k_a).sum(1)), np_(T_bb), np_((k_b * k_b).sum(1))
    )


def _centre_moments(Csq, muCnu, PP, M_ab_nu, M_ba_mu, sp_a, sp_b, mu2_a, mu2_b, n):
    """``T`` and ``D`` of centred data from raw (shifted) moments; arguments broadcast."""
    T = Csq - 2 * n * muCnu + n * n * mu2_a * mu2_b
    D = PP - 2 * M_ab_nu + mu2_b * sp_a - 2 * M_ba_mu + 4 * muCnu + mu2_a * sp_b - 3 * n * mu2_a * mu2_b
    return T, D


class _Side:
    """Per-model sums: shift, Σx', Σ‖x'‖², and (when crossed) the within-layer moments."""

    def __init__(self, chunk, backend, shift, with_self_moments: bool):
        L, _, d = chunk.shape
        self.L, self.d = L, d
        self.shift = backend.asarray(chunk.mean(1, dtype=np.float64) if shift is None else shift)
        self.s = backend.zeros((L, d))
        self.sp = backend.zeros(L)
        self.with_self = with_self_moments
        if with_self_moments:
            self.C = backend.zeros((L, d, d))
            self.PP = backend.zeros(L)
            self.M = backend.zeros((L, d))

    def update(self, x, p, backend):
        """``x``: shifted chunk ``(layers, m, dim)``; ``p``: its squared row norms ``(layers, m)``."""
        self.s += x.sum(1)
        self.sp += p.sum(1)
        if self.with_self:
            self.C += backend.mT(x) @ x
            self.PP += (p * p).sum(1)
            self.M += (p[:, None, :] @ x)[:, 0, :]

    def mean(self, n, backend):
        mu = self.s / n
        return mu, backend.to_numpy((mu * mu).sum(1))

    def self_terms(self, n, backend):
        """``T_aa``, ``D_aa`` of each layer with itself."""
        mu, mu2 = self.mean(n, backend)
        np_ = backend.to_numpy
        Csq = np_((self.C * self.C).sum((1, 2)))
        muCmu = np_((mu[:, None, :] @ self.C @ mu[:, :, None])[:, 0, 0])
        M_mu = np_((self.M * mu).sum(1))
        return _centre_moments(Csq, muCmu, np_(self.PP), M_mu, M_mu, np_(self.sp), np_(self.sp), mu2, mu2, n)


class FeatureMoments:
    """Streaming feature-space sums from which :class:`HsicStats` follow (linear kernel).

    Memory is ``8·(layers_A·dim_A)·(layers_B·dim_B)`` bytes for the cross-products (for a
    within-model comparison of 13 × 768 features, 800 MB), whatever the number of samples.

    Parameters
    ----------
    backend
        From :func:`~m2v_lab.similarity._backend.get_backend`.
    cross : bool
        True to compare A with B, False to compare A with itself.
    shift_a, shift_b : ndarray, shape (layers, dim), optional
        Values subtracted before summing; default the first chunk's mean.  Any value gives
        the same result in exact arithmetic; one near the mean keeps float64 sums accurate.
    memory : int, optional
        Bytes for one piece of a chunk in float64; longer chunks are split.  Default
        :data:`MEMORY_BYTES`.
    """

    def __init__(self, backend, *, cross: bool, shift_a=None, shift_b=None, memory: int | None = None):
        self.backend, self.cross = backend, cross
        self.memory = MEMORY_BYTES if memory is None else memory
        self._shifts = (shift_a, shift_b)
        self.n = 0
        self.a = self.b = None

    def _start(self, ca, cb):
        bk = self.backend
        self.a = _Side(ca, bk, self._shifts[0], with_self_moments=self.cross)
        cols = ca.shape[0] * ca.shape[2]
        if self.cross:
            self.b = _Side(cb, bk, self._shifts[1], with_self_moments=True)
            cols_b = cb.shape[0] * cb.shape[2]
            self.C = bk.accumulator((cols, cols_b))
            self.PP = bk.zeros((ca.shape[0], cb.shape[0]))
            self.M_ab = bk.zeros((ca.shape[0], cols_b))
            self.M_ba = bk.zeros((cb.shape[0], cols))
        else:
            self.C = bk.accumulator((cols, cols))
            self.PP = bk.zeros((ca.shape[0], ca.shape[0]))
            self.M_ab = bk.zeros((ca.shape[0], cols))

    def update(self, ca: np.ndarray, cb: np.ndarray | None = None) -> None:
        """Add a chunk ``(layers, n_chunk, dim)`` of A (and the same samples of B when crossed)."""
        if self.a is None:
            self._start(ca, cb)
        width = ca.shape[0] * ca.shape[2] + (cb.shape[0] * cb.shape[2] if self.cross else 0)
        step = int(max(1, self.memory // (8 * width)))
        for r0 in range(0, ca.shape[1], step):
            self._update(ca[:, r0 : r0 + step], None if cb is None else cb[:, r0 : r0 + step])

    def _update(self, ca, cb):
        bk = self.backend
        xa = bk.asarray(ca) - self.a.shift[:, None, :]
        pa, Za = (xa * xa).sum(2), bk.rows(xa)
        self.n += ca.shape[1]
        self.a.update(xa, pa, bk)
        if not self.cross:
            bk.add_gram(self.C, Za)
            self.PP += pa @ pa.T
            self.M_ab += pa @ Za
            return
        xb = bk.asarray(cb) - self.b.shift[:, None, :]
        pb, Zb = (xb * xb).sum(2), bk.rows(xb)
        self.b.update(xb, pb, bk)
        bk.add_cross(self.C, Za, Zb)
        self.PP += pa @ pb.T
        self.M_ab += pa @ Zb
        self.M_ba += pb @ Za

    def stats(self) -> HsicStats:
        """Centre the sums and return the statistics of all samples seen."""
        bk, n, A = self.backend, self.n, self.a
        B = self.b if self.cross else A
        if not self.cross:
            bk.finish_gram(self.C)
        mu, mu2_a = A.mean(n, bk)
        nu, mu2_b = B.mean(n, bk)
        Csq, muCnu = np.empty((A.L, B.L)), np.empty((A.L, B.L))
        for i in range(A.L):
            block = self.C[i * A.d : (i + 1) * A.d]
            Csq[i] = bk.to_numpy((block * block).reshape(A.d, B.L, B.d).sum((0, 2)))
            muCnu[i] = bk.to_numpy(((mu[i] @ block).reshape(B.L, B.d) * nu).sum(1))
        M_ab_nu = bk.to_numpy((self.M_ab.reshape(A.L, B.L, B.d) * nu[None]).sum(2))
        M_ba = self.M_ba if self.cross else self.M_ab
        M_ba_mu = bk.to_numpy((M_ba.reshape(B.L, A.L, A.d) * mu[None]).sum(2)).T
        sp_a, sp_b = bk.to_numpy(A.sp), bk.to_numpy(B.sp)
        T, D = _centre_moments(
            Csq, muCnu, bk.to_numpy(self.PP), M_ab_nu, M_ba_mu,
            sp_a[:, None], sp_b[None, :], mu2_a[:, None], mu2_b[None, :], n,
        )  # fmt: skip
        t_a, t_b = sp_a - n * mu2_a, sp_b - n * mu2_b
        if not self.cross:
            return HsicStats.symmetric(n, T, D, t_a)
        T_aa, D_aa = A.self_terms(n, bk)
        T_bb, D_bb = B.self_terms(n, bk)
        return HsicStats(n, T, D, t_a, t_b, T_aa, D_aa, T_bb, D_bb)


def _centred_rbf_grams(x, fraction: float, debiased: bool, backend, degenerate: np.ndarray):
    """Per layer: RBF Gram with bandwidth ``fraction × √median(squared distance)``, centred.

    Biased: ``H K H``.  Debiased: U-centred (Székely & Rizzo), zero diagonal.  Layers
    already flagged in ``degenerate`` (or whose median distance is 0) give zeros.
    """
    L, n, _ = x.shape
    off_diag = 1.0 - backend.eye(n)
    out = backend.zeros((L, n * n))
    for i in range(L):
        if degenerate[i]:
            continue
        G = x[i] @ x[i].T
        k = (x[i] * x[i]).sum(1)
        sq = k[:, None] + k[None, :] - 2 * G
        sq = sq * (sq > 0)
        median = backend.median(sq)
        if median <= 0:
            degenerate[i] = True
            continue
        K = backend.exp(sq / (-2.0 * fraction**2 * median))
        if debiased:
            K = K * off_diag
            means = K.sum(0) / (n - 2)
            means = means - means.sum() / (2 * (n - 1))
            K = (K - means[:, None] - means[None, :]) * off_diag
        else:
            K = K - K.mean(0)[None, :] - K.mean(1)[:, None] + K.mean()
        out[i] = K.reshape(-1)
    return out


def rbf_hsic(xa, xb, *, fraction: float, debiased: bool, backend, degenerate_a, degenerate_b):
    """RBF-kernel HSIC of all pairs: ``(H_ab, H_aa, H_bb)`` as in :func:`hsic`.

    ``xa``, ``xb``: centred backend arrays ``(layers, n, dim)`` (``xb`` None for A with itself).
    ``degenerate_*``: boolean arrays ``(layers,)``, updated in place for zero median distance.
    """
    n = xa.shape[1]
    scale = n * (n - 3) if debiased else (n - 1) ** 2
    Ga = _centred_rbf_grams(xa, fraction, debiased, backend, degenerate_a)
    Gb = Ga if xb is None else _centred_rbf_grams(xb, fraction, debiased, backend, degenerate_b)
    H_ab = backend.to_numpy(Ga @ Gb.T) / scale
    H_aa = backend.to_numpy((Ga * Ga).sum(1)) / scale
    H_bb = backend.to_numpy((Gb * Gb).sum(1)) / scale
    return H_ab, H_aa, H_bb
