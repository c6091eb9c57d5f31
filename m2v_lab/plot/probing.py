"""Figures of probing results: the layer curve and learned layer weights."""

from __future__ import annotations

import numpy as np

from ..errors import AnalysisError
from ..layers import layer_label
from ._axes import axes_for, layer_ticks, place_legend

__all__ = ["layer_curve", "layer_weights"]

_SIZE = (7, 3.8)


def layer_curve(result, ax=None, *, metric: str | None = None, band: bool = True, baselines: bool = True,
                control: bool = True, level: float = 0.95, label: str | None = None, color=None,
                title: bool | str = True, legend: str = "outside"):
    """Mean score per layer with its interval band; baselines dashed, the control task dotted.

    The figure says what it shows: the title names the model (trained or untrained), n and
    the CV scheme; chance is written on its line; a layer whose whole interval lies below
    chance is marked with a red ▼ (a probe doing worse than guessing: a fold design that
    withholds classes, or labels that travel with the groups).

    Parameters
    ----------
    result : ProbeResult
        From :func:`m2v_lab.probing.probe_layers`.
    ax : matplotlib Axes, optional
    metric : str, optional
        Default: the task's primary metric (accuracy, roc_auc, r2).
    band : bool
        Shade the ``level`` interval of the mean, as :meth:`ProbeResult.summary` gives it
        (a bootstrap over groups for class metrics, within [0, 1]).
    baselines : bool
        Chance / majority as grey dashed lines; each feature baseline dashed: a
        curve when it has as many layers as the model (a random-init twin),
        otherwise a line at its best layer.
    control : bool
        The control task's per-layer curve, dotted (when it was run).
    level : float
    label, color :
        Legend label and colour of the model curve (overlay several results on one ax).
    title : bool or str
        True: ``result.title`` (model · trained/untrained · probe, n, CV scheme); a string
        replaces it; False leaves the title alone (e.g. the second of two overlaid results).
    legend : {"outside", "inside", "none"}
        "outside" puts the legend right of the axes, off the curves.

    Returns
    -------
    matplotlib Axes
    """
    metric = result._metric(metric)
    table = result.summary(source=None, level=level)
    table = table[table["metric"] == metric]
    ax = axes_for(ax, size=_SIZE)
    model = table[table["source"] == "model"].sort_values("layer")
    x = model["layer"].to_numpy()
    line, = ax.plot(x, model["mean"], marker="o", ms=4, color=color,
                    label=label or f"{result.probe} probe ({result.n_samples} samples)")
    if band and model["ci_low"].notna().all():
        ax.fill_between(x, model["ci_low"], model["ci_high"], color=line.get_color(), alpha=0.2, lw=0,
                        label=f"{level:.0%} interval")
    if baselines:
        refs = result.baselines
        refs = refs[(refs["metric"] == metric) & (refs["kind"] == "reference")]
        for (_, row), shade in zip(refs.iterrows(), ("0.55", "0.3")):
            ax.axhline(row["mean"], ls="--", lw=1, color=shade, label=f"{row['name']} {row['mean']:.3f}")
            if row["name"] == "chance":
                ax.annotate(f"chance {row['mean']:.2f}", (1.0, row["mean"]), xycoords=("axes fraction", "data"),
                            xytext=(-2, 2), textcoords="offset points", ha="right", va="bottom", fontsize="x-small",
                            color=shade)
        for source in result.sources:
            if source in ("model", "control"):
                continue
            rows = table[table["source"] == source].sort_values("layer")
            if len(rows) == len(model):
                ax.plot(x, rows["mean"], ls="--", lw=1.2, label=source)
            else:
                best = rows.loc[rows["mean"].idxmax()]
                where = f" ({layer_label(best['layer_name'])})" if len(rows) > 1 else ""
                ax.plot(x[[0, -1]], [best["mean"]] * 2, ls="--", lw=1.2, label=f"{source}{where} {best['mean']:.3f}")
    if control and "control" in result.sources:
        rows = table[table["source"] == "control"].sort_values("layer")
        ax.plot(x, rows["mean"], ls=":", lw=1.5, color=line.get_color(), label="control task")
    below = _below_chance(result, model, metric)
    if below.any():
        ax.scatter(x[below], model["mean"].to_numpy()[below], marker="v", s=60, color="tab:red", zorder=4,
                   label="below chance (whole interval)")
    layer_ticks(ax, list(model["layer_name"]))
    ax.set_xlabel("layer")
    ax.set_ylabel(metric.replace("_", " "))
    if title is True:
        ax.set_title(result.title, fontsize="medium")
    elif title:
        ax.set_title(title, fontsize="medium")
    place_legend(ax, legend)
    return ax


def _below_chance(result, model, metric: str) -> np.ndarray:
    """Per layer: does the model's whole interval (its mean, without one) lie below chance?"""
    refs = result.baselines
    chance = refs[(refs["metric"] == metric) & (refs["name"] == "chance")]["mean"]
    if chance.empty:
        return np.zeros(len(model), dtype=bool)
    top = model["ci_high"].where(model["ci_high"].notna(), model["mean"]).to_numpy()
    return top < float(chance.iloc[0])


def layer_weights(weights, ax=None, *, layer_names=None, color=None, legend: str = "outside"):
    """Learned layer weights: mean bar, whiskers from the smallest to the largest fit, one dot per fit.

    The whiskers span the weights' range over the fold × seed fits (min to max): how much refits
    on other training folds move them, not a confidence interval (weights that never left uniform
    have almost none).  Softmax weights lie in [0, 1], and so do the whiskers: a symmetric
    ± sd would reach below 0 for a layer that most fits weight near 0 and one fit does not.
    A fitted probe whose weights stayed near uniform says so in the legend.

    Parameters
    ----------
    weights : LayerSumProbe (fitted) or array_like, shape (layers,) or (fits, layers)
    ax : matplotlib Axes, optional
    layer_names : sequence of str, optional
        Default: the probe's, else ``0 … layers-1``.
    color : optional
    legend : {"outside", "inside", "none"}

    Returns
    -------
    matplotlib Axes
    """
    untrained = bool(getattr(weights, "near_uniform_", False))
    if hasattr(weights, "weights_"):
        layer_names = layer_names or weights.layer_names_
        weights = weights.weights_
    w = np.atleast_2d(np.asarray(weights, dtype=float))
    if w.ndim != 2:
        raise AnalysisError(f"weights must be (layers,) or (fits, layers); got shape {np.shape(weights)}.")
    n_layers = w.shape[1]
    names = list(layer_names) if layer_names is not None else [str(i) for i in range(n_layers)]
    if len(names) != n_layers:
        raise AnalysisError(f"{len(names)} layer names for {n_layers} weights.")
    ax = axes_for(ax, size=_SIZE)
    x = np.arange(n_layers)
    mean = w.mean(0)
    spread = np.stack([mean - w.min(0), w.max(0) - mean]) if len(w) > 1 else None  # within [0, 1], as the weights
    label = f"mean, whiskers min–max over {len(w)} fits" if spread is not None else "weight"
    ax.bar(x, mean, yerr=spread, color=color, alpha=0.7, capsize=3,
           label=label + (" — near uniform: not learned" if untrained else ""))
    if len(w) > 1:
        jitter = np.linspace(-0.2, 0.2, len(w))
        ax.scatter((x[None] + jitter[:, None]).ravel(), w.ravel(), s=8, color="k", alpha=0.5, zorder=3)
    ax.axhline(1 / n_layers, ls="--", lw=1, color="0.4", label=f"uniform 1/{n_layers}")
    layer_ticks(ax, names)
    ax.set_xlabel("layer")
    ax.set_ylabel("softmax weight")
    place_legend(ax, legend)
    return ax
