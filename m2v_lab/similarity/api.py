"""``layer_similarity``: one entry point for every measure."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from ..errors import OptionError
from ._inputs import Preprocess, Stack, as_stacks, warn_constant
from ..options import one_of
from .cka import CkaNull, CkaOptions, cka_layers
from .measures import make_measure, mutual_knn_layers, procrustes_layers, pwcca_layers, rsa_layers, svcca_layers
from .result import SimilarityResult

__all__ = ["layer_similarity", "MEASURES"]

#: measure name → (function, the options it takes)
MEASURES = {
    "cka": (cka_layers, ()),
    "rsa": (rsa_layers, ("distance", "compare")),
    "procrustes": (procrustes_layers, ()),
    "svcca": (svcca_layers, ("n_components", "variance", "keep")),
    "pwcca": (pwcca_layers, ()),
    "mutual_knn": (mutual_knn_layers, ("k", "metric")),
}
#: measures that run where device= says (the others run in NumPy)
_ON_DEVICE = ("cka", "procrustes", "svcca", "pwcca")


@dataclass(frozen=True)
class Plan:
    """A measure with all its options checked: what :func:`layer_similarity` runs, and what a
    permutation null reuses (:meth:`null`)."""

    measure: str
    preprocess: Preprocess
    cka: CkaOptions | None = None
    other: object = None  # the measure object of measures.py, for measures other than CKA

    def run(self, A, B=None, *, rows=None, cols=None) -> SimilarityResult:
        """The measure for every layer pair of A and B (see :func:`layer_similarity`)."""
        return self._run(A, B, rows=rows, cols=cols).with_(models=model_labels(A, B))

    def _run(self, A, B, *, rows, cols) -> SimilarityResult:
        if self.cka is not None:
            return cka_layers(A, B, self.cka, rows=rows, cols=cols, preprocess=self.preprocess)
        sa, sb, pairing = as_stacks(A, B, rows=rows, cols=cols)
        sa, sb = self.preprocess.apply(sa), None if sb is None else self.preprocess.apply(sb)
        values, bad_a, bad_b, estimator, how, details = self.other.run(sa, sb)
        values[bad_a, :] = np.nan
        values[:, bad_b] = np.nan
        warn_constant(sa.names, bad_a, "A", sa.n, reason="have no usable variance", stacklevel=4)
        if sb is not None:
            warn_constant(sb.names, bad_b, "B", sa.n, reason="have no usable variance", stacklevel=4)
        if hasattr(self.other, "backend"):
            details["backend"] = self.other.backend.name
        return SimilarityResult(
            values=values,
            rows=sa.names,
            cols=sa.names if sb is None else sb.names,
            measure=self.measure,
            estimator=estimator,
            method=how,
            n=sa.n,
            details={**details, **pairing, **self.preprocess.details()},
        )

    def null(self, sa: Stack, sb: Stack | None) -> Callable[[np.ndarray], np.ndarray] | None:
        """``order → values`` of A against B's samples taken in ``order``, from statistics computed once.

        None where that shortcut does not apply (minibatch CKA, or Grams too large to keep);
        then each permutation is recomputed from the features.
        """
        sa, sb = self.preprocess.apply(sa), None if sb is None else self.preprocess.apply(sb)
        if self.cka is not None:
            fits = CkaNull.fits(sa.n, sa.data.shape[0], None if sb is None else sb.data.shape[0], self.cka)
            return CkaNull(sa, sb, self.cka) if fits else None
        m = self.other
        a = m.prepare(sa)
        b = a if sb is None else m.prepare(sb)
        return lambda order: m.compare(a, m.permuted(b, order), symmetric=False)


def model_labels(A, B=None) -> tuple[str, ...]:
    """``(A's model, B's model)`` from Features inputs (``Features.model_label``); ``()`` when either is unknown."""
    labels = tuple(getattr(side, "model_label", None) for side in ((A,) if B is None else (A, B)))
    return labels if all(labels) else ()


def plan(measure: str = "cka", *, debiased: bool | None = None, kernel: str = "linear", sigma: float | None = None,
         method: str = "auto", batch_size: int | None = None, device="numpy", precision: str = "mixed",
         standardize: bool = False, clip: float | None = None, **options) -> Plan:
    """Check :func:`layer_similarity`'s options (all of them, before any work) and return the :class:`Plan`.

    Raises
    ------
    OptionError
        As :func:`layer_similarity`.
    """
    one_of("measure", measure, tuple(MEASURES))
    allowed = MEASURES[measure][1]
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise OptionError(
            f"option(s) {unknown} do not apply to measure={measure!r}; it takes {list(allowed) or 'none'}."
        )
    preprocess = Preprocess(standardize=standardize, clip=clip)
    if measure == "cka":
        opts = CkaOptions(debiased=True if debiased is None else debiased, kernel=kernel, sigma=sigma,
                          method=method, batch_size=batch_size, device=device, precision=precision)  # fmt: skip
        return Plan(measure, preprocess, cka=opts)
    # A CKA option given to another measure is a mistake, not a no-op.  (The isinstance test
    # first: a torch.device or an array compared with == would not give one bool.)
    given = [name for name, value, default in (
        ("debiased", debiased, None), ("kernel", kernel, "linear"), ("sigma", sigma, None), ("method", method, "auto"),
        ("batch_size", batch_size, None), ("precision", precision, "mixed"),
        *((("device", device, "numpy"),) if measure not in _ON_DEVICE else ()),
    ) if not (isinstance(value, type(default)) and value == default)]  # fmt: skip
    if given:
        raise OptionError(f"{given} apply to measure='cka' only, not to measure={measure!r}.")
    kw = {"device": device} if measure in _ON_DEVICE else {}
    return Plan(measure, preprocess, other=make_measure(measure, **kw, **options))


def layer_similarity(
    A,
    B=None,
    *,
    measure: str = "cka",
    debiased: bool | None = None,
    kernel: str = "linear",
    sigma: float | None = None,
    method: str = "auto",
    batch_size: int | None = None,
    device="numpy",
    precision: str = "mixed",
    standardize: bool = False,
    clip: float | None = None,
    rows: Sequence[str] | None = None,
    cols: Sequence[str] | None = None,
    **options,
) -> SimilarityResult:
    """Similarity of every layer of A with every layer of B (or of A with itself).

    Parameters
    ----------
    A : ndarray, shape (layers_A, n, dim_A), or Features, or iterable of chunks
        Features of one model: an array, an object with ``.pooled`` (that array) and
        ``.layer_names``, or (CKA with ``method="feature"``/``"minibatch"``) an iterator or
        list of chunks ``(layers_A, n_chunk, dim_A)`` — for frame-level analyses, e.g.
        ``(feats.frames(i) for i in range(len(feats.clips)))``.  For CKA, Features that hold
        frames only (no ``.pooled``) are streamed clip by clip in just that way.
    B : same kinds as A, optional
        Another model's (or run's) features of the same n samples; ``dim_B`` and
        ``layers_B`` may differ.  None compares A with itself.  When A and B both carry
        clip ids (``.clips``, as Features do, pooled or frame-level), samples are paired by
        id: B is taken in A's clip order (``details["clips"]`` says so), and different clip
        sets are refused.  Bare arrays and chunk streams are paired by position.
    measure : {"cka", "rsa", "procrustes", "svcca", "pwcca", "mutual_knn"}
        See :mod:`m2v_lab.similarity.measures` for the non-CKA measures and their options.
    debiased : bool, optional
        CKA only.  Default True: the unbiased HSIC estimator (Song et al. 2012), ≈ 0 for
        unrelated layers at any n.  Biased CKA of independent 768-d features is 0.94 at n=50.
    kernel : {"linear", "rbf"}
        CKA only.  RBF is computed in Gram space, a block of rows at a time (memory: one
        layer's n²/2 distances for the median bandwidth, not all layers' Grams).
    sigma : float, optional
        CKA with ``kernel="rbf"``: bandwidth as a fraction of the median pairwise distance
        (default 0.5).
    method : {"auto", "gram", "feature", "minibatch"}
        CKA only.  ``"gram"``: one Gram per layer, one product for all pairs (memory bounded
        by working in blocks of rows).  ``"feature"``: float64 sums of cross-products
        ``X̃_aᵀ X̃_b`` accumulated over chunks of samples; memory independent of n, so frames
        (10⁵–10⁶) fit.  ``"auto"``: whichever costs fewer operations (Gram below about
        ``L·d²/(2d+L)`` samples, ≈ 5,000 for 13 × 768); streams always use feature space.
        ``"minibatch"``: Nguyen et al. (2021), the sample-weighted mean of per-batch unbiased
        HSIC — an estimate of the population CKA, not of the full-sample value.
    batch_size : int, optional
        ``method="minibatch"`` only: consecutive batches of this many samples (shuffle first
        if the order is structured).  For a stream, None makes each chunk a batch.  A final
        batch of fewer than 4 samples joins the one before it.
    device : str or torch.device
        CKA and the SVD-based measures (Procrustes, SVCCA, PWCCA); float64 sums everywhere.
        ``"numpy"`` (default): NumPy on the CPU.  None or ``"auto"``: CUDA when torch sees a
        GPU, else NumPy (the default's numbers).  ``"cuda"``, ``"cuda:1"``, ``"cpu"``: the same
        computation in torch on that device (``torch.linalg`` for the SVDs).  ``"mps"`` is
        refused: Apple's MPS has no float64.
    precision : {"mixed", "float64"}
        Linear CKA in Gram space only (feature space, minibatches and RBF are float64
        throughout).  ``"mixed"`` (default): each layer's features are centred in float64, its
        Gram built in float32, and everything summed in float64 — about twice as fast as
        ``"float64"`` and within 1e-8 of it on transformer-like features (1e-9 to 3e-9
        measured; ``benchmarks/similarity.py`` prints the error at 13 × 2000 × 768).
        ``"float64"``: float64 throughout, the numbers of :func:`~m2v_lab.similarity.cka`.
        On CUDA the float32 products never use TF32, whatever the global setting.
    standardize : bool
        z-score every dimension over the samples before the measure, so that each dimension
        counts alike (linear CKA, Procrustes and RSA otherwise weigh dimensions by their
        variance, and a few loud dimensions can hide the rest: three unrelated dimensions × 60
        take CKA of otherwise related layers from 0.80 to 0.001).  Arrays only (not streams).
    clip : float in (0.5, 1), optional
        Winsorise outliers before the measure, as Huh et al.'s platonic-rep does before mutual
        kNN (q = 0.95): per layer, deviations from each dimension's mean are clamped to ± the
        ``clip`` quantile of the layer's absolute deviations.  Before ``standardize``.  Arrays
        only.  See :class:`~m2v_lab.similarity._inputs.Preprocess`.
    rows, cols : sequence of str, optional
        Layer names for A and B, overriding ``.layer_names`` or the defaults
        (``"pre_transformer"``, ``"block_1"``, ...).
    **options
        Measure options: RSA ``distance``, ``compare``; SVCCA ``n_components``, ``variance``
        (``keep`` deprecated); mutual kNN ``k``, ``metric`` (default ``"cosine"``).

    Returns
    -------
    SimilarityResult
        ``.values`` ``(layers_A, layers_B)``; ``.to_frame()`` for a labelled DataFrame.
        A layer without variance gives a NaN row/column and a warning naming it.

    Raises
    ------
    AnalysisError
        Malformed features; A and B holding different clips (the ids only in one named)
        or, without clip ids, a different n (both shapes named).
    OptionError
        An unknown measure, an option value outside its choices, options that do not
        apply to the measure, ``standardize``/``clip`` with a stream, or a device that is
        not there.

    Examples
    --------
    >>> res = layer_similarity(feats)                                  # doctest: +SKIP
    >>> res = layer_similarity(feats_m2v, feats_mert, measure="rsa")   # doctest: +SKIP
    >>> res = layer_similarity(feats, standardize=True)                # each dimension counts alike  # doctest: +SKIP
    >>> res = layer_similarity((feats.frames(i) for i in range(len(feats.clips))),
    ...                        rows=feats.layer_names)                 # doctest: +SKIP
    """
    return plan(measure, debiased=debiased, kernel=kernel, sigma=sigma, method=method, batch_size=batch_size,
                device=device, precision=precision, standardize=standardize, clip=clip,
                **options).run(A, B, rows=rows, cols=cols)  # fmt: skip
