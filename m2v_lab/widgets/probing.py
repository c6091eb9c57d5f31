"""ProbeExplorer: which layers know a label, one probe per layer, with a progress bar."""

from __future__ import annotations

import html

import ipywidgets as widgets
import pandas as pd

from ..errors import FeaturesError, OptionError
from ..layers import layer_label
from ..options import whole_number
from ..plot.probing import layer_curve
from ..probing import probe_layers
from ..probing.core import PROBES
from ._rows import ALL_CLIPS, aligned_rows, left_out_note, pooled, probe_tasks
from ._view import View, new_figure
from .layers import LayerPicker

__all__ = ["ProbeExplorer", "INSTRUCTION"]

#: What the empty plot area says before the first run.
INSTRUCTION = "Choose a label and press Run probes: one probe per layer, scored on groups it did not train on."
_MAX_FOLDS = 10


class ProbeExplorer(View):
    """Probe some layers for a label column and draw the layer curve.

    Only labels that a grouped cross-validation can probe are offered, each over the clips that
    carry it (:func:`m2v_lab.widgets._rows.probe_tasks`): two or more values, every class in two
    groups or more with ``cv`` clips or more, ``cv`` groups or more, and no leak — clips of one
    subset at a time when mixing subsets would put one source (an instrument) in training and test
    folds.  A short note under the controls says why the other labels are not offered.

    Parameters
    ----------
    feats : Features
        Pooled features (frame-level ones are mean-pooled); labels come from ``feats.clip_table``.
    clips : DataFrame, optional
        The frame passed to ``extract``, for label columns added to it since; default
        ``feats.clip_table``.
    label : str, optional
        Initial label column (default: the first one offered).
    scope : str, optional
        The clips it is probed over: a ``subset`` (e.g. ``"notes"``) or ``"(all)"`` (every clip
        carrying it); default the first offered for the label.
    probe : {"ridge", "logistic", "mlp", "mlp-marble"}
    groups : str or None
        Column that folds keep together (default ``"group"`` when present).
    cv : int
        Folds, 2 to 10.
    control_task : bool
        Also run Hewitt & Liang's control task (drawn dotted).
    run : bool
        Run once at construction.

    Raises
    ------
    OptionError
        An unknown ``probe``, or ``cv`` outside 2–10.
    FeaturesError
        ``label`` (or ``scope``) cannot be probed: the message says why and lists the labels that can.

    Attributes
    ----------
    tasks : dict of str to list of ProbeTask
        The labels offered, each with the clips it can be probed over (the first is the default).
    left_out : dict of str to str
        Labels not offered (or clips a label is not offered over), and why.
    label, scope, probe : ipywidgets.Dropdown
        ``scope`` lists the clips the label can be probed over, with their grouping
        (e.g. ``notes · 128 clips · 32 groups (instrument)``).
    note : ipywidgets.HTML
        Which labels are not offered, and why.
    layers : LayerPicker
        A range of layers.
    cv : ipywidgets.IntSlider
    control_task : ipywidgets.Checkbox
    button : ipywidgets.Button
    progress : ipywidgets.IntProgress
        Counts layers: it advances as ``probe_layers`` reports layers × folds done.
    plot : ipywidgets.Output
        :data:`INSTRUCTION` until the first run, a one-line message while a run is under way (the
        previous curve is cleared), then the layer curve.
    result : ProbeResult or None
        The latest run.
    table : DataFrame
        ``result.summary()`` of every run so far, with ``label``, ``scope``, ``probe``, ``cv`` and
        ``control`` columns saying which run it was.
    """

    def __init__(self, feats, clips=None, *, label=None, scope=None, probe: str = "ridge",
                 groups: str | None = "group", cv: int = 5, control_task: bool = False, run: bool = False):
        # checked here: a Dropdown given a value outside its options raises a TraitError naming no choices
        if probe not in PROBES:
            raise OptionError(f"probe={probe!r}: use one of {tuple(PROBES)}.")
        cv = whole_number("cv", cv, minimum=2, below=_MAX_FOLDS + 1)
        self.feats = pooled(feats)
        self.rows = aligned_rows(self.feats, clips)
        if groups is not None and groups not in self.rows.columns:
            if groups != "group":
                raise FeaturesError(f"groups={groups!r} is not a column of clips ({list(self.rows.columns)}).")
            groups = None
        self.groups = groups
        self.tasks, self.left_out = probe_tasks(self.rows, groups=groups, cv=cv)
        first = label if label is not None else next(iter(self.tasks), None)
        if label is not None or scope is not None:
            self._check_label(first, scope, cv)
        self.result = None
        self.table = pd.DataFrame()
        self.label = widgets.Dropdown(options=list(self.tasks), value=first, description="label",
                                      layout=widgets.Layout(width="240px"))
        self.scope = widgets.Dropdown(options=self._scope_options(first), description="clips",
                                      layout=widgets.Layout(width="400px"), style={"description_width": "50px"})
        if scope is not None:
            self.scope.value = scope
        self.scope.add_class("m2v-probe-scope")
        self.probe = widgets.Dropdown(options=tuple(PROBES), value=probe, description="probe",
                                      layout=widgets.Layout(width="190px"))
        self.cv = widgets.IntSlider(value=cv, min=2, max=_MAX_FOLDS, description="folds", continuous_update=False,
                                    layout=widgets.Layout(width="230px"))
        self.control_task = widgets.Checkbox(value=control_task, description="control task", indent=False,
                                             layout=widgets.Layout(width="120px"))
        self.layers = LayerPicker(self.feats, mode="range", description="layers")
        self.button = widgets.Button(description="Run probes", button_style="primary", icon="play",
                                     layout=widgets.Layout(width="150px", flex="0 0 auto"))
        self.button.add_class("m2v-probe-run")
        self.progress = widgets.IntProgress(value=0, min=0, max=1, description="", bar_style="",
                                            layout=widgets.Layout(width="200px", flex="0 0 auto"))
        self.status = widgets.HTML()
        self.status.add_class("m2v-probe-status")
        self.note = widgets.HTML(left_out_note(self.left_out))
        self.note.add_class("m2v-probe-note")
        self.plot = widgets.Output(layout=widgets.Layout(max_width="860px"))
        self.plot.add_class("m2v-probe-plot")
        controls = widgets.VBox([widgets.HBox([self.label, self.scope, self.probe]),
                                 widgets.HBox([self.layers, self.cv, self.control_task]),
                                 widgets.HBox([self.button, self.progress, self.status]), self.note])
        super().__init__([controls, self.plot], css_class="m2v-probe-explorer")
        self._idle()
        self.watch(self.label, "listing the clips to probe", self._sync_scope)
        self.watch(self.cv, "checking which labels the folds can probe", self._retask)
        self.button.on_click(lambda _button: self.run())
        if run:
            self.run()

    def __repr__(self) -> str:
        done = "not run yet" if self.result is None else f"{len(self.table)} summary rows"
        task = self.task
        where = "" if task is None or task.scope == ALL_CLIPS else f" over {task.scope}"
        return f"ProbeExplorer({self.probe.value} probe for {self.label.value!r}{where}, {done})"

    # -- what can be probed ---------------------------------------------------------------
    @property
    def task(self):
        """The :class:`~m2v_lab.widgets._rows.ProbeTask` chosen (label and clips), or None."""
        for task in self.tasks.get(self.label.value, ()):
            if task.scope == self.scope.value:
                return task
        return None

    def _check_label(self, label, scope, cv):
        choices = list(self.tasks)
        if label not in self.tasks:
            why = self.left_out.get(label, "not a label column of clips" if label not in self.rows.columns
                                    else "not a label column")
            grouped = f"{cv} folds over {self.groups!r}" if self.groups else f"{cv} ungrouped folds"
            raise FeaturesError(f"label={label!r} cannot be probed with {grouped}: {why}; choose from {choices}.")
        scopes = [task.scope for task in self.tasks[label]]
        if scope is not None and scope not in scopes:
            why = next((w for what, w in self.left_out.items() if what.startswith(f"{label} over ")), "")
            raise FeaturesError(f"scope={scope!r}: {label!r} can be probed over {scopes}"
                                f"{f' ({why} elsewhere)' if why else ''}.")

    def _scope_options(self, label) -> list[tuple[str, str]]:
        return [(task.text, task.scope) for task in self.tasks.get(label, ())]

    def _sync_scope(self):
        options = self._scope_options(self.label.value)
        if list(self.scope.options) != options:
            previous = self.scope.value
            self.scope.options = options
            if previous in [scope for _, scope in options]:
                self.scope.value = previous
        self.scope.disabled = len(options) < 2

    def _retask(self):
        """Offer what the new number of folds can probe, keeping the choice when it still can be."""
        label, scope = self.label.value, self.scope.value
        self.tasks, self.left_out = probe_tasks(self.rows, groups=self.groups, cv=self.cv.value)
        self.note.value = left_out_note(self.left_out)
        self.label.options = list(self.tasks)
        if label in self.tasks:
            self.label.value = label
        self._sync_scope()
        if scope in [task.scope for task in self.tasks.get(self.label.value, ())]:
            self.scope.value = scope
        self._idle()

    def _idle(self):
        """Controls and the plot area as they are between runs."""
        can = bool(self.tasks)
        self.button.disabled = not can
        self.label.disabled = not can
        self.scope.disabled = len(self.scope.options) < 2
        if self.result is None:
            if can:
                self.show_message(self.plot, INSTRUCTION)
            else:
                self.show_message(self.plot, f"Nothing to probe: no label can be probed with {self.cv.value} "
                                             "grouped folds here (see the note above).")

    # -- running ------------------------------------------------------------------------
    def run(self):
        """Probe the chosen layers for the chosen label; errors go to the view's error box."""
        with self.reporting("probing"):
            self.button.disabled = True
            try:
                self._run()
            except Exception:
                self.progress.bar_style = "danger"
                self.status.value = "failed: see the error above"
                self.show_message(self.plot, "No curve: the run failed (see the error above). " + INSTRUCTION)
                raise
            finally:
                self.button.disabled = not self.tasks

    def _run(self):
        task = self.task
        if task is None:
            raise FeaturesError("nothing to probe: no label can be probed with these folds (the note under the "
                                "controls says why); lower the folds or add labels to feats.clip_table.")
        column, positions = task.label, self.layers.selected_positions
        keep = task.positions
        names = [self.feats.layer_names[p] for p in positions]
        over = "" if task.scope == ALL_CLIPS else f" over {task.scope}"
        self.progress.max, self.progress.value, self.progress.bar_style = len(positions), 0, "info"
        self.status.value = (f"probing {len(positions)} layers for <b>{html.escape(column)}</b>{html.escape(over)} "
                             f"({html.escape(task.text.split(' · ', 1)[1])})…")
        # the previous curve belongs to other controls: never show it next to a run of these
        self.show_message(self.plot, f"Probing {column}{over}: the curve appears when the {len(positions)} layers "
                                     "are done.", busy=True)
        feats = self.feats.select(clips=keep, layers=names)
        y = self.rows[column].iloc[keep].reset_index(drop=True)
        groups = self.rows[self.groups].iloc[keep].to_numpy() if self.groups else None

        def advance(done: int, total: int) -> None:
            self.progress.value = done * len(positions) // total

        self.result = probe_layers(feats, y, groups=groups, probe=self.probe.value, cv=self.cv.value,
                                   control_task=self.control_task.value, progress=advance)
        summary = self.result.summary(source=None)
        settings = {"label": column, "scope": task.scope, "probe": self.probe.value, "cv": self.cv.value,
                    "control": self.control_task.value}
        self.table = pd.concat([self.table, summary.assign(**settings)], ignore_index=True)
        self.progress.bar_style = "success"
        best = self.result.best_layer()
        metric = self.result.primary_metric
        score = self.result.summary().query("metric == @metric and layer == @best")["mean"].iloc[0]
        folds = self.result.cv.split(";")[0]  # how the folds were made; the inner search is in result.cv
        self.status.value = (f"best layer <b>{html.escape(layer_label(self.result.layer_names[best]))}</b>: {metric} "
                             f"{score:.3f} · {html.escape(folds)}")
        fig = new_figure(8.2, 3.6)
        ax = layer_curve(self.result, ax=fig.add_subplot())
        untrained = "" if self.feats.meta.get("trained", True) else " (untrained)"
        ax.set_title(f"{column}{over} · {self.feats.meta.get('model')}{untrained}")
        self.show_figure(self.plot, fig, name="curve")
