"""``layer_similarity``: one entry point for every measure."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..errors import OptionError
from ._inputs import as_stacks, warn_constant
from ..options import one_of
from .cka import CkaOptions, cka_layers
from .measures import mutual_knn_layers, procrustes_layers, pwcca_layers, rsa_layers, svcca_layers
from .result import SimilarityResult

__all__ = ["layer_similarity", "MEASURES"]

#: measure name → (function, the options it takes)
MEASURES = {
    "cka": (cka_layers, ()),
    "rsa": (rsa_layers, ("distance", "compare")),
    "procrustes": (procrustes_layers, ()),
    "svcca": (svcca_layers, ("keep",)),
    "pwcca": (pwcca_layers, ()),
    "mutual_knn": (mutual_knn_layers, ("k", "metric")),
}


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
        CKA only.  RBF is computed in Gram space.
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
        CKA only; float64 everywhere.  ``"numpy"`` (default): NumPy on the CPU.  None or
        ``"auto"``: CUDA when torch sees a GPU, else NumPy (the default's numbers).
        ``"cuda"``, ``"cuda:1"``, ``"cpu"``: the same computation in torch on that device.
        ``"mps"`` is refused: Apple's MPS has no float64.
    rows, cols : sequence of str, optional
        Layer names for A and B, overriding ``.layer_names`` or the defaults
        (``"pre_transformer"``, ``"block_1"``, ...).
    **options
        Measure options: RSA ``distance``, ``compare``; SVCCA ``keep``; mutual kNN ``k``,
        ``metric``.

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
        apply to the measure, or a device that is not there.

    Examples
    --------
    >>> res = layer_similarity(feats)                                  # doctest: +SKIP
    >>> res = layer_similarity(feats_m2v, feats_mert, measure="rsa")   # doctest: +SKIP
    >>> res = layer_similarity((feats.frames(i) for i in range(len(feats.clips))),
    ...                        rows=feats.layer_names)                 # doctest: +SKIP
    """
    fn, allowed = MEASURES[one_of("measure", measure, tuple(MEASURES))]
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise OptionError(
            f"option(s) {unknown} do not apply to measure={measure!r}; it takes {list(allowed) or 'none'}."
        )
    if measure == "cka":
        opts = CkaOptions(debiased=True if debiased is None else debiased, kernel=kernel, sigma=sigma,
                          method=method, batch_size=batch_size, device=device)  # fmt: skip
        return cka_layers(A, B, opts, rows=rows, cols=cols)
    # The other measures run in NumPy: a CKA option given to them is a mistake, not a no-op.  (The
    # isinstance test first: a torch.device or an array compared with == would not give one bool.)
    given = [name for name, value, default in (
        ("debiased", debiased, None), ("kernel", kernel, "linear"), ("sigma", sigma, None), ("method", method, "auto"),
        ("batch_size", batch_size, None), ("device", device, "numpy"),
    ) if not (isinstance(value, type(default)) and value == default)]  # fmt: skip
    if given:
        raise OptionError(f"{given} apply to measure='cka' only, not to measure={measure!r}.")
    sa, sb, pairing = as_stacks(A, B, rows=rows, cols=cols)
    values, bad_a, bad_b, estimator, how, details = fn(sa, sb, **options)
    values[bad_a, :] = np.nan
    values[:, bad_b] = np.nan
    warn_constant(sa.names, bad_a, "A", sa.n, reason="have no usable variance", stacklevel=3)
    if sb is not None:
        warn_constant(sb.names, bad_b, "B", sa.n, reason="have no usable variance", stacklevel=3)
    return SimilarityResult(
        values=values,
        rows=sa.names,
        cols=sa.names if sb is None else sb.names,
        measure=measure,
        estimator=estimator,
        method=how,
        n=sa.n,
        details={**details, **pairing},
    )
