"""ProbeExplorer: which layers know a label, one probe per layer, with a progress bar."""

from __future__ import annotations

import html

import ipywidgets as widgets
import numpy as np
import pandas as pd

from ..errors import FeaturesError, OptionError
from ..layers import layer_label
from ..plot.probing import layer_curve
from ..probing import probe_layers
from ..probing.core import PROBES
from ._rows import aligned_rows, label_choices, pooled
from ._view import View, new_figure
from .layers import LayerPicker

__all__ = ["ProbeExplorer"]


class ProbeExplorer(View):
    """Probe some layers for a label column and draw the layer curve.

    Parameters
    ----------
    feats : Features
        Pooled features (frame-level ones are mean-pooled); labels come from ``feats.clip_table``.
    clips : DataFrame, optional
        The frame passed to ``extract``, for label columns added to it since; default
        ``feats.clip_table``.
    label : str, optional
        Initial label column; clips where it is missing are left out of a run.
    probe : {"ridge", "logistic", "mlp", "mlp-marble"}
    groups : str or None
        Column that folds keep together (default ``"group"`` when present).
    cv : int
    control_task : bool
        Also run Hewitt & Liang's control task (drawn dotted).
    run : bool
        Run once at construction.

    Attributes
    ----------
    label, probe : ipywidgets.Dropdown
    layers : LayerPicker
        A range of layers.
    cv : ipywidgets.IntSlider
    control_task : ipywidgets.Checkbox
    button : ipywidgets.Button
    progress : ipywidgets.IntProgress
        Counts layers: it advances as ``probe_layers`` reports layers × folds done.
    result : ProbeResult or None
        The latest run.
    table : DataFrame
        ``result.summary()`` of every run so far, with ``label``, ``probe``, ``cv`` and
        ``control`` columns saying which run it was.
    """

    def __init__(self, feats, clips=None, *, label=None, probe: str = "ridge", groups: str | None = "group",
                 cv: int = 5, control_task: bool = False, run: bool = False):
        # checked here: a Dropdown given a value outside its options raises a TraitError naming no choices
        if probe not in PROBES:
            raise OptionError(f"probe={probe!r}: use one of {tuple(PROBES)}.")
        self.feats = pooled(feats)
        self.rows = aligned_rows(self.feats, clips)
        if groups is not None and groups not in self.rows.columns:
            if groups != "group":
                raise FeaturesError(f"groups={groups!r} is not a column of clips ({list(self.rows.columns)}).")
            groups = None
        self.groups = groups
        labels = label_choices(self.rows)
        if not labels:
            raise FeaturesError("clips have no label column with two or more values to probe.")
        if label is not None and label not in labels:
            raise FeaturesError(f"label={label!r} is not a label column with 2+ values; choose from {labels}.")
        self.result = None
        self.table = pd.DataFrame()
        self.label = widgets.Dropdown(options=labels, value=label or labels[0], description="label",
                                      layout=widgets.Layout(width="260px"))
        self.probe = widgets.Dropdown(options=tuple(PROBES), value=probe, description="probe",
                                      layout=widgets.Layout(width="200px"))
        self.cv = widgets.IntSlider(value=cv, min=2, max=10, description="folds", continuous_update=False,
                                    layout=widgets.Layout(width="260px"))
        self.control_task = widgets.Checkbox(value=control_task, description="control task", indent=False)
        self.layers = LayerPicker(self.feats, mode="range", description="layers")
        self.button = widgets.Button(description="Run probes", button_style="primary", icon="play",
                                     layout=widgets.Layout(width="140px"))
        self.button.add_class("m2v-probe-run")
        self.progress = widgets.IntProgress(value=0, min=0, max=1, description="", bar_style="")
        self.status = widgets.HTML()
        self.status.add_class("m2v-probe-status")
        self.plot = widgets.Output()
        self.plot.add_class("m2v-probe-plot")
        controls = widgets.VBox([widgets.HBox([self.label, self.probe, self.cv, self.control_task]),
                                 widgets.HBox([self.layers]),
                                 widgets.HBox([self.button, self.progress]), self.status])
        super().__init__([controls, self.plot], css_class="m2v-probe-explorer")
        self.button.on_click(lambda _button: self.run())
        if run:
            self.run()

    def __repr__(self) -> str:
        done = "not run yet" if self.result is None else f"{len(self.table)} summary rows"
        return f"ProbeExplorer({self.probe.value} probe for {self.label.value!r}, {done})"

    def run(self):
        """Probe the chosen layers for the chosen label; errors go to the view's error box."""
        with self.reporting("probing"):
            self.button.disabled = True
            try:
                self._run()
            except Exception:
                self.progress.bar_style = "danger"
                self.status.value = "failed: see the error above"
                raise
            finally:
                self.button.disabled = False

    def _run(self):
        column, positions = self.label.value, self.layers.selected_positions
        keep = np.flatnonzero(self.rows[column].notna().to_numpy())
        names = [self.feats.layer_names[p] for p in positions]
        feats = self.feats.select(clips=keep, layers=names)
        y = self.rows[column].iloc[keep].reset_index(drop=True)
        groups = self.rows[self.groups].iloc[keep].to_numpy() if self.groups else None
        self.progress.max, self.progress.value, self.progress.bar_style = len(positions), 0, "info"
        self.status.value = f"probing {len(positions)} layers for <b>{html.escape(column)}</b> ({len(keep)} clips)…"

        def advance(done: int, total: int) -> None:
            self.progress.value = done * len(positions) // total

        self.result = probe_layers(feats, y, groups=groups, probe=self.probe.value, cv=self.cv.value,
                                   control_task=self.control_task.value, progress=advance)
        summary = self.result.summary(source=None)
        settings = {"label": column, "probe": self.probe.value, "cv": self.cv.value,
                    "control": self.control_task.value}
        self.table = pd.concat([self.table, summary.assign(**settings)], ignore_index=True)
        self.progress.bar_style = "success"
        best = self.result.best_layer()
        metric = self.result.primary_metric
        score = self.result.summary().query("metric == @metric and layer == @best")["mean"].iloc[0]
        self.status.value = (f"best layer <b>{html.escape(layer_label(self.result.layer_names[best]))}</b>: {metric} "
                             f"{score:.3f} · {html.escape(self.result.cv)}")
        fig = new_figure(8.5, 3.8)
        ax = layer_curve(self.result, ax=fig.add_subplot())
        untrained = "" if self.feats.meta.get("trained", True) else " (untrained)"
        ax.set_title(f"{column} · {self.feats.meta.get('model')}{untrained}")
        self.show_figure(self.plot, fig, name="curve")
