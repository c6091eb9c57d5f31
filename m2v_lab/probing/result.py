"""What :func:`probe_layers` returns: tidy fold scores, the summaries drawn from them, and their algebra."""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd
from scipy import stats

from ..errors import AnalysisError, OptionError
from .intervals import (ClipPredictions, bootstrap_label, class_replicates, group_weights, percentile_interval,
                        scaled_interval)
from .metrics import METRICS, PRIMARY, fold_interval

MODEL, CONTROL, MAJORITY, CHANCE = "model", "control", "majority", "chance"
_STATS = ["mean", "sd", "ci_low", "ci_high", "n_folds", "interval"]
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
    predictions : mapping of str to ClipPredictions
        Out-of-fold predicted class of every clip per source (``"model"``, ``"control"``,
        baselines, ``"majority"``) and seed, which the bootstrap intervals of class metrics
        redraw; empty for other tasks.
    control : str or None
        How the control task was made and split, when it was run.
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
    predictions: Mapping[str, ClipPredictions]
    control: str | None = None
    model: str | None = None
    _replicates: dict = field(default_factory=dict, init=False, repr=False, compare=False)

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

    def _weights(self) -> np.ndarray:
        """Bootstrap draw counts of the resampled units (groups, else clips), shared by every source."""
        if "weights" not in self._replicates:
            n_units = int(max(pred.group.max() for pred in self.predictions.values())) + 1
            self._replicates["weights"] = group_weights(n_units)
        return self._replicates["weights"]

    def replicates(self, source: str) -> dict[str, np.ndarray]:
        """Bootstrap replicates of the mean class metrics of ``source``'s layers (multiclass only).

        Whole groups (clips when ungrouped) are drawn with replacement, the same draws for every
        source, and each fold × seed score is recomputed from the clips' out-of-fold
        predictions, weighted by their group's draw count; the replicate is their mean, the
        statistic :meth:`summary` reports.  See :mod:`m2v_lab.probing.intervals`.

        Parameters
        ----------
        source : str
            ``"model"``, ``"control"``, a baseline's name or ``"majority"``.

        Returns
        -------
        dict
            metric → ndarray (resamples, layers).
        """
        if source not in self._replicates:
            self._replicates[source] = class_replicates(self.predictions[source], self._weights(), len(self.columns))
        return self._replicates[source]

    def _intervals(self, table: pd.DataFrame, source_of, level: float) -> pd.DataFrame:
        """The statistics of ``table``'s rows (one per source × layer × metric, fold scores in ``values``)."""
        out = []
        for _, row in table.iterrows():
            values = np.asarray(row["values"], dtype=np.float64)
            values = values[np.isfinite(values)]
            mean, sd, _, _ = fold_interval(values, self._ratio(), level)
            source = source_of(row)
            if source == CHANCE:  # a formula of the test folds' label shares, not an estimate
                low = high = np.nan
                label = "none: the expected score of uniform guessing"
            elif self.task == "multiclass":
                layer = 0 if pd.isna(row.get("layer", np.nan)) else int(row["layer"])
                low, high = percentile_interval(self.replicates(source)[row["metric"]][:, layer], level)
                label = bootstrap_label(len(self._weights()[0]), self.grouped)
            else:
                _, _, low, high, label = scaled_interval(values, self._ratio(), level, row["metric"])
            out.append([mean, sd, float(low), float(high), int(values.size), label])
        return pd.DataFrame(out, columns=_STATS, index=table.index)

    def summary(self, *, source: str | None = MODEL, level: float = 0.95) -> pd.DataFrame:
        """Mean, sd and ``level`` interval per layer and metric over all folds × seeds.

        ``mean`` is the mean of the fold × seed scores and ``sd`` their spread across folds and
        seeds (not an uncertainty of the mean).  ``ci_low`` / ``ci_high`` bound the mean: for
        class metrics a percentile bootstrap over groups (clips when ungrouped) of the clips'
        out-of-fold predictions, within [0, 1]; for label and value metrics a Nadeau–Bengio
        corrected t interval on the metric's unbounded scale, within its range.  ``interval``
        says which (see :mod:`m2v_lab.probing.intervals`).

        Parameters
        ----------
        source : str or None
            ``"model"``, ``"control"``, a baseline's name, or None for all.
        level : float
            Coverage of the interval.

        Returns
        -------
        DataFrame
            Columns ``source, layer, layer_name, metric, mean, sd, ci_low, ci_high, n_folds, interval``.
        """
        rows = self.scores if source is None else self.scores[self.scores["source"] == source]
        if rows.empty:
            raise OptionError(f"no scores for source {source!r}; sources are {self.sources}.")
        keys = ["source", "layer", "layer_name", "metric"]
        table = rows.groupby(keys, sort=False)["value"].agg(list).rename("values").reset_index()
        return pd.concat([table[keys], self._intervals(table, lambda row: row["source"], level)], axis=1)

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
        n_folds, interval`` (as :meth:`summary`); ``kind`` is ``"reference"``, ``"features"``
        or ``"control"``.  A multi-layer feature baseline shows its best layer per metric,
        picked on the test folds (optimistic for the baseline, so conservative for the
        model); the control task is shown at the model's best layer.  Chance is the expected
        score of uniform guessing, a formula rather than an estimate: it has no interval.
        """
        parts = []
        refs = self.references.groupby(["name", "metric"], sort=False)["value"].agg(list).rename("values").reset_index()
        refs = pd.concat([refs[["name", "metric"]], self._intervals(refs, lambda row: row["name"], 0.95)], axis=1)
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
        """Real-task minus control-task score per layer (Hewitt & Liang).

        The real score says how well a probe predicts the label for groups it never trained
        on; the control score how well it recalls random labels given to groups it did train on
        (held-out members of them), which is what it can memorise about group identity.  Their
        difference is the part of the real score that memorising groups cannot give.  The two
        are fitted on different splits, so they are not paired fold by fold.

        Parameters
        ----------
        metric : str, optional
            Default: the primary one.
        level : float
            Coverage of the interval.

        Returns
        -------
        DataFrame
            Columns ``layer, layer_name, model, control, selectivity, se, ci_low, ci_high,
            interval``: the two mean scores, their difference, its standard error and
            interval — class metrics from the same bootstrap draws of groups for both (sd and
            percentiles of the differences), other metrics from the Nadeau–Bengio corrected
            variances of the two means added (t on ``J - 1`` degrees of freedom, ``J`` fold ×
            seed scores each).

        Raises
        ------
        AnalysisError
            No control task was run.
        """
        metric = self._metric(metric)
        if CONTROL not in self.sources:
            raise AnalysisError("no control task was run: call probe_layers(..., control_task=True).")
        rows = self.scores[self.scores["metric"] == metric]
        scores = {source: rows[rows["source"] == source].groupby(["layer", "layer_name"], sort=False)["value"]
                  for source in (MODEL, CONTROL)}
        out = scores[MODEL].mean().rename(MODEL).to_frame().join(scores[CONTROL].mean().rename(CONTROL)).reset_index()
        out["selectivity"] = out[MODEL] - out[CONTROL]
        if self.task == "multiclass":
            diff = self.replicates(MODEL)[metric] - self.replicates(CONTROL)[metric]
            out["se"] = np.nanstd(diff, axis=0, ddof=1)
            out["ci_low"], out["ci_high"] = percentile_interval(diff, level)
            out["interval"] = bootstrap_label(len(self._weights()[0]), self.grouped)
        else:
            var = {source: (1 / values.count() + self._ratio()) * values.var(ddof=1)
                   for source, values in scores.items()}
            out["se"] = np.sqrt(var[MODEL].to_numpy() + var[CONTROL].to_numpy())
            half = stats.t.ppf(0.5 + level / 2, scores[MODEL].count().to_numpy() - 1) * out["se"]
            out["ci_low"], out["ci_high"] = out["selectivity"] - half, out["selectivity"] + half
            out["interval"] = "Nadeau–Bengio t, the two means' corrected variances added"
        return out

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
            Model and control-task scores, parameters and clip predictions of every part, layers
            renumbered ``0 … layers-1``; references, folds and feature baselines (which do not
            depend on the model's layers) of the first part.

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

        predictions = dict(first.predictions)
        for source in (MODEL, CONTROL):
            if source in predictions:
                predictions[source] = replace(predictions[source], predicted=np.concatenate(
                    [part.predictions[source].predicted for part in parts]))
        return replace(first, scores=stack("scores"), params=stack("params"), layer_names=names,
                       predictions=predictions)

    @property
    def title(self) -> str:
        """What a figure of this result must say: the model (trained or not), n and the CV scheme.

        E.g. ``"music2vec-mini · trained · ridge probe, n = 384 clips\n5-fold StratifiedGroupKFold
        over 32 groups, 3 seeds"`` (the inner search, after the scheme's ``;``, left out).
        """
        head = f"{self.model} · " if self.model else ""
        return f"{head}{self.probe} probe, n = {self.n_clips} clips\n{self.cv.split(';')[0]}"

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
