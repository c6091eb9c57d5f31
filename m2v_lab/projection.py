"""2-D maps of one layer's clips: PCA, t-SNE, or UMAP when ``umap-learn`` is installed.

>>> proj = project(feats.pooled[6], method="pca")           # doctest: +SKIP
>>> proj.coords.shape                                        # (clips, 2)
>>> m2v_lab.plot.projection_scatter(proj, feats.labels("instrument"))   # doctest: +SKIP

Pure computation (NumPy, scikit-learn): nothing here imports matplotlib.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field

import numpy as np

from .errors import AnalysisError

__all__ = ["Projection", "project", "available_methods", "METHODS"]

#: Every method :func:`project` knows; :func:`available_methods` says which can run here.
METHODS = ("pca", "tsne", "umap")
_TSNE_THREADED_FROM = 2000


@dataclass(frozen=True)
class Projection:
    """Coordinates of n samples on a plane.

    Attributes
    ----------
    coords : ndarray, shape (n, 2), float64
    method : str
        ``"pca"``, ``"tsne"`` or ``"umap"``.
    axis_labels : tuple of str
        What each coordinate is, e.g. ``("PC 1 (23.1%)", "PC 2 (9.8%)")``.
    name : str
        What was projected, for titles, e.g. ``layer_label("block_6")``; may be empty.
    details : dict
        Options that shape the map (standardize, seed, perplexity, explained variance …).
    """

    coords: np.ndarray
    method: str
    axis_labels: tuple[str, str]
    name: str = ""
    details: dict = field(default_factory=dict)

    @property
    def title(self) -> str:
        """E.g. ``"block 6 · PCA"``."""
        method = {"pca": "PCA", "tsne": "t-SNE", "umap": "UMAP"}[self.method]
        return f"{self.name} · {method}" if self.name else method


def available_methods() -> tuple[str, ...]:
    """The methods that run in this environment: PCA and t-SNE always, UMAP with ``umap-learn``."""
    return tuple(m for m in METHODS if m != "umap" or importlib.util.find_spec("umap") is not None)


def project(X, *, method: str = "pca", standardize: bool = True, seed: int = 0, name: str = "",
            perplexity: float | None = None, n_neighbors: int | None = None) -> Projection:
    """Project samples of one layer onto two dimensions.

    Parameters
    ----------
    X : array_like, shape (n, dim)
        One layer's features, e.g. ``feats.pooled[layer]``.
    method : {"pca", "tsne", "umap"}
        PCA is exact and deterministic (signs fixed so that each component's largest loading
        is positive).  t-SNE and UMAP start from the PCA map and are seeded.
    standardize : bool
        Z-score each dimension first.  Transformer states carry a few dimensions hundreds of
        times larger than the rest; unscaled, the map shows only those.
    seed : int
        Random state of t-SNE / UMAP.
    name : str
        What is projected, kept for titles: a layer as figures write it
        (:func:`m2v_lab.layers.layer_label`, e.g. ``"block 6"``).
    perplexity : float, optional
        t-SNE; default ``min(30, (n - 1) / 3)`` so small sets work.
    n_neighbors : int, optional
        UMAP; default ``min(15, n - 1)``.

    Returns
    -------
    Projection
        ``.coords`` ``(n, 2)``.

    Raises
    ------
    AnalysisError
        Not a 2-D array, fewer than 3 samples, non-finite values, an unknown method or UMAP
        without ``umap-learn``.
    """
    if method not in METHODS:
        raise AnalysisError(f"method={method!r}: use one of {METHODS}.")
    if method not in available_methods():
        raise AnalysisError(f"method={method!r} needs the umap-learn package: `pip install umap-learn`, "
                            "or use method='pca' / 'tsne'.")
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2:
        raise AnalysisError(f"X must be (n, dim), one layer's features; got shape {X.shape}. "
                            "Pass feats.pooled[layer].")
    n = X.shape[0]
    if n < 3:
        raise AnalysisError(f"a 2-D map needs at least 3 samples; got {n}.")
    if not np.isfinite(X).all():
        raise AnalysisError(f"X{' of ' + name if name else ''} holds NaN or infinite values.")
    X = X - X.mean(axis=0)
    if standardize:
        sd = X.std(axis=0)
        X = X / np.where(sd > 0, sd, 1.0)
    pcs, explained = _pca(X)
    details = {"standardize": standardize}
    if method == "pca":
        labels = tuple(f"PC {i + 1} ({100 * r:.1f}%)" for i, r in enumerate(explained))
        return Projection(pcs, "pca", labels, name, {**details, "explained_variance_ratio": explained})
    # Start from the PCA map, so that reruns and nearby layers agree.
    init = pcs / (pcs[:, 0].std() or 1.0)
    if method == "tsne":
        from sklearn.manifold import TSNE
        from threadpoolctl import threadpool_limits

        perplexity = min(30.0, (n - 1) / 3) if perplexity is None else float(perplexity)
        # scaled to a standard deviation of 1e-4, as scikit-learn's own init="pca"
        tsne = TSNE(n_components=2, perplexity=perplexity, init=init * 1e-4, random_state=seed)
        # On the few hundred points of a widget, OpenMP start-up and spin-waiting cost more than
        # extra threads save (10x slower on a busy 2-core machine).
        with threadpool_limits(1 if n < _TSNE_THREADED_FROM else None):
            coords = tsne.fit_transform(X)
        details.update(seed=seed, perplexity=perplexity)
        return Projection(np.asarray(coords, np.float64), "tsne", ("t-SNE 1", "t-SNE 2"), name, details)
    import umap

    n_neighbors = min(15, n - 1) if n_neighbors is None else int(n_neighbors)
    coords = umap.UMAP(n_components=2, n_neighbors=n_neighbors, init=init, random_state=seed).fit_transform(X)
    details.update(seed=seed, n_neighbors=n_neighbors)
    return Projection(np.asarray(coords, np.float64), "umap", ("UMAP 1", "UMAP 2"), name, details)


def _pca(X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Scores on the first two components of centred X, shape (n, 2), and their variance shares."""
    U, s, Vt = np.linalg.svd(X, full_matrices=False)
    signs = np.sign(Vt[np.arange(len(Vt)), np.abs(Vt).argmax(axis=1)])
    signs[signs == 0] = 1.0
    scores = (U * s * signs)[:, :2]
    total = float((s ** 2).sum())
    ratio = (s[:2] ** 2) / total if total > 0 else np.zeros(min(2, s.size))
    if scores.shape[1] < 2:  # one feature dimension: the second axis is flat
        scores = np.column_stack([scores, np.zeros(len(scores))])
        ratio = np.append(ratio, 0.0)
    return scores, ratio
