"""``probe_layers``: one probe per layer under (grouped) cross-validation, with controls and baselines."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..errors import AnalysisError
from .inputs import Labels, as_layers, encode_clips, encode_groups, encode_labels
from .logistic import LogisticProbe
from .metrics import aggregate, first_of_clip, reference_scores, score
from .mlp import MLPProbe
from .result import CONTROL, MODEL, ProbeResult
from .ridge import RidgeProbe
from .splits import control_codes, describe, fold_ids

PROBES = {"ridge": RidgeProbe, "logistic": LogisticProbe, "mlp": MLPProbe}


def resolve_probe(probe):
    """A probe object from a name (``"ridge"``, ``"logistic"``, ``"mlp"``) or a configured probe."""
    if isinstance(probe, str):
        if probe not in PROBES:
            raise AnalysisError(f"probe={probe!r} is not one of {sorted(PROBES)} (or a RidgeProbe / "
                                "LogisticProbe / MLPProbe instance).")
        return PROBES[probe]()
    if not hasattr(probe, "cross_validate"):
        raise AnalysisError(f"probe={probe!r} is neither a probe name nor a probe object.")
    return probe


def _seeds(seeds, default) -> tuple[int, ...]:
    seeds = default if seeds is None else [seeds] if np.isscalar(seeds) else list(seeds)
    seeds = tuple(int(s) for s in seeds)
    if not seeds:
        raise AnalysisError("seeds is empty: give at least one seed (e.g. seeds=(0,)).")
    return seeds


def _control_targets(control_task, labels: Labels, y, groups: np.ndarray, folds: np.ndarray,
                     seed: int) -> np.ndarray:
    if control_task is True:
        return control_codes(labels, groups, folds, seed=seed)
    made = control_task(np.asarray(y), groups, seed)
    return encode_labels(made, labels.n, task=labels.task, cv=1, classes=labels.classes).Y


def score_rows(task: str, truth: np.ndarray, decision: np.ndarray, folds: np.ndarray, clips: np.ndarray, *,
               seed: int, source: str, layer_names) -> list[dict]:
    """Tidy metric rows per layer and fold, predictions averaged over each clip's segments first.

    Parameters
    ----------
    truth : ndarray, shape (n, k)
    decision : ndarray, shape (layers, n, k)
    folds, clips : ndarray, shape (n,)
    """
    rows = []
    for k in range(int(folds.max()) + 1):
        idx = folds == k
        clip_truth = first_of_clip(truth[idx], clips[idx])
        clip_decision = aggregate(decision[:, idx], clips[idx])
        for layer, name in enumerate(layer_names):
            for metric, value in score(task, clip_truth, clip_decision[layer]).items():
                rows.append({"source": source, "layer": layer, "layer_name": name, "seed": seed, "fold": k,
                             "metric": metric, "value": float(value)})
    return rows


def param_rows(params: dict, *, seed: int, source: str, layer_names) -> list[dict]:
    """Tidy rows of chosen hyper-parameters, each given as (layers, cv)."""
    return [{"source": source, "layer": layer, "layer_name": name, "seed": seed, "fold": k, "param": param,
             "value": float(values[layer, k])}
            for param, values in params.items() for layer, name in enumerate(layer_names)
            for k in range(values.shape[1])]


@dataclass(frozen=True)
class Prepared:
    """Checked inputs of a probing run."""

    X: np.ndarray                    # (layers, n, dim)
    layer_names: list
    labels: Labels
    clips: np.ndarray                # (n,) clip code per sample (each sample its own clip by default)
    split_groups: np.ndarray | None  # (n,) what folds keep together: groups, else clips, else nothing
    grouped_by: str | None

    def describe(self, *, cv: int, n_seeds: int, inner: str | None) -> str:
        n_groups = None if self.split_groups is None else int(self.split_groups.max()) + 1
        return describe(cv=cv, n_groups=n_groups, grouped_by=self.grouped_by or "", n_seeds=n_seeds,
                        stratified=self.labels.task == "multiclass", inner=inner)


def prepare(features, y, *, groups, task: str, cv: int, clip_ids) -> Prepared:
    """Check features, labels, groups and clip ids against each other (see :func:`probe_layers`)."""
    X, layer_names = as_layers(features)
    n = X.shape[1]
    labels = encode_labels(y, n, task=task, cv=cv)
    group_codes = encode_groups(groups, n, cv=cv) if groups is not None else None
    clips = encode_clips(clip_ids, n, group_codes, labels) if clip_ids is not None else None
    split_groups, grouped_by = group_codes, "groups" if groups is not None else None
    if split_groups is None and clips is not None:
        split_groups, grouped_by = encode_groups(clip_ids, n, cv=cv, what="clip_ids"), "clips"
    return Prepared(X, layer_names, labels, clips if clips is not None else np.arange(n), split_groups, grouped_by)


def probe_layers(features, y, *, groups=None, task: str = "auto", probe="ridge", cv: int = 5, seeds=None,
                 clip_ids=None, control_task: bool | Callable = False, baselines: Mapping | None = None,
                 device=None) -> ProbeResult:
    """Fit a probe on every layer under cross-validation: "which layer knows what", with error bars.

    Standardisation and hyper-parameters are fitted inside each training fold
    only; with ``groups`` (or ``clip_ids``) the folds never split a group.

    Parameters
    ----------
    features : array_like, shape (layers, n, dim), or Features-like (``.pooled``, ``.layer_names``)
    y : array_like, shape (n,) or (n, k)
        Class labels (strings fine), a 0/1 matrix (multilabel) or floats (regression).
    groups : array_like, shape (n,), optional
        Group per sample (track, artist…): folds are StratifiedGroupKFold
        (classes) or GroupKFold.  Without it, ``clip_ids`` group the folds.
    task : {"auto", "multiclass", "multilabel", "regression"}
        "auto": floats → regression, 2-D 0/1 → multilabel, else multiclass.
    probe : {"ridge", "logistic", "mlp"} or RidgeProbe / LogisticProbe / MLPProbe
        "ridge" solves the whole alpha path with one decomposition per layer and
        fold, batched over layers (torch, float64).
    cv : int
        Outer folds; hyper-parameters are chosen by inner CV over the other ``cv - 1``.
    seeds : int or sequence of int, optional
        One repetition of the CV (new fold assignment, new initialisation) per
        seed; default (0,) for ridge / logistic and (0, 1, 2) for mlp.
    clip_ids : array_like, shape (n,), optional
        Clip of each segment: decisions are averaged over a clip's segments
        before scoring (metrics are per clip).
    control_task : bool or callable
        True adds Hewitt & Liang's control task, group labels shuffled among the
        groups of each fold (see :meth:`ProbeResult.selectivity`); a callable
        ``f(y, groups, seed) -> y_control`` makes its own control labels.
    baselines : mapping of str to array_like, optional
        Other features of the same samples — e.g. ``{"random-init twin": feats,
        "MFCC": mfcc}``, each (layers, n, dim) or (n, dim) — probed the same way
        on the same folds.
    device : None, "auto", "cpu", "cuda"
        Where torch probes run (ridge, mlp); None is CPU.

    Returns
    -------
    ProbeResult
        ``.scores`` tidy per fold, ``.summary()``, ``.baselines``,
        ``.best_layer()``, ``.selectivity()``, ``.params`` (chosen per fold).

    Examples
    --------
    >>> res = probe_layers(feats, df.genre, groups=df.track)       # doctest: +SKIP
    >>> m2v_lab.plot.layer_curve(res)                              # doctest: +SKIP
    """
    prep = prepare(features, y, groups=groups, task=task, cv=cv, clip_ids=clip_ids)
    X, layer_names, labels, clips, split_groups = prep.X, prep.layer_names, prep.labels, prep.clips, prep.split_groups
    n = X.shape[1]
    probe = resolve_probe(probe)
    if labels.task == "regression" and probe.name == "logistic":
        raise AnalysisError("probe='logistic' cannot do regression; use probe='ridge' or 'mlp'.")
    extra = {}
    for name, values in (baselines or {}).items():
        if name in (MODEL, CONTROL):
            raise AnalysisError(f"baseline name {name!r} is reserved; rename it.")
        arr, names = as_layers(values, name=f"baselines[{name!r}]")
        if arr.shape[1] != n:
            raise AnalysisError(f"baselines[{name!r}] has {arr.shape[1]} samples (axis 1) but features have {n}.")
        extra[name] = (arr, names if arr.shape[0] > 1 else [name])
    seeds = _seeds(seeds, probe.default_seeds)
    control_groups = split_groups if split_groups is not None else np.arange(n)

    scores, refs, params, fold_rows = [], [], [], []
    for seed in seeds:
        folds = fold_ids(labels, split_groups, cv=cv, seed=seed)
        targets = [labels.Y]
        if control_task:
            targets.append(_control_targets(control_task, labels, y, control_groups, folds, seed))
        runs = [(MODEL, X, layer_names, targets)] + [(name, arr, names, [labels.Y])
                                                     for name, (arr, names) in extra.items()]
        for source, arr, names, tgts in runs:
            outputs = probe.cross_validate(arr, tgts, folds, task=labels.task, seed=seed, groups=split_groups,
                                           device=device)
            for (decision, chosen), truth, src in zip(outputs, tgts, (source, CONTROL)):
                scores += score_rows(labels.task, truth, decision, folds, clips, seed=seed, source=src,
                                     layer_names=names)
                params += param_rows(chosen, seed=seed, source=src, layer_names=names)
        for k in range(cv):
            test, train = folds == k, folds != k
            per_ref = reference_scores(labels.task, first_of_clip(labels.Y[train], clips[train]),
                                       first_of_clip(labels.Y[test], clips[test]))
            refs += [{"name": name, "seed": seed, "fold": k, "metric": metric, "value": float(value)}
                     for name, values in per_ref.items() for metric, value in values.items()]
            fold_rows.append({"seed": seed, "fold": k, "n_train": int(train.sum()), "n_test": int(test.sum()),
                              "n_test_clips": len(np.unique(clips[test]))})

    text = prep.describe(cv=cv, n_seeds=len(seeds), inner=probe.inner_description())
    return ProbeResult(scores=pd.DataFrame(scores), references=pd.DataFrame(refs), params=pd.DataFrame(params),
                       folds=pd.DataFrame(fold_rows), task=labels.task, probe=probe.name, cv=text,
                       layer_names=tuple(layer_names), columns=tuple(labels.columns),
                       grouped=split_groups is not None, n_samples=n, n_clips=len(np.unique(clips)))
