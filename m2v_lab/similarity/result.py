"""The layers × layers result every similarity function returns."""

from __future__ import annotations

import html
from dataclasses import dataclass, field, replace

import numpy as np

from ..errors import OptionError
from ..options import one_of

__all__ = ["SimilarityResult"]


@dataclass(frozen=True, eq=False)
class SimilarityResult:
    """Similarity of every layer of A (rows) with every layer of B (columns).

    Attributes
    ----------
    values : ndarray, shape (layers_A, layers_B), float64
        NaN where a layer has no variance.
    rows, cols : tuple of str
        Layer names of A and B (for a within-model map, the same).
    measure : str
        ``"cka"``, ``"rsa"``, ``"procrustes"``, ``"svcca"``, ``"pwcca"`` or ``"mutual_knn"``.
    estimator : str
        For CKA ``"biased"`` or ``"debiased"``; for other measures, how values are formed
        (e.g. ``"spearman"`` for RSA).
    method : str
        How it was computed: ``"gram"``, ``"feature"``, ``"minibatch"`` or ``"svd"``.
    n : int
        Number of samples compared.
    details : dict
        Options that shape the values (kernel, bandwidth, distance, k, batch size, backend,
        precision, ``standardize``, ``clip``); ``"clips"`` says how the samples of A and B were
        paired when both carried clip ids (by id, and whether B was reordered to A's clip
        order); ``"ci"`` and ``"null"`` what the intervals and p-values are.
    ci_low, ci_high : ndarray, shape (layers_A, layers_B), optional
        Confidence bounds, from :func:`~m2v_lab.similarity.similarity_ci`.
    p_values : ndarray, shape (layers_A, layers_B), optional
        From :func:`~m2v_lab.similarity.permutation_test`: each cell's own p-value.
    p_adjusted : ndarray, shape (layers_A, layers_B), optional
        The same, adjusted for testing every cell of the map (``details["correction"]``:
        ``"fwer"``, ``"fdr"`` or ``"none"``); NaN for cells not tested (the diagonal of a
        within-model map).
    replicates : ndarray, shape (resamples, layers_A, layers_B), optional
        The resampled or permuted values behind ``ci_*`` or ``p_values``.
    models : tuple of str
        Which models made A and B (``Features.model_label``, e.g. ``"music2vec-mini · trained"``),
        when the inputs were Features; shown in :attr:`title`.
    """

    values: np.ndarray
    rows: tuple[str, ...]
    cols: tuple[str, ...]
    measure: str
    estimator: str
    method: str
    n: int
    details: dict = field(default_factory=dict)
    ci_low: np.ndarray | None = None
    ci_high: np.ndarray | None = None
    p_values: np.ndarray | None = None
    replicates: np.ndarray | None = None
    p_adjusted: np.ndarray | None = None
    models: tuple[str, ...] = ()

    @property
    def title(self) -> str:
        """Short description for figure titles, e.g. ``"CKA (linear, debiased), n = 2000"``.

        The models, when known, come first on a line of their own (one name for a within-model map).

        Preprocessing is named when there was some (``"CKA (linear, debiased, z-scored), n = 40"``).
        """
        kernel = self.details.get("kernel")
        parts = [kernel, self.estimator] if kernel else [self.estimator]
        if "clip" in self.details:
            parts.append(f"clipped at q={self.details['clip']:g}")
        if self.details.get("standardize"):
            parts.append("z-scored")
        text = f"{self.measure.upper().replace('_', ' ')} ({', '.join(parts)}), n = {self.n}"
        if self.models:
            text = f"{' vs '.join(dict.fromkeys(self.models))}\n{text}"
        return text

    def to_frame(self, what: str = "values"):
        """A pandas DataFrame: a layers × layers table, or one row per layer pair.

        Parameters
        ----------
        what : {"values", "ci_low", "ci_high", "p_values", "p_adjusted", "long"}
            One array as a table indexed by ``rows`` (name ``"A"``) with ``cols`` (name ``"B"``)
            as columns; or ``"long"``: a tidy frame with one row per cell, in row-major order,
            and the columns ``row``, ``col``, ``value``, ``ci_low``, ``ci_high``, ``p``,
            ``p_adjusted`` (NaN where this result holds none), ready to filter, sort or concat.

        Raises
        ------
        OptionError
            ``what`` is not one of those, or names an array this result does not hold.
        """
        import pandas as pd

        one_of("what", what, ("values", "ci_low", "ci_high", "p_values", "p_adjusted", "long"))
        if what == "long":
            return self._long_frame()
        arr = getattr(self, what)
        if arr is None:
            made_by = "similarity_ci" if what.startswith("ci") else "permutation_test"
            raise OptionError(f"what={what!r}: this result holds no {what}; {made_by}() makes results with them.")
        frame = pd.DataFrame(arr, index=pd.Index(self.rows, name="A"), columns=pd.Index(self.cols, name="B"))
        frame.attrs.update(measure=self.measure, estimator=self.estimator, method=self.method, n=self.n)
        return frame

    def _long_frame(self):
        import pandas as pd

        nan = np.full(self.values.shape, np.nan)
        columns = {"value": self.values, "ci_low": self.ci_low, "ci_high": self.ci_high, "p": self.p_values,
                   "p_adjusted": self.p_adjusted}  # fmt: skip
        frame = pd.DataFrame({
            "row": np.repeat(self.rows, len(self.cols)),
            "col": np.tile(self.cols, len(self.rows)),
            **{name: (nan if arr is None else np.asarray(arr, dtype=float)).ravel() for name, arr in columns.items()},
        })  # fmt: skip
        frame.attrs.update(measure=self.measure, estimator=self.estimator, method=self.method, n=self.n)
        return frame

    def with_(self, **changes) -> SimilarityResult:
        """A copy with some fields replaced (used to attach confidence intervals or p-values)."""
        return replace(self, **changes)

    def __repr__(self) -> str:
        extra = "".join(f", {k}" for k in ("ci_low", "p_values") if getattr(self, k) is not None)
        return (
            f"SimilarityResult({self.title.replace(chr(10), '; ')}, {len(self.rows)}×{len(self.cols)} layers, "
            f"method={self.method!r}{extra})"
        )

    def _repr_html_(self) -> str:
        # How samples were paired and what the bounds or p-values mean, under the title: the
        # notebook view is where a reordered B or a resampling scheme would otherwise go unseen.
        notes = [self.details[k] for k in ("clips", "ci", "null") if k in self.details]
        head = f"<b>{html.escape(self.title).replace(chr(10), '<br>')}</b> &middot; method {html.escape(self.method)}"
        head += "".join(f"<br>{html.escape(str(note))}" for note in notes)
        return f"<p>{head}</p>" + self.to_frame().to_html(float_format=lambda v: f"{v:.3f}")
