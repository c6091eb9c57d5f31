"""``explore(feats)``: the three views in tabs, in one line."""

from __future__ import annotations

import ipywidgets as widgets

from ..errors import FeaturesError
from .clips import ClipBrowser
from .probing import ProbeExplorer
from .similarity import SimilarityExplorer

__all__ = ["Explorer", "explore"]


class Explorer(widgets.Tab):
    """Tabs "Clips", "Similarity", "Probing" over the same features.

    Attributes
    ----------
    clips : ClipBrowser
    similarity : SimilarityExplorer
    probing : ProbeExplorer
    """

    def __init__(self, clip_browser: ClipBrowser, similarity: SimilarityExplorer, probing: ProbeExplorer):
        self.clips, self.similarity, self.probing = clip_browser, similarity, probing
        super().__init__(children=[clip_browser, similarity, probing], titles=("Clips", "Similarity", "Probing"))
        self.add_class("m2v-explorer")

    def __repr__(self) -> str:
        return f"Explorer(tabs Clips · Similarity · Probing over {len(self.clips.rows)} clips)"

    @property
    def errors(self) -> dict:
        """``{view: last_error}`` for the views whose last action failed."""
        views = {"clips": self.clips, "similarity": self.similarity, "probing": self.probing}
        return {name: view.last_error for name, view in views.items() if view.last_error is not None}


def explore(feats, clips=None, *, model=None, frames=None, cache_dir=None, label=None, measure: str = "cka",
            probe: str = "ridge") -> Explorer:
    """Browse clips, the layer similarity map and per-layer probes of some features.

    Parameters
    ----------
    feats : Features
        From :func:`m2v_lab.extract` (pooled, or frame-level); labels come from ``feats.clip_table``.
    clips : DataFrame, optional
        The frame passed to ``extract``, for label columns added to it since; default
        ``feats.clip_table``.
    model : LoadedModel, optional
        Lets the clip browser extract the frames of the clip it shows (when ``feats`` is pooled).
    frames : Features, optional
        Frame-level features of the same clips, instead of ``model``.
    cache_dir : path, bool or None
        For that on-demand extraction.
    label : str, optional
        Label column that colours the projections and is probed first (when a grouped probe can
        take it: see :class:`ProbeExplorer`).
    measure : str
        Similarity measure.
    probe : {"ridge", "logistic", "mlp"}

    Returns
    -------
    Explorer
        ``.clips``, ``.similarity``, ``.probing`` are the views (their state and results).

    Examples
    --------
    >>> m2v.widgets.explore(feats, model=model)     # doctest: +SKIP
    """
    # given to every view explicitly: SimilarityExplorer colours by the frame it is given, else by nothing
    rows = feats.clip_table if clips is None else clips
    browser = ClipBrowser(feats, rows, model=model, frames=frames, cache_dir=cache_dir)
    similarity = SimilarityExplorer(feats, rows, measure=measure, label=label)
    try:
        probing = ProbeExplorer(feats, rows, label=label, probe=probe)
    except FeaturesError:
        # a label that colours the projections may still not be one a grouped probe can take:
        # the tab opens on a label it can, and its note says why this one is not offered
        probing = ProbeExplorer(feats, rows, probe=probe)
    return Explorer(browser, similarity, probing)
