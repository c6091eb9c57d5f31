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

Gram space splits ``T`` into the diagonal part, which is ``D`` (float64, from the features),
and the off-diagonal part, products of Gram slabs.  With ``precision="mixed"`` the slabs are
float32 Grams of features centred in float64, widened to float64 a chunk at a time for their
products: the Grams are the only float32 step, and the centring, the diagonal and every sum are
float64 (CKA within 1e-8 of the float64 path on transformer-like features, about twice as fast;
``benchmarks/similarity.py``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = [
    "HsicStats",
    "hsic",
    "centred_features",
    "gram_stats",
    "FeatureMoments",
    "RbfGrams",
    "rbf_hsic",
    "centred_grams",
    "MEMORY_BYTES",
    "PRECISIONS",
]

#: Working memory the Gram slabs and feature chunks aim to stay under.
MEMORY_BYTES = 256 * 2**20
#: ``precision=`` of Gram-space linear CKA: float32 Grams of float64-centred features, or float64 throughout.
PRECISIONS = ("mixed", "float64")
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


def centred_features(data: np.ndarray, backend, *, single: bool = False):
    """Column-centred features and their squared row norms, a layer at a time.

    Parameters
    ----------
    data : ndarray, shape (layers, n, dim)
    single : bool
        Store the centred features in float32 (centred in float64 first, so that a large
        common offset costs no precision).

    Returns
    -------
    x : backend array, shape (layers, n, dim)
        float64, or float32 when ``single``.
    k : backend array, shape (layers, n)
        ``‖x̃_i‖²`` in float64, from the float64 centred values.
    """
    L, n, d = data.shape
    x = backend.zeros((L, n, d), "float32" if single else "float64")
    k = backend.zeros((L, n))
    for i in range(L):  # one layer's float64 copy at a time, not the whole stack's
        xi = backend.asarray(data[i])
        xi = xi - xi.mean(0)[None, :]
        k[i] = (xi * xi).sum(1)
        x[i] = xi
    return x, k


def _slab_rows(n: int, layers: int, bytes_per_entry: int, memory: int | None) -> int:
    """Rows per block so that ``layers`` slabs of ``rows × n`` entries fit ``memory``."""
    memory = MEMORY_BYTES if memory is None else memory
    return int(max(1, min(n, memory // (bytes_per_entry * n * layers))))


def _upper_slab(K, r0: int, backend):
    """Rows ``r0:r1`` × columns ``r0:`` of each layer's centred Gram, flattened: ``(layers, ·)``.

    The diagonal is left out (zeroed) and the block right of the diagonal block stands for itself
    and its mirror image, hence the √2: the inner product of two slabs then equals that of the
    full Grams' rows without their diagonal.
    """
    m = K.shape[1]
    idx = backend.arange(m)
    K[:, idx, idx] = 0.0
    K[:, :, m:] *= _SQRT2
    return K.reshape(K.shape[0], -1)


#: Columns of a float32 slab widened at a time, into a buffer that stays in cache.
_CHUNK = 16384


def _block_products(sa, sb, backend):
    """``sa @ sbᵀ`` and the self terms ``Σ sa²``, ``Σ sb²`` (None when ``sb`` is None), in float64.

    Float32 slabs are widened a chunk of columns at a time into small reused float64 buffers:
    the sums stay float64 (a float32 product of n²/2 columns would round sums that long at
    ~1e-7), and no float64 copy of the slab is ever made (that copy cost a third of the time).
    """
    if sa.itemsize == 8:
        if sb is None:
            return sa @ sa.T, None, None
        return sa @ sb.T, (sa * sa).sum(1), (sb * sb).sum(1)
    width = min(_CHUNK, sa.shape[1])
    buf_a = backend.zeros((sa.shape[0], width))
    buf_b = None if sb is None else backend.zeros((sb.shape[0], width))
    T = T_aa = T_bb = 0.0
    for c0 in range(0, sa.shape[1], width):
        w = min(width, sa.shape[1] - c0)
        ca = buf_a[:, :w]
        ca[...] = sa[:, c0 : c0 + w]
        if sb is None:
            T = T + ca @ ca.T
            continue
        cb = buf_b[:, :w]
        cb[...] = sb[:, c0 : c0 + w]
        T, T_aa, T_bb = T + ca @ cb.T, T_aa + (ca * ca).sum(1), T_bb + (cb * cb).sum(1)
    return T, None if sb is None else T_aa, None if sb is None else T_bb


def _slab_products(slab_a, slab_b, n: int, rows: int, backend):
    """``Σ`` over row blocks of ``slab_a(r0, r1) @ slab_b(r0, r1)ᵀ`` (and the self terms when crossed).

    Returns ``(T, T_aa, T_bb)`` as NumPy float64 arrays; ``T_aa``/``T_bb`` are None for one model
    with itself.
    """
    T = T_aa = T_bb = 0.0
    with backend.exact():
        for r0 in range(0, n, rows):
            r1 = min(n, r0 + rows)
            t, t_aa, t_bb = _block_products(slab_a(r0, r1), None if slab_b is None else slab_b(r0, r1), backend)
            T = T + t
            if slab_b is not None:
                T_aa, T_bb = T_aa + t_aa, T_bb + t_bb
    np_ = backend.to_numpy
    return np_(T), None if slab_b is None else np_(T_aa), None if slab_b is None else np_(T_bb)


def gram_stats(xa, ka, xb, kb, backend, *, memory: int | None = None) -> HsicStats:
    """Statistics from Grams, built a block of rows at a time (upper part only: they are symmetric).

    Parameters
    ----------
    xa : backend array, shape (layers_A, n, dim_A)
        Column-centred features, float64 or (mixed precision) float32.
    ka : backend array, shape (layers_A, n)
        Their squared row norms in float64 (:func:`centred_features`).
    xb, kb : same for B, or None to compare A with itself
    memory : int, optional
        Bytes for one block of Gram rows; default :data:`MEMORY_BYTES`.
    """
    n = xa.shape[1]
    kb_ = ka if xb is None else kb
    n_layers = xa.shape[0] + (0 if xb is None else xb.shape[0])
    rows = _slab_rows(n, n_layers, xa.itemsize, memory)

    def slab(x):
        return lambda r0, r1: _upper_slab(x[:, r0:r1] @ backend.mT(x[:, r0:]), r0, backend)

    T, T_aa, T_bb = _slab_products(slab(xa), None if xb is None else slab(xb), n, rows, backend)
    np_ = backend.to_numpy
    D, t_a = np_(ka @ kb_.T), np_(ka.sum(1))
    if xb is None:
        return HsicStats.symmetric(n, T + D, D, t_a)
    D_aa, D_bb = np_((ka * ka).sum(1)), np_((kb * kb).sum(1))
    return HsicStats(n, T + D, D, t_a, np_(kb.sum(1)), T_aa + D_aa, D_aa, T_bb + D_bb, D_bb)


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



class RbfGrams:
    """Centred RBF Grams of every layer, produced a block of rows at a time.

    Per layer: bandwidth ``fraction × √median(squared distance)`` (the median over all n²
    entries, diagonal included, as Kornblith et al.'s code takes it), then the Gram centred:
    ``H K H`` (biased) or U-centred with a zero diagonal (debiased; Székely & Rizzo).  Nothing
    holds more than one layer's ``n(n-1)/2`` distances (for the median) or one block of rows.

    Parameters
    ----------
    x : backend array, shape (layers, n, dim)
        Column-centred float64 features.
    fraction : float
    debiased : bool
    backend
    degenerate : ndarray of bool, shape (layers,)
        Layers known to be constant; updated in place for a zero median distance.  Their Grams
        are zeros.
    memory : int, optional
        Bytes for one block; default :data:`MEMORY_BYTES`.
    """

    #: float64 temporaries per kernel entry while a block is made (distances, kernel, centred)
    BYTES_PER_ENTRY = 32

    def __init__(self, x, *, fraction: float, debiased: bool, backend, degenerate: np.ndarray,
                 memory: int | None = None):
        L, n, _ = x.shape
        self.x, self.k, self.n, self.layers = x, (x * x).sum(2), n, L
        self.debiased, self.backend = debiased, backend
        self.means = backend.zeros((L, n))
        gamma, grand = np.zeros(L), np.zeros(L)
        rows = _slab_rows(n, 1, self.BYTES_PER_ENTRY, memory)
        for i in np.flatnonzero(~degenerate):
            median = self._median(i, rows)
            if median <= 0:
                degenerate[i] = True
                continue
            gamma[i] = -1.0 / (2.0 * fraction**2 * median)
            grand[i] = self._centring(i, gamma[i], rows)
        live = np.where(degenerate, 0.0, 1.0)
        self.gamma = backend.asarray(gamma)[:, None, None]
        self.grand = backend.asarray(grand)[:, None, None]
        self.live = backend.asarray(live)[:, None, None]

    def _sq(self, layers, r0: int, r1: int, c0: int):
        """Squared distances of rows ``r0:r1`` to samples ``c0:`` (``layers``: an index or a slice)."""
        x, k = self.x[layers], self.k[layers]
        sq = k[..., r0:r1, None] + k[..., None, c0:] - 2 * (x[..., r0:r1, :] @ self.backend.mT(x[..., c0:, :]))
        return sq * (sq > 0)

    def _median(self, i: int, rows: int) -> float:
        """Median of layer ``i``'s n × n squared distances, from the ``n(n-1)/2`` above the diagonal.

        The n² entries are the n zeros of the diagonal and each pair twice: sorted position
        ``p ≥ n`` holds the pair of rank ``(p - n) // 2``.
        """
        bk, n = self.backend, self.n
        upper = bk.zeros(n * (n - 1) // 2)
        pos = 0
        for r0 in range(0, n, rows):
            r1 = min(n, r0 + rows)
            block = self._sq(i, r0, r1, r0)[bk.upper_mask(r1 - r0, n - r0)]
            upper[pos : pos + block.shape[0]] = block
            pos += block.shape[0]
        middle = ((n * n - 1) // 2, n * n // 2)
        ranks = sorted({(p - n) // 2 for p in middle if p >= n})
        value = dict(zip(ranks, bk.smallest(upper, ranks)))
        return sum(value[(p - n) // 2] if p >= n else 0.0 for p in middle) / 2

    def _centring(self, i: int, gamma: float, rows: int) -> float:
        """Store layer ``i``'s centring means from its kernel's row sums; return the grand mean (biased)."""
        bk, n = self.backend, self.n
        sums = bk.zeros(n)
        for r0 in range(0, n, rows):  # upper blocks only: the part right of the diagonal block adds to both
            r1 = min(n, r0 + rows)
            K = bk.exp(self._sq(i, r0, r1, r0) * gamma)
            if self.debiased:
                idx = bk.arange(r1 - r0)
                K[idx, idx] = 0.0
            sums[r0:r1] += K.sum(1)
            sums[r1:] += K[:, r1 - r0 :].sum(0)
        if self.debiased:
            means = sums / (n - 2)
            self.means[i] = means - means.sum() / (2 * (n - 1))
            return 0.0
        self.means[i] = sums / n
        return float(sums.sum()) / n**2

    def rows(self, r0: int, r1: int, c0: int = 0):
        """Rows ``r0:r1``, columns ``c0:`` of every layer's centred Gram: ``(layers, r1 - r0, n - c0)``."""
        K = self.backend.exp(self._sq(slice(None), r0, r1, c0) * self.gamma)
        K = K - self.means[:, r0:r1, None] - self.means[:, None, c0:]
        if self.debiased:
            idx = self.backend.arange(r1 - r0)
            K[:, idx, idx + (r0 - c0)] = 0.0
        else:
            K = K + self.grand
        return K * self.live

    def slab(self, r0: int, r1: int):
        """:func:`_upper_slab` of the centred Grams (their diagonal goes in separately: see :func:`rbf_hsic`)."""
        return _upper_slab(self.rows(r0, r1, r0), r0, self.backend)

    def diagonal(self):
        """``(layers, n)`` diagonal of every layer's centred Gram (zeros when debiased)."""
        if self.debiased:
            return self.backend.zeros((self.layers, self.n))
        return (1.0 - 2.0 * self.means + self.grand[:, :, 0]) * self.live[:, :, 0]


def rbf_hsic(xa, xb, *, fraction: float, debiased: bool, backend, degenerate_a, degenerate_b,
             memory: int | None = None):
    """RBF-kernel HSIC of all pairs: ``(H_ab, H_aa, H_bb)`` as in :func:`hsic`.

    ``xa``, ``xb``: centred float64 backend arrays ``(layers, n, dim)`` (``xb`` None for A with
    itself).  ``degenerate_*``: boolean arrays ``(layers,)``, updated in place for zero median
    distance.  Memory: one layer's distances for its median and one block of Gram rows
    (:class:`RbfGrams`), never a whole ``(layers, n²)`` stack.
    """
    n = xa.shape[1]
    scale = n * (n - 3) if debiased else (n - 1) ** 2
    ga = RbfGrams(xa, fraction=fraction, debiased=debiased, backend=backend, degenerate=degenerate_a, memory=memory)
    gb = ga if xb is None else RbfGrams(xb, fraction=fraction, debiased=debiased, backend=backend,
                                        degenerate=degenerate_b, memory=memory)  # fmt: skip
    rows = _slab_rows(n, ga.layers + (0 if xb is None else gb.layers), RbfGrams.BYTES_PER_ENTRY, memory)
    T, T_aa, T_bb = _slab_products(ga.slab, None if xb is None else gb.slab, n, rows, backend)
    np_ = backend.to_numpy
    da, db = np_(ga.diagonal()), np_(gb.diagonal())
    T = T + da @ db.T
    if xb is None:
        return T / scale, np.diag(T) / scale, np.diag(T) / scale
    return T / scale, (T_aa + (da * da).sum(1)) / scale, (T_bb + (db * db).sum(1)) / scale


def centred_grams(x, *, kernel: str, debiased: bool, fraction: float, backend, degenerate: np.ndarray):
    """Every layer's whole centred Gram, ``(layers, n, n)`` float64: what a permutation null reuses.

    Centred as the HSIC estimators need (double-centred when biased, U-centred when debiased), so
    that ``HSIC = ⟨G_a, G_b⟩ / scale``; permuting samples permutes a centred Gram's rows and columns.
    ``x``: column-centred float64 features.
    """
    if kernel == "rbf":
        grams = RbfGrams(x, fraction=fraction, debiased=debiased, backend=backend, degenerate=degenerate)
        return grams.rows(0, x.shape[1])
    n = x.shape[1]
    K = x @ backend.mT(x)
    idx = backend.arange(n)
    if not debiased:
        means = K.mean(2)
        return K - means[:, :, None] - means[:, None, :] + means.mean(1)[:, None, None]
    K[:, idx, idx] = 0.0
    means = K.sum(2) / (n - 2)
    means = means - means.sum(1)[:, None] / (2 * (n - 1))
    K = K - means[:, :, None] - means[:, None, :]
    K[:, idx, idx] = 0.0
    return K
