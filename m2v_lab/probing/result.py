"""What :func:`probe_layers` returns: tidy fold scores, the summaries drawn from them, and their algebra."""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from ..errors import AnalysisError, OptionError
from .metrics import METRICS, PRIMARY, fold_interval

MODEL, CONTROL = "model", "control"
_STATS = ["mean", "sd", "ci_low", "ci_high", "n_folds"]
#: Fields that say which run a result is: results joined by ProbeResult.concat must agree on them.
_RUN_FIELDS = ("task", "probe", "cv", "columns", "grouped", "n_samples", "n_clips")


@dataclass(frozen=True, repr=False)
class ProbeResult:
    """Per-layer probe scores over folds and seeds, with baselines.

    Attributes
    ----------
    scores : DataFrame
        One row per source × layer × seed × fold × metric: columns ``source``
        (``"model"``, ``"control"`` or a baseline's name), ``layer``,
        ``layer_name``, ``seed``, ``fold``, ``metric``, ``value``.
    references : DataFrame
        Chance and majority (regression: mean predictor) scores per fold:
        ``name``, ``seed``, ``fold``, ``metric``, ``value``.
    params : DataFrame
        Hyper-parameters chosen inside each training fold (``alpha``, ``C``,
        ``best_epoch``…): ``source``, ``layer``, ``layer_name``, ``seed``, ``fold``,
        ``param``, ``value``.
    folds : DataFrame
        ``seed``, ``fold``, ``n_train``, ``n_test`` (samples) and ``n_test_clips``.
    task, probe, cv : str
        The task, the probe's name and a one-line description of the CV.
    layer_names, columns : tuple of str
        Layers of the model features; classes / labels / targets.
    grouped : bool
        Whether folds kept groups (or clips) together.
    n_samples, n_clips : int
    """

    scores: pd.DataFrame
    references: pd.DataFrame
    params: pd.DataFrame
    folds: pd.DataFrame
    task: str
    probe: str
    cv: str
    layer_names: tuple
    columns: tuple
    grouped: bool
    n_samples: int
    n_clips: int

    @property
    def metrics(self) -> tuple[str, ...]:
        return METRICS[self.task]

    @property
    def primary_metric(self) -> str:
        """accuracy (multiclass), roc_auc (multilabel) or r2 (regression)."""
        return PRIMARY[self.task]

    @property
    def sources(self) -> list[str]:
        """``"model"``, then ``"control"`` if run, then feature baselines, in run order."""
        return list(dict.fromkeys(self.scores["source"]))

    def _metric(self, metric: str | None) -> str:
        metric = metric or self.primary_metric
        if metric not in self.metrics:
            raise OptionError(f"metric {metric!r} is not reported for {self.task}; choose from {self.metrics}.")
        return metric

    def _ratio(self) -> float:
        return float((self.folds["n_test"] / self.folds["n_train"]).mean())

    def _interval(self, values: pd.Series, level: float) -> pd.Series:
        mean, sd, low, high = fold_interval(values.to_numpy(), self._ratio(), level)
        return pd.Series([mean, sd, low, high, int(values.notna().sum())], index=_STATS)

    def summary(self, *, source: str | None = MODEL, level: float = 0.95) -> pd.DataFrame:
        """Mean, sd and ``level`` interval per layer and metric over all folds × seeds.

        Parameters
        ----------
        source : str or None
            ``"model"``, ``"control"``, a baseline's name, or None for all.
        level : float
            Coverage of the Nadeau–Bengio corrected t interval (see
            :func:`m2v_lab.probing.metrics.fold_interval`).

        Returns
        -------
        DataFrame
            Columns ``source, layer, layer_name, metric, mean, sd, ci_low, ci_high, n_folds``.
        """
        rows = self.scores if source is None else self.scores[self.scores["source"] == source]
        if rows.empty:
            raise OptionError(f"no scores for source {source!r}; sources are {self.sources}.")
        keys = ["source", "layer", "layer_name", "metric"]
        out = (rows.groupby(keys, sort=False)["value"].apply(self._interval, level=level).unstack()
               .reset_index())
        out["n_folds"] = out["n_folds"].astype(int)
        return out

    def best_layer(self, metric: str | None = None, *, source: str = MODEL) -> int:
        """Index of the layer with the highest mean ``metric`` (default: the primary one)."""
        metric = self._metric(metric)
        table = self.summary(source=source)
        table = table[table["metric"] == metric]
        return int(table.loc[table["mean"].idxmax(), "layer"])

    @property
    def baselines(self) -> pd.DataFrame:
        """Reference scores (chance, majority), each feature baseline at its best layer, and the control task.

        Columns ``name, kind, layer, layer_name, metric, mean, sd, ci_low, ci_high,
        n_folds``; ``kind`` is ``"reference"``, ``"features"`` or ``"control"``.  A
        multi-layer feature baseline shows its best layer per metric, picked on
        the test folds (optimistic for the baseline, so conservative for the
        model); the control task is shown at the model's best layer.
        """
        parts = []
        refs = (self.references.groupby(["name", "metric"], sort=False)["value"]
                .apply(self._interval, level=0.95).unstack().reset_index())
        parts.append(refs.assign(kind="reference", layer=np.nan, layer_name=None))
        for source in self.sources:
            if source == MODEL:
                continue
            table = self.summary(source=source)
            for metric in self.metrics:
                rows = table[table["metric"] == metric]
                if source == CONTROL:
                    pick = rows[rows["layer"] == self.best_layer(metric)]
                else:
                    pick = rows.loc[[rows["mean"].idxmax()]]
                parts.append(pick.assign(name=source, kind="control" if source == CONTROL else "features"))
        out = pd.concat(parts, ignore_index=True)
        return out[["name", "kind", "layer", "layer_name", "metric"] + _STATS]

    def selectivity(self, metric: str | None = None, *, level: float = 0.95) -> pd.DataFrame:
        """Real minus control-task score per layer (Hewitt & Liang), paired over folds.

        Returns
        -------
        DataFrame
            Columns ``layer, layer_name, model, control, selectivity, sd, ci_low, ci_high``.
        """
        metric = self._metric(metric)
        if CONTROL not in self.sources:
            raise AnalysisError("no control task was run: call probe_layers(..., control_task=True).")
        rows = self.scores[self.scores["metric"] == metric]
        keys = ["layer", "layer_name", "seed", "fold"]
        paired = (rows[rows["source"] == MODEL].set_index(keys)["value"].rename(MODEL).to_frame()
                  .join(rows[rows["source"] == CONTROL].set_index(keys)["value"].rename(CONTROL)))
        paired["selectivity"] = paired[MODEL] - paired[CONTROL]
        out = []
        for (layer, name), group in paired.groupby(level=["layer", "layer_name"], sort=False):
            mean, sd, low, high = fold_interval(group["selectivity"].to_numpy(), self._ratio(), level)
            out.append({"layer": layer, "layer_name": name, MODEL: group[MODEL].mean(),
                        CONTROL: group[CONTROL].mean(), "selectivity": mean, "sd": sd, "ci_low": low,
                        "ci_high": high})
        return pd.DataFrame(out)

    def to_frame(self) -> pd.DataFrame:
        """Every fold score in one long frame: the model's layers, the control task, feature baselines, references.

        Returns
        -------
        DataFrame
            One row per source × layer × seed × fold × metric, columns ``source, kind, layer,
            layer_name, seed, fold, metric, value``.  ``kind`` is ``"model"``, ``"control"``,
            ``"features"`` (a feature baseline) or ``"reference"`` (chance, majority, mean
            predictor: no layer, ``<NA>``).
        """
        kinds = self.scores["source"].map({MODEL: "model", CONTROL: "control"}).fillna("features")
        references = self.references.rename(columns={"name": "source"}).assign(kind="reference", layer=pd.NA,
                                                                                layer_name=None)
        out = pd.concat([self.scores.assign(kind=kinds), references], ignore_index=True)
        out["layer"] = out["layer"].astype("Int64")
        return out[["source", "kind", "layer", "layer_name", "seed", "fold", "metric", "value"]]

    @classmethod
    def concat(cls, parts: Sequence[ProbeResult], *, layer_names: Sequence[str] | None = None) -> ProbeResult:
        """One result from runs of one probe on the same labels and folds over different layers.

        Folds and control labels depend on the labels, groups and seeds only, never on the
        features, so runs on layer subsets share them and their concatenation holds the rows a
        single run over all those layers gives (the MLP probe excepted: its initialisation is
        drawn for all layers at once).

        Parameters
        ----------
        parts : sequence of ProbeResult
            Layers follow in the order of ``parts``.
        layer_names : sequence of str, optional
            Names of all the layers, in order; default the parts' own.

        Returns
        -------
        ProbeResult
            Model and control-task scores and parameters of every part, layers renumbered
            ``0 … layers-1``; references, folds and feature baselines (which do not depend on the
            model's layers) of the first part.

        Raises
        ------
        OptionError
            No parts, a part that is not a ProbeResult, or ``layer_names`` of the wrong length.
        AnalysisError
            Parts from different runs (task, probe, CV, labels, samples, folds or sources
            differ), or layer names repeated across parts (pass ``layer_names``).
        """
        parts = list(parts)
        if not parts or not all(isinstance(part, ProbeResult) for part in parts):
            raise OptionError("ProbeResult.concat needs a non-empty list of ProbeResults.")
        first = parts[0]
        for i, part in enumerate(parts[1:], start=1):
            differ = [name for name in _RUN_FIELDS if getattr(part, name) != getattr(first, name)]
            differ += [name for name in ("references", "folds") if not getattr(part, name).equals(getattr(first, name))]
            differ += ["sources"] if part.sources != first.sources else []
            if differ:
                raise AnalysisError(f"parts[{i}] differs from parts[0] in {', '.join(differ)}: concat joins runs of "
                                    "one probe on the same labels, groups, seeds and folds, over different layers.")
        names = tuple(name for part in parts for name in part.layer_names)
        if layer_names is not None:
            if len(layer_names) != len(names):
                raise OptionError(f"layer_names has {len(layer_names)} names for the parts' {len(names)} layers.")
            names = tuple(str(name) for name in layer_names)
        elif len(set(names)) < len(names):
            raise AnalysisError(f"the parts' layer names {names} repeat; pass layer_names=[...] to tell them apart.")
        offsets = np.cumsum([0] + [len(part.layer_names) for part in parts[:-1]])

        def stack(attr: str) -> pd.DataFrame:
            if getattr(first, attr).empty:  # a probe that chooses no hyper-parameters has no params rows
                return getattr(first, attr)
            frames = []
            for source in (MODEL, CONTROL):
                for offset, part in zip(offsets, parts):
                    rows = getattr(part, attr)
                    rows = rows[rows["source"] == source]
                    frames.append(rows.assign(layer=rows["layer"] + offset,
                                              layer_name=[names[i] for i in rows["layer"] + offset]))
            baselines = getattr(first, attr)
            frames.append(baselines[~baselines["source"].isin((MODEL, CONTROL))])
            return pd.concat(frames, ignore_index=True)

        return replace(first, scores=stack("scores"), params=stack("params"), layer_names=names)

    def _headline(self) -> tuple[str, str]:
        """The run in one line, and its best layer with the reference scores in another."""
        metric = self.primary_metric
        table = self.summary()
        best = table[table["metric"] == metric].sort_values("mean").iloc[-1]
        refs = self.references[self.references["metric"] == metric].groupby("name")["value"].mean()
        ref_text = ", ".join(f"{name} {value:.3f}" for name, value in refs.items())
        return (f"{self.probe} probe, {self.task}, {len(self.layer_names)} layers, {self.n_samples} samples; "
                f"{self.cv}",
                f"best layer {int(best['layer'])} ({best['layer_name']}): {metric} {best['mean']:.3f} "
                f"[{best['ci_low']:.3f}, {best['ci_high']:.3f}]; {ref_text}")

    def __repr__(self) -> str:
        run, best = self._headline()
        return f"ProbeResult({run}\n  {best})"

    def _repr_html_(self) -> str:
        run, best = self._headline()
        metric = self.primary_metric
        table = self.summary()
        table = table[table["metric"] == metric][["layer", "layer_name", "mean", "ci_low", "ci_high"]]
        table = table.rename(columns={"mean": metric})
        if CONTROL in self.sources:
            table = table.merge(self.selectivity(metric)[["layer", "selectivity"]], on="layer")
        return (f"<div><b>ProbeResult</b>: {html.escape(run)}<br>{html.escape(best)}</div>"
                + table.to_html(index=False, float_format=lambda v: f"{v:.3f}"))
