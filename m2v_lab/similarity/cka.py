"""Centred kernel alignment (Kornblith et al. 2019) for one pair and for all layer pairs."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..errors import AnalysisError, OptionError
from ._backend import get_backend
from ._inputs import ChunkPairs, Preprocess, Stack, as_stacks, constant_layers, is_stream, warn_constant
from ..options import flag, one_of, real_number, whole_number
from .hsic import PRECISIONS, FeatureMoments, centred_features, centred_grams, gram_stats, hsic, rbf_hsic
from .result import SimilarityResult

__all__ = ["cka", "cka_layers", "choose_method", "CkaOptions", "CkaNull"]

_METHODS = ("auto", "gram", "feature", "minibatch")
_DEFAULT_FRACTION = 0.5


@dataclass(frozen=True)
class CkaOptions:
    """CKA's options, checked when made.

    The fields are the keywords of :func:`~m2v_lab.similarity.layer_similarity` with the
    same names; ``sigma`` is checked whatever the kernel but only used by ``kernel="rbf"``,
    ``precision`` only by linear CKA in Gram space (the other paths are float64 throughout),
    and ``device`` is checked when the backend is chosen.

    Raises
    ------
    OptionError
        A value outside its choices, or a combination that does not go together
        (``batch_size`` without ``method="minibatch"``, RBF outside Gram space, biased
        minibatch CKA).
    """

    debiased: bool = True
    kernel: str = "linear"
    sigma: float | None = None
    method: str = "auto"
    batch_size: int | None = None
    device: str | None = "numpy"  # or a torch.device
    precision: str = "mixed"

    def __post_init__(self):
        flag("debiased", self.debiased)
        one_of("kernel", self.kernel, ("linear", "rbf"))
        one_of("method", self.method, _METHODS)
        one_of("precision", self.precision, PRECISIONS)
        if self.sigma is not None:  # whatever the kernel: a loop over kernels may pass one sigma to all
            real_number("sigma", self.sigma, low=0, hint=" (a fraction of the median distance, e.g. 0.5)")
        if self.kernel == "rbf" and self.method not in ("auto", "gram"):
            raise OptionError(f"kernel='rbf' is computed in Gram space only; use method='gram' (not "
                              f"{self.method!r}).")
        if self.method != "minibatch":
            if self.batch_size is not None:
                raise OptionError(f"batch_size is for method='minibatch' only (got method={self.method!r}).")
            return
        if not self.debiased:
            raise OptionError(
                "minibatch CKA averages the unbiased HSIC of each batch; a biased per-batch HSIC "
                "depends on the batch size. Use debiased=True, or another method for biased CKA."
            )
        if self.batch_size is not None:
            whole_number("batch_size", self.batch_size, minimum=4)

    @property
    def fraction(self) -> float:
        """The RBF bandwidth as a fraction of the median pairwise distance."""
        return _DEFAULT_FRACTION if self.sigma is None else float(self.sigma)


def choose_method(n: int, layers_a: int, dim_a: int, layers_b: int | None = None, dim_b: int | None = None) -> str:
    """``"gram"`` or ``"feature"``, whichever needs fewer multiply-adds for all pairs.

    Within one model: Gram space costs ``L·n²·d + L²·n²/2``, feature space ``L²·n·d²/2``,
    so feature space wins once ``n > L·d²/(2d + L)`` (about 5,000 for 13 × 768).
    """
    if layers_b is None:
        gram = layers_a * n * n * dim_a + layers_a**2 * n * n / 2
        feature = layers_a**2 * n * dim_a**2 / 2
    else:
        gram = n * n * (layers_a * dim_a + layers_b * dim_b) + layers_a * layers_b * n * n
        feature = n * layers_a * dim_a * layers_b * dim_b + n * (layers_a * dim_a**2 + layers_b * dim_b**2)
    return "gram" if gram <= feature else "feature"


class _Extremes:
    """Running per-layer min and max over a stream, to detect constant layers."""

    def __init__(self):
        self.lo = self.hi = None

    def update(self, chunk: np.ndarray) -> None:
        lo, hi = chunk.min(axis=1), chunk.max(axis=1)
        self.lo = lo if self.lo is None else np.minimum(self.lo, lo)
        self.hi = hi if self.hi is None else np.maximum(self.hi, hi)

    def constant(self) -> np.ndarray:
        return (self.lo == self.hi).all(axis=1)


def _to_cka(H_ab, H_aa, H_bb, bad_a, bad_b):
    """Normalise HSIC to CKA; NaN in rows/columns of layers without (positive) self-HSIC."""
    bad_a = bad_a | ~(H_aa > 0)
    bad_b = bad_b | ~(H_bb > 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        values = H_ab / np.sqrt(np.outer(np.where(bad_a, np.nan, H_aa), np.where(bad_b, np.nan, H_bb)))
    return values, bad_a, bad_b


def _min_n(n: int, debiased: bool, where: str) -> None:
    need = 4 if debiased else 2
    if n < need:
        raise AnalysisError(
            f"{where} has n={n} samples; {'debiased' if debiased else 'biased'} CKA needs at least {need}."
        )


def _rebatch(pairs, batch_size: int | None):
    """Yield ``(a, b)`` minibatches of ``batch_size`` samples from chunk pairs.

    With ``batch_size=None`` each chunk is one batch.  A final remainder of fewer than 4
    samples (too few for the unbiased estimator) joins the batch before it.
    """
    pending, buf_a, buf_b, held = None, [], [], 0

    def cut(k):
        nonlocal buf_a, buf_b, held
        a = np.concatenate(buf_a, axis=1)
        b = None if buf_b[0] is None else np.concatenate(buf_b, axis=1)
        buf_a, buf_b = [a[:, k:]], [None if b is None else b[:, k:]]
        held -= k
        return a[:, :k], None if b is None else b[:, :k]

    for ca, cb in pairs:
        buf_a.append(ca)
        buf_b.append(cb)
        held += ca.shape[1]
        while held >= (batch_size or 1) and held >= 4:
            batch = cut(batch_size or held)
            if pending is not None:
                yield pending
            pending = batch
    if held:
        tail = cut(held)
        if tail[0].shape[1] < 4 and pending is not None:
            tail = tuple(None if p is None else np.concatenate([p, t], axis=1) for p, t in zip(pending, tail))
        elif pending is not None:
            yield pending
        pending = tail
    if pending is not None:
        yield pending


def _minibatch_hsic(pairs, backend, cross: bool):
    """Sample-weighted mean of per-batch unbiased HSIC (Nguyen, Raghu & Kornblith 2021)."""
    sums, n, n_batches = None, 0, 0
    ext_a, ext_b = _Extremes(), _Extremes()
    for ca, cb in pairs:
        m = ca.shape[1]
        _min_n(m, True, f"minibatch {n_batches}")
        ext_a.update(ca)
        xa, ka = centred_features(ca, backend)
        xb = kb = None
        if cross:
            ext_b.update(cb)
            xb, kb = centred_features(cb, backend)
        H = hsic(gram_stats(xa, ka, xb, kb, backend), debiased=True)
        # Weight by batch size: a short last batch counts for what it holds.
        sums = [m * h for h in H] if sums is None else [s + m * h for s, h in zip(sums, H)]
        n += m
        n_batches += 1
    if sums is None:
        raise AnalysisError("the minibatch stream yielded no samples.")
    return [s / n for s in sums], n, n_batches, ext_a.constant(), (ext_b if cross else ext_a).constant()


def _stream_cka(pairs: ChunkPairs, opts: CkaOptions, backend):
    cross = pairs.cross
    if opts.method == "minibatch":
        H, n, n_batches, const_a, const_b = _minibatch_hsic(_rebatch(pairs, opts.batch_size), backend, cross)
        return H, n, const_a, const_b, {"batches": n_batches}
    moments, ext_a, ext_b = FeatureMoments(backend, cross=cross), _Extremes(), _Extremes()
    for ca, cb in pairs:
        moments.update(ca, cb)
        ext_a.update(ca)
        if cross:
            ext_b.update(cb)
    if pairs.rows is None:
        raise AnalysisError(f"the feature stream {pairs.labels[0]} yielded no chunks.")
    _min_n(moments.n, opts.debiased, "the stream")
    H = hsic(moments.stats(), debiased=opts.debiased)
    return H, moments.n, ext_a.constant(), (ext_b if cross else ext_a).constant(), {}


def _array_cka(sa: Stack, sb: Stack | None, opts: CkaOptions, method: str, backend):
    const_a = constant_layers(sa.data)
    const_b = const_a if sb is None else constant_layers(sb.data)
    if method == "minibatch":
        bs = opts.batch_size
        pieces = ((sa.data[:, i : i + bs], None if sb is None else sb.data[:, i : i + bs]) for i in range(0, sa.n, bs))
        H, _, n_batches, _, _ = _minibatch_hsic(_rebatch(pieces, None), backend, sb is not None)
        return H, const_a, const_b, {"batches": n_batches}
    _min_n(sa.n, opts.debiased, sa.label)
    if opts.kernel == "rbf":
        xa = centred_features(sa.data, backend)[0]
        xb = None if sb is None else centred_features(sb.data, backend)[0]
        deg_a = const_a.copy()
        deg_b = deg_a if sb is None else const_b.copy()
        H = rbf_hsic(xa, xb, fraction=opts.fraction, debiased=opts.debiased, backend=backend, degenerate_a=deg_a,
                     degenerate_b=deg_b)  # fmt: skip
        return H, deg_a, deg_b, {}
    if method == "gram":
        single = opts.precision == "mixed"
        xa, ka = centred_features(sa.data, backend, single=single)
        xb, kb = (None, None) if sb is None else centred_features(sb.data, backend, single=single)
        stats = gram_stats(xa, ka, xb, kb, backend)
        return hsic(stats, debiased=opts.debiased), const_a, const_b, {"precision": opts.precision}
    # Feature space with the exact means as shifts: the sums are already centred.
    moments = FeatureMoments(
        backend,
        cross=sb is not None,
        shift_a=sa.data.mean(1, dtype=np.float64),
        shift_b=None if sb is None else sb.data.mean(1, dtype=np.float64),
    )
    moments.update(sa.data, None if sb is None else sb.data)
    return hsic(moments.stats(), debiased=opts.debiased), const_a, const_b, {}


def cka_layers(A, B, opts: CkaOptions, *, rows: Sequence[str] | None = None, cols: Sequence[str] | None = None,
               labels: tuple[str, str] = ("A", "B"), preprocess: Preprocess = Preprocess()) -> SimilarityResult:
    """CKA of every layer of A with every layer of B; see :func:`~m2v_lab.similarity.layer_similarity`.

    Raises
    ------
    OptionError
        ``opts`` that do not fit the input (a stream with ``method="gram"``, minibatch CKA of
        arrays without ``batch_size``, a stream with ``standardize`` or ``clip``), or a device
        that is not there.
    """
    streaming = is_stream(A) or (B is not None and is_stream(B))
    if streaming and opts.method not in ("auto", "feature", "minibatch"):
        raise OptionError(f"a stream of chunks can be compared with method='feature' or 'minibatch', not "
                          f"{opts.method!r}.")
    if streaming and preprocess.active:
        raise OptionError("standardize and clip need each dimension's statistics over all samples before the "
                          "sums start, which one pass over a stream cannot give; pass arrays (layers, n, dim).")
    if not streaming and opts.method == "minibatch" and opts.batch_size is None:
        raise OptionError("method='minibatch' on arrays needs batch_size (samples per batch, at least 4).")
    backend = get_backend(opts.device)
    details = {"kernel": opts.kernel, "backend": backend.name}
    if opts.kernel == "rbf":
        details["sigma"] = opts.fraction
    if streaming:
        pairs = ChunkPairs(A, B, rows=rows, cols=cols, labels=labels)
        method = "feature" if opts.method == "auto" else opts.method
        H, n, bad_a, bad_b, extra = _stream_cka(pairs, opts, backend)
        row_names, col_names, pairing = pairs.rows, pairs.cols, pairs.details
    else:
        sa, sb, pairing = as_stacks(A, B, rows=rows, cols=cols, labels=labels)
        sa, sb = preprocess.apply(sa), None if sb is None else preprocess.apply(sb)
        method = opts.method
        if method == "auto":
            method = "gram" if opts.kernel == "rbf" else choose_method(
                sa.n, *sa.data.shape[::2], *(() if sb is None else sb.data.shape[::2])
            )
        H, bad_a, bad_b, extra = _array_cka(sa, sb, opts, method, backend)
        n, row_names = sa.n, sa.names
        col_names = row_names if sb is None else sb.names
    values, bad_a, bad_b = _to_cka(*H, bad_a, bad_b)
    warn_constant(row_names, bad_a, labels[0], n)
    if B is not None:
        warn_constant(col_names, bad_b, labels[1], n)
    if method == "minibatch":
        details["batch_size"] = opts.batch_size
    details.update(extra)
    details.update(pairing)
    details.update(preprocess.details())
    return SimilarityResult(
        values=values,
        rows=row_names,
        cols=col_names,
        measure="cka",
        estimator="debiased" if opts.debiased else "biased",
        method=method,
        n=n,
        details=details,
    )


class CkaNull:
    """CKA of A with permutations of B's samples, from centred Grams built once per layer.

    Permuting samples permutes a centred Gram's rows and columns, so each permutation costs one
    gather of B's Grams and one product (``layers_A · layers_B · n²``) instead of new Grams.
    Float64.  Holds both sides' ``(layers, n, n)`` Grams: :meth:`fits` says whether they fit
    :data:`NULL_MEMORY_BYTES`.

    Parameters
    ----------
    sa : Stack
    sb : Stack or None
        None for A with (a permuted copy of) itself.
    opts : CkaOptions
    """

    #: Bytes the kept Grams (both sides, and one permuted block) may take.
    NULL_MEMORY_BYTES = 2**30

    def __init__(self, sa: Stack, sb: Stack | None, opts: CkaOptions):
        self.backend = bk = get_backend(opts.device)
        self.n = n = sa.n
        grams = []
        for stack in (sa,) if sb is None else (sa, sb):
            degenerate = constant_layers(stack.data)
            G = centred_grams(centred_features(stack.data, bk)[0], kernel=opts.kernel, debiased=opts.debiased,
                              fraction=opts.fraction, backend=bk, degenerate=degenerate)
            grams.append(G)
        self.Ga, self.Gb = grams[0], grams[-1]
        self.self_a = bk.to_numpy((self.Ga * self.Ga).sum((1, 2)))
        self.self_b = bk.to_numpy((self.Gb * self.Gb).sum((1, 2)))
        self._rows = max(1, min(n, self.NULL_MEMORY_BYTES // 4 // (8 * n * self.Gb.shape[0])))

    @classmethod
    def fits(cls, n: int, layers_a: int, layers_b: int | None, opts: CkaOptions) -> bool:
        """Whether the Grams of ``n`` samples fit, and the options allow the shortcut (not minibatch)."""
        kept = 8 * n * n * (layers_a + (layers_b or 0))
        return opts.method != "minibatch" and kept <= 3 * cls.NULL_MEMORY_BYTES // 4

    def __call__(self, order: np.ndarray) -> np.ndarray:
        """CKA ``(layers_A, layers_B)`` of A with B's samples taken in ``order``."""
        bk, n = self.backend, self.n
        order = bk.index(order)
        T = 0.0
        for r0 in range(0, n, self._rows):  # a block of permuted rows at a time
            r1 = min(n, r0 + self._rows)
            Pb = self.Gb[:, order[r0:r1]][:, :, order]
            T = T + bk.to_numpy(self.Ga[:, r0:r1].reshape(self.Ga.shape[0], -1) @ Pb.reshape(Pb.shape[0], -1).T)
        with np.errstate(invalid="ignore", divide="ignore"):  # the HSIC scale cancels in the ratio
            return T / np.sqrt(np.outer(self.self_a, self.self_b))


def cka(X, Y, *, kernel: str = "linear", debiased: bool = False, sigma: float | None = None) -> float:
    """CKA between two representations of the same samples.

    Parameters
    ----------
    X : array_like, shape (n, dim_x)
    Y : array_like, shape (n, dim_y)
    kernel : {"linear", "rbf"}
    debiased : bool
        Use the unbiased HSIC of Song et al. (2012).  Biased CKA of independent data is far
        from 0 when n is not much larger than the dimension (0.94 at n=50, d=768).
    sigma : float, optional
        RBF only: bandwidth as a fraction of the median pairwise distance
        (``σ² = sigma² · median‖x_i - x_j‖²`` as in Kornblith et al.'s code); default 0.5.

    Returns
    -------
    float
        1 for identical representations; NaN (with a warning) when X or Y is constant.

    Notes
    -----
    Linear CKA is invariant to orthogonal transforms, isotropic scaling and translation of
    either input; RBF CKA with a median-scaled bandwidth too.  Computed in float64 throughout
    (``layer_similarity``'s ``precision="float64"``).
    """
    arrays = []
    for arr, name in ((X, "X"), (Y, "Y")):
        arr = np.asarray(arr)
        if arr.ndim != 2:
            raise AnalysisError(f"{name} has shape {arr.shape}; cka() compares two (n, dim) arrays.")
        arrays.append(arr[None])
    # One pair costs little: float64 throughout, the values of Kornblith et al.'s code to 1e-10.
    opts = CkaOptions(debiased=debiased, kernel=kernel, sigma=sigma, method="gram", precision="float64")
    result = cka_layers(arrays[0], arrays[1], opts, rows=["X"], cols=["Y"], labels=("X", "Y"))
    return float(result.values[0, 0])
