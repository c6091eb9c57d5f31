"""SimilarityExplorer: the layers × layers map (click a cell), and two chosen layers' clips side by side in 2-D."""

from __future__ import annotations

import html
import importlib.util
from functools import partial

import ipywidgets as widgets
from matplotlib.patches import Rectangle

from ..errors import FeaturesError, OptionError
from ..layers import layer_label
from ..options import one_of
from ..plot.projection import projection_scatter
from ..plot.similarity import cell_colours, colour_scale_css, similarity_heatmap
from ..projection import available_methods, project
from ..similarity import MEASURES, layer_similarity
from ._rows import aligned_rows, label_choices, pooled
from ._view import View, new_figure
from .layers import LayerPicker

__all__ = ["SimilarityExplorer", "HEATMAPS", "MAX_CELLS"]

NO_LABEL = "(none)"
#: How the map is drawn: "cells" (a button per cell), "canvas" (an ipympl figure), "image" (a PNG, not clickable).
HEATMAPS = ("auto", "cells", "canvas", "image")
#: Maps with more layers than this are drawn as an image (pick the cell with the sliders).
MAX_CELLS = 25
_PICKED = "2px solid #e53935"


def widget_backend() -> bool:
    """True when ipympl is installed and matplotlib's backend is it (``%matplotlib widget``)."""
    import matplotlib

    if importlib.util.find_spec("ipympl") is None:
        return False
    getter = getattr(matplotlib.rcParams, "_get_backend_or_none", None)
    # read without resolving the automatic backend (resolving it imports pyplot)
    backend = getter() if getter else dict.get(matplotlib.rcParams, "backend")
    return str(backend or "").lower() in ("widget", "ipympl", "module://ipympl.backend_nbagg")


class SimilarityExplorer(View):
    """Which layers are alike, and what their clips look like: a clickable map and two projections.

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
    heatmap : {"auto", "cells", "canvas", "image"}
        How the map is drawn.  ``"cells"``: one small button per cell, coloured as the figure
        colours it (0–1 scale), that picks the cell when clicked — works with any backend.
        ``"canvas"``: the matplotlib figure on an ipympl canvas, clicked on directly (needs
        ``ipympl``).  ``"image"``: a static figure; the sliders pick the cell.  ``"auto"``: the
        canvas under ``%matplotlib widget`` with ipympl, else cells up to :data:`MAX_CELLS`
        layers, else the image.

    Raises
    ------
    OptionError
        ``measure``, ``label``, ``method`` or ``heatmap`` not among the choices (which the message
        lists); ``heatmap="canvas"`` without ipympl.
    FeaturesError
        ``result`` is not a map of these features' layers.

    Attributes
    ----------
    result : SimilarityResult
    layer_a, layer_b : LayerPicker
        The cell picked: row (A) and column (B) of the map.
    measure, label, method : ipywidgets.Dropdown
    heatmap_mode : {"cells", "canvas", "image"}
    cells : list of list of ipywidgets.Button, or None
        ``cells[a][b]`` is the cell of row (layer A) ``a``, column (layer B) ``b`` (cells mode).
    canvas : ipympl Canvas or None
        The clickable figure (canvas mode).
    banner : ipywidgets.HTML
        One short line saying how to pick a cell when the map falls back from a clickable figure.
    projections : tuple of Projection
        The two maps shown, A then B.
    """

    def __init__(self, feats, clips=None, *, result=None, measure: str = "cka", pair=None, label=None,
                 method: str = "pca", heatmap: str = "auto"):
        self.feats = pooled(feats)
        self.rows = aligned_rows(self.feats, clips)
        if result is not None and tuple(result.rows) != tuple(self.feats.layer_names):
            raise FeaturesError(f"result is a map of layers {list(result.rows)}, but feats hold "
                                f"{list(self.feats.layer_names)}: pass the result of layer_similarity(feats).")
        self.result = result
        self._projections: dict[tuple, object] = {}
        self.projections: tuple = ()
        self._picking = False
        first, last = (0, -1) if pair is None else pair
        # Checked here: a Dropdown given a value outside its options raises a TraitError naming no choices.
        one_of("measure", measure, tuple(MEASURES))
        one_of("method", method, tuple(available_methods()))
        one_of("heatmap", heatmap, HEATMAPS)
        labels = label_choices(self.rows)
        if label is not None and label not in labels:
            raise OptionError(f"label={label!r} is not a label column with 2+ values; choose from {labels}.")
        self.heatmap_mode = self._mode(heatmap, len(self.feats.layer_names))
        self.measure = widgets.Dropdown(options=list(MEASURES), value=measure, description="measure",
                                        layout=widgets.Layout(width="200px"))
        self.label = widgets.Dropdown(options=[NO_LABEL, *labels], value=label or (labels[0] if labels else NO_LABEL),
                                      description="colour by", layout=widgets.Layout(width="250px"))
        self.method = widgets.Dropdown(options=list(available_methods()), value=method, description="projection",
                                       layout=widgets.Layout(width="200px"))
        self.layer_a = LayerPicker(self.feats, value=first, description="layer A (row)")
        self.layer_b = LayerPicker(self.feats, value=last, description="layer B (column)")
        self.banner = widgets.HTML(layout=widgets.Layout(display="none"))
        self.banner.add_class("m2v-similarity-banner")
        self.caption = widgets.HTML()
        self.caption.add_class("m2v-similarity-caption")
        self.heatmap = widgets.Output()
        self.heatmap.add_class("m2v-similarity-heatmap")
        self.cells = None
        self.canvas = None
        self._cell_grid = None
        self.scatter = widgets.Output(layout=widgets.Layout(max_width="740px", flex="1 1 auto", min_width="0"))
        self.scatter.add_class("m2v-similarity-projections")
        map_box = self._map_box()
        controls = widgets.VBox([widgets.HBox([self.measure, self.method, self.label]),
                                 widgets.HBox([self.layer_a, self.layer_b])])
        super().__init__([controls, self.banner, widgets.HBox([map_box, self.scatter])],
                         css_class="m2v-similarity-explorer")
        self._set_banner()

        self.watch(self.measure, "computing the similarity map", self._recompute)
        for picker in (self.layer_a, self.layer_b):
            self.watch(picker, "drawing the picked layers", self._on_layers, names="positions")
        self.watch(self.method, "projecting the layers", self._draw_projections)
        self.watch(self.label, "colouring the projections", self._draw_projections)
        with self.reporting("drawing the similarity map"):
            if self.result is None:
                self._show_busy(self._computing())
                self.result = layer_similarity(self.feats, measure=measure)
            self._draw_all()

    def __repr__(self) -> str:
        title = self.result.title.replace("\n", "; ") if self.result is not None else "no map"
        return f"SimilarityExplorer({title}; A {self.pair[0]} × B {self.pair[1]}, {self.method.value})"

    # -- the cell picked ------------------------------------------------------------------
    @property
    def pair(self) -> tuple[str, str]:
        """Names of layers A and B."""
        return self.layer_a.selected_layers[0], self.layer_b.selected_layers[0]

    def pick_cell(self, a, b):
        """Show the cell (A = row ``a``, B = column ``b``), given as positions or names (drawn once)."""
        before = (self.layer_a.selected_positions, self.layer_b.selected_positions)
        self._picking = True  # one redraw for both layers, not one each
        try:
            self.layer_a.value, self.layer_b.value = a, b
        finally:
            self._picking = False
        if (self.layer_a.selected_positions, self.layer_b.selected_positions) != before:
            self._on_layers()

    def _on_layers(self):
        if not self._picking:
            self._draw_all()

    def _clicked(self, a: int, b: int, _button=None):
        with self.reporting("picking a cell"):
            self.pick_cell(a, b)

    # -- layout ------------------------------------------------------------------------
    @staticmethod
    def _mode(heatmap: str, n_layers: int) -> str:
        if heatmap == "auto":
            if widget_backend():
                return "canvas"
            return "cells" if n_layers <= MAX_CELLS else "image"
        if heatmap == "canvas" and importlib.util.find_spec("ipympl") is None:
            raise OptionError("heatmap='canvas' needs ipympl (pip install ipympl, then %matplotlib widget); "
                              "heatmap='cells' is clickable with any backend.")
        return heatmap

    def _map_box(self) -> widgets.VBox:
        if self.heatmap_mode == "cells":
            self._cell_grid = self._build_cells()
            children = [self.caption, self._cell_grid, self.heatmap]
        elif self.heatmap_mode == "canvas":
            from ipympl.backend_nbagg import Canvas, FigureManager

            fig = new_figure(4.4, 3.8)
            self.canvas = Canvas(fig)
            FigureManager(self.canvas, 0)  # the canvas draws through its manager
            self.canvas.header_visible = False
            self.canvas.footer_visible = False
            self.canvas.toolbar_visible = False
            self.canvas.resizable = False
            self.canvas.mpl_connect("button_press_event", self._canvas_click)
            children = [self.canvas, self.heatmap]
        else:
            children = [self.heatmap]
        box = widgets.VBox(children, layout=widgets.Layout(margin="0 12px 0 0", flex="0 0 auto"))
        box.add_class("m2v-similarity-map")
        return box

    def _set_banner(self):
        n = len(self.feats.layer_names)
        if self.heatmap_mode == "cells":
            how = ("ipympl's <code>%matplotlib widget</code> makes it a figure"
                   if importlib.util.find_spec("ipympl") else "with ipympl, it can be a figure")
            text = f"Click a cell to pick layer A (its row) and B (its column); {how}."
        elif self.heatmap_mode == "image":
            text = (f"{n} layers: too many cells to click" if n > MAX_CELLS else "A static map") + \
                   "; pick layers A and B with the sliders."
        else:
            text = ""
        self.banner.value = f"<small>{text}</small>" if text else ""
        self.banner.layout.display = None if text else "none"

    def _build_cells(self) -> widgets.GridBox:
        names = self.feats.layer_names
        n = len(names)
        size = max(11, min(22, 300 // n))
        self.cells = [[None] * n for _ in range(n)]
        children = []
        tick = f"font-size:10px;line-height:{size}px;text-align:right;padding-right:3px;white-space:nowrap"
        for a in reversed(range(n)):  # row 0 at the bottom, as the figure draws it
            name = html.escape(layer_label(names[a], style="tick"))
            children.append(widgets.HTML(f"<div style='{tick}'>{name}</div>",
                                         layout=widgets.Layout(width="44px", height=f"{size}px", margin="0")))
            for b in range(n):
                cell = widgets.Button(description="", layout=widgets.Layout(
                    width=f"{size}px", height=f"{size}px", padding="0", margin="0", border="0px", min_width="0"))
                cell.add_class("m2v-similarity-cell")
                cell.on_click(partial(self._clicked, a, b))
                self.cells[a][b] = cell
                children.append(cell)
        children.append(widgets.HTML("", layout=widgets.Layout(width="44px", margin="0")))
        vertical = "writing-mode:vertical-rl;transform:rotate(180deg);" if n > 9 else ""
        for b in range(n):
            label = html.escape(layer_label(names[b], style="tick").split(" ")[0])
            children.append(widgets.HTML(f"<div style='font-size:10px;text-align:center;{vertical}'>{label}</div>",
                                         layout=widgets.Layout(width=f"{size}px", margin="0")))
        grid = widgets.GridBox(children, layout=widgets.Layout(
            grid_template_columns=f"44px repeat({n}, {size}px)", grid_gap="1px", width="max-content"))
        grid.add_class("m2v-similarity-cells")
        return grid

    # -- drawing -------------------------------------------------------------------------
    def _show_busy(self, text: str):
        """Hide the map while it is recomputed: no stale colours next to a new measure."""
        if self._cell_grid is not None:
            self._cell_grid.layout.display = "none"
        if self.canvas is not None:
            self.canvas.layout.display = "none"
        self.caption.value = ""
        self.show_message(self.heatmap, text, busy=True)

    def _computing(self) -> str:
        return f"computing {self.measure.value.upper()} between {len(self.feats.layer_names)} layers…"

    def _recompute(self):
        self._show_busy(self._computing())
        self.result = layer_similarity(self.feats, measure=self.measure.value)
        self._draw_heatmap()

    def _draw_all(self):
        self._draw_heatmap()
        self._draw_projections()

    def _cell_text(self, a: int, b: int) -> str:
        return f"A {self.pair[0]} × B {self.pair[1]}: {self.result.values[a, b]:.3f}"

    def _draw_heatmap(self):
        a, b = self.layer_a.selected_positions[0], self.layer_b.selected_positions[0]
        if self.heatmap_mode == "cells":
            self._paint_cells(a, b)
        elif self.heatmap_mode == "canvas":
            fig = self.canvas.figure
            fig.clear()
            self._heat_ax = self._heatmap_axes(fig, a, b)
            self.canvas.layout.display = None
            self.heatmap.outputs = ()
            self.canvas.draw_idle()
            self.figures["heatmap"] = fig
            self.renders["heatmap"] = self.renders.get("heatmap", 0) + 1
        else:
            fig = new_figure(4.6, 4.0)
            self._heatmap_axes(fig, a, b)
            self.show_figure(self.heatmap, fig, name="heatmap")

    def _heatmap_axes(self, fig, a: int, b: int):
        # Values of the picked cell go in the title: per-cell numbers crowd a map this size.
        ax = similarity_heatmap(self.result, ax=fig.add_subplot(), annotate=False)
        ax.add_patch(Rectangle((b - 0.5, a - 0.5), 1, 1, fill=False, lw=2.5, ec="red"))
        ax.set_title(f"{self.result.title}\n{self._cell_text(a, b)}", fontsize=9)
        return ax

    def _paint_cells(self, a: int, b: int):
        colours = cell_colours(self.result.values)
        names = self.feats.layer_names
        for i, row in enumerate(self.cells):
            for j, cell in enumerate(row):
                cell.style.button_color = colours[i, j]
                cell.tooltip = (f"A {layer_label(names[i])} × B {layer_label(names[j])}: "
                                f"{self.result.values[i, j]:.3f}")
                cell.layout.border = _PICKED if (i, j) == (a, b) else "0px"
        scale = (f"<span style='display:inline-block;width:90px;height:8px;vertical-align:middle;"
                 f"background:{colour_scale_css()}'></span>")
        self.caption.value = (f"<div style='font-size:12px;line-height:1.5'><b>{html.escape(self.result.title).replace(chr(10), '<br>')}</b>"
                              f"<br>{html.escape(self._cell_text(a, b))}<br>0 {scale} 1</div>")
        self._cell_grid.layout.display = None
        self.heatmap.outputs = ()
        self.renders["heatmap"] = self.renders.get("heatmap", 0) + 1

    def _canvas_click(self, event):
        if event.inaxes is None or event.xdata is None or event.ydata is None:
            return
        n = len(self.feats.layer_names)
        a, b = int(round(event.ydata)), int(round(event.xdata))
        if 0 <= a < n and 0 <= b < n:
            self._clicked(a, b)

    def _projection(self, position: int):
        key = (position, self.method.value)
        if key not in self._projections:
            name = layer_label(self.feats.layer_names[position])
            self._projections[key] = project(self.feats.pooled[position], method=self.method.value, name=name)
        return self._projections[key]

    def _draw_projections(self):
        positions = (self.layer_a.selected_positions[0], self.layer_b.selected_positions[0])
        missing = [p for p in positions if (p, self.method.value) not in self._projections]
        if missing and self.method.value != "pca":  # t-SNE and UMAP take a while: no stale maps meanwhile
            self.show_message(self.scatter, f"projecting {len(set(missing))} layer(s) with "
                                            f"{self.method.value.upper()}…", busy=True)
        self.projections = tuple(self._projection(p) for p in positions)
        column = None if self.label.value == NO_LABEL else self.label.value
        labels = self.rows[column] if column else None
        fig = new_figure(7.6, 3.8)
        axes = fig.subplots(1, 2)
        for ax, proj, which in zip(axes, self.projections, "AB"):
            projection_scatter(proj, labels, ax=ax, title=f"{which}: {proj.title}", legend=ax is axes[-1])
        self.show_figure(self.scatter, fig, name="projections")
