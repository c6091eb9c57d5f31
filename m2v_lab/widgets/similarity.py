"""SimilarityExplorer: the layers × layers map, and two chosen layers' clips side by side in 2-D."""

from __future__ import annotations

import ipywidgets as widgets
from matplotlib.patches import Rectangle

from ..errors import FeaturesError, OptionError
from ..plot.projection import projection_scatter
from ..plot.similarity import similarity_heatmap
from ..projection import available_methods, project
from ..similarity import MEASURES, layer_similarity
from ..options import one_of
from ._rows import aligned_rows, label_choices, pooled
from ._view import View, new_figure
from ..layers import layer_label
from .layers import LayerPicker

__all__ = ["SimilarityExplorer"]

NO_LABEL = "(none)"


class SimilarityExplorer(View):
    """Which layers are alike, and what their clips look like: a heatmap and two projections.

    Parameters
    ----------
    feats : Features
        Pooled features (frame-level ones are mean-pooled).
    clips : DataFrame, optional
        The clip frame passed to ``extract``; its label columns colour the projections.
    result : SimilarityResult, optional
        A precomputed map of ``feats`` with itself; default ``layer_similarity(feats, measure=measure)``.
    measure : str
        One of :data:`m2v_lab.similarity.MEASURES` (recomputed when changed in the view).
    pair : pair of int or str, optional
        Initial layers A and B (positions or names); default the first and the last.
    label : str, optional
        Initial colouring column; default the first label column.
    method : {"pca", "tsne", "umap"}
        Projection (t-SNE always, UMAP when ``umap-learn`` is installed).

    Raises
    ------
    OptionError
        ``measure``, ``label`` or ``method`` not among the choices (which the message lists).
    FeaturesError
        ``result`` is not a map of these features' layers.

    Attributes
    ----------
    result : SimilarityResult
    layer_a, layer_b : LayerPicker
        The cell picked: row (A) and column (B) of the map.
    measure, label, method : ipywidgets.Dropdown
    projections : tuple of Projection
        The two maps shown, A then B.
    """

    def __init__(self, feats, clips=None, *, result=None, measure: str = "cka", pair=None, label=None,
                 method: str = "pca"):
        self.feats = pooled(feats)
        self.rows = aligned_rows(self.feats, clips)
        if result is not None and tuple(result.rows) != tuple(self.feats.layer_names):
            raise FeaturesError(f"result is a map of layers {list(result.rows)}, but feats hold "
                                f"{list(self.feats.layer_names)}: pass the result of layer_similarity(feats).")
        self.result = result
        self._projections: dict[tuple, object] = {}
        self.projections: tuple = ()
        first, last = (0, -1) if pair is None else pair
        # Checked here: a Dropdown given a value outside its options raises a TraitError naming no choices.
        one_of("measure", measure, tuple(MEASURES))
        one_of("method", method, tuple(available_methods()))
        labels = label_choices(self.rows)
        if label is not None and label not in labels:
            raise OptionError(f"label={label!r} is not a label column with 2+ values; choose from {labels}.")
        self.measure = widgets.Dropdown(options=list(MEASURES), value=measure, description="measure",
                                        layout=widgets.Layout(width="210px"))
        self.label = widgets.Dropdown(options=[NO_LABEL, *labels], value=label or (labels[0] if labels else NO_LABEL),
                                      description="colour by", layout=widgets.Layout(width="250px"))
        self.method = widgets.Dropdown(options=list(available_methods()), value=method, description="projection",
                                       layout=widgets.Layout(width="210px"))
        self.layer_a = LayerPicker(self.feats, value=first, description="layer A (row)")
        self.layer_b = LayerPicker(self.feats, value=last, description="layer B (column)")
        self.heatmap = widgets.Output()
        self.heatmap.add_class("m2v-similarity-heatmap")
        self.scatter = widgets.Output()
        self.scatter.add_class("m2v-similarity-projections")
        controls = widgets.VBox([widgets.HBox([self.measure, self.method, self.label]),
                                 widgets.HBox([self.layer_a, self.layer_b])])
        super().__init__([controls, widgets.HBox([self.heatmap, self.scatter])], css_class="m2v-similarity-explorer")

        self.watch(self.measure, "computing the similarity map", self._recompute)
        for picker in (self.layer_a, self.layer_b):
            self.watch(picker, "drawing the picked layers", self._draw_all, names="positions")
        self.watch(self.method, "projecting the layers", self._draw_projections)
        self.watch(self.label, "colouring the projections", self._draw_projections)
        with self.reporting("drawing the similarity map"):
            if self.result is None:
                self.result = layer_similarity(self.feats, measure=measure)
            self._draw_all()

    def __repr__(self) -> str:
        title = self.result.title if self.result is not None else "no map"
        return f"SimilarityExplorer({title}; A {self.pair[0]} × B {self.pair[1]}, {self.method.value})"

    @property
    def pair(self) -> tuple[str, str]:
        """Names of layers A and B."""
        return self.layer_a.selected_layers[0], self.layer_b.selected_layers[0]

    def pick_cell(self, a, b):
        """Show the cell (A = row ``a``, B = column ``b``), given as positions or names."""
        self.layer_a.value, self.layer_b.value = a, b

    def _recompute(self):
        self.result = layer_similarity(self.feats, measure=self.measure.value)
        self._draw_heatmap()

    def _draw_all(self):
        self._draw_heatmap()
        self._draw_projections()

    def _draw_heatmap(self):
        a, b = self.layer_a.selected_positions[0], self.layer_b.selected_positions[0]
        fig = new_figure(5.6, 4.8)
        # Values of the picked cell go in the title: per-cell numbers crowd a map this size.
        ax = similarity_heatmap(self.result, ax=fig.add_subplot(), annotate=False)
        ax.add_patch(Rectangle((b - 0.5, a - 0.5), 1, 1, fill=False, lw=2.5, ec="red"))
        ax.set_title(f"{self.result.title}\nA {self.pair[0]} × B {self.pair[1]}: {self.result.values[a, b]:.3f}",
                     fontsize=10)
        self.show_figure(self.heatmap, fig, name="heatmap")

    def _projection(self, position: int):
        key = (position, self.method.value)
        if key not in self._projections:
            name = layer_label(self.feats.layer_names[position])
            self._projections[key] = project(self.feats.pooled[position], method=self.method.value, name=name)
        return self._projections[key]

    def _draw_projections(self):
        positions = (self.layer_a.selected_positions[0], self.layer_b.selected_positions[0])
        self.projections = tuple(self._projection(p) for p in positions)
        column = None if self.label.value == NO_LABEL else self.label.value
        labels = self.rows[column] if column else None
        fig = new_figure(8.6, 4.2)
        axes = fig.subplots(1, 2)
        for ax, proj, which in zip(axes, self.projections, "AB"):
            projection_scatter(proj, labels, ax=ax, title=f"{which}: {proj.title}", legend=ax is axes[-1])
        self.show_figure(self.scatter, fig, name="projections")
