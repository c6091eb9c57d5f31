"""What :func:`probe_layers` returns: tidy fold scores and the summaries drawn from them."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..errors import AnalysisError
from .metrics import METRICS, PRIMARY, fold_interval

MODEL, CONTROL = "model", "control"
_STATS = ["mean", "sd", "ci_low", "ci_high", "n_folds"]


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
            raise AnalysisError(f"metric {metric!r} is not reported for {self.task}; choose from {self.metrics}.")
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
            raise AnalysisError(f"no scores for source {source!r}; sources are {self.sources}.")
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

    def __repr__(self) -> str:
        metric = self.primary_metric
        table = self.summary()
        best = table[table["metric"] == metric].sort_values("mean").iloc[-1]
        refs = self.references[self.references["metric"] == metric].groupby("name")["value"].mean()
        ref_text = ", ".join(f"{name} {value:.3f}" for name, value in refs.items())
        return (f"ProbeResult({self.probe} probe, {self.task}, {len(self.layer_names)} layers, "
                f"{self.n_samples} samples; {self.cv}\n"
                f"  best layer {int(best['layer'])} ({best['layer_name']}): {metric} {best['mean']:.3f} "
                f"[{best['ci_low']:.3f}, {best['ci_high']:.3f}]; {ref_text})")
