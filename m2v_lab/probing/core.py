"""``probe_layers``: one probe per layer under (grouped) cross-validation, with controls and baselines.

One code path for every probe: labels, folds, seeds, the control task, feature baselines,
per-clip scoring and progress are done here; a probe (:class:`~m2v_lab.probing.Probe`)
only fits and predicts the folds it is given.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..errors import AnalysisError, OptionError
from ..stacks import layer_stack
from .inputs import Labels, encode_clips, encode_groups, encode_labels, from_table
from .logistic import LogisticProbe
from .metrics import aggregate, first_of_clip, reference_scores, score
from .mlp import MLPProbe
from ..options import whole_number
from .options import seed_list
from .protocol import Probe, Tick, no_tick
from .result import CONTROL, MODEL, ProbeResult
from .ridge import RidgeProbe
from .splits import control_codes, describe, fold_ids

PROBES = {"ridge": RidgeProbe, "logistic": LogisticProbe, "mlp": MLPProbe}


def resolve_probe(probe) -> Probe:
    """A probe object from a name (``"ridge"``, ``"logistic"``, ``"mlp"``) or a :class:`Probe` instance."""
    if isinstance(probe, str):
        if probe not in PROBES:
            raise OptionError(f"probe={probe!r} is not one of {sorted(PROBES)} (or a Probe instance such as "
                              "RidgeProbe(alphas=...)).")
        return PROBES[probe]()
    if not isinstance(probe, Probe):
        raise OptionError(f"probe={probe!r} is neither a probe name {sorted(PROBES)} nor a Probe instance "
                          "(subclass m2v_lab.probing.Probe for your own).")
    return probe


def _control_targets(control_task, labels: Labels, y, groups: np.ndarray, folds: np.ndarray,
                     seed: int) -> np.ndarray:
    if control_task is True:
        return control_codes(labels, groups, folds, seed=seed)
    made = control_task(np.asarray(y), groups, seed)
    return encode_labels(made, labels.n, task=labels.task, cv=1, classes=labels.classes).Y


def _flag_or_function(value, option: str, signature: str):
    """``value`` as a bool, or the function it is."""
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if not callable(value):
        raise OptionError(f"{option}={value!r}: give True, False or a function {signature}.")
    return value


@contextmanager
def _ticker(progress, total: int, desc: str) -> Iterator[Tick]:
    """A :data:`Tick` that drives ``progress``: False (nothing), True (a tqdm bar) or ``callback(done, total)``."""
    if progress is False:
        yield no_tick
    elif progress is True:
        from tqdm.auto import tqdm

        with tqdm(total=total, desc=desc, unit=" layer-folds") as bar:
            yield bar.update
    else:
        done = 0
        progress(done, total)  # lets a view size its bar before the first fit

        def tick(n: int) -> None:
            nonlocal done
            done += n
            progress(done, total)

        yield tick


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
    layer_names: tuple
    y: np.ndarray                    # the labels as given (or read from the clip table), for control callables
    labels: Labels
    clips: np.ndarray                # (n,) clip code per sample (each sample its own clip by default)
    split_groups: np.ndarray | None  # (n,) what folds keep together: groups, else clips, else nothing
    grouped_by: str | None

    def describe(self, *, cv: int, n_seeds: int, inner: str | None) -> str:
        n_groups = None if self.split_groups is None else int(self.split_groups.max()) + 1
        return describe(cv=cv, n_groups=n_groups, grouped_by=self.grouped_by or "", n_seeds=n_seeds,
                        stratified=self.labels.task == "multiclass", inner=inner)


def prepare(features, y, *, groups, task: str, cv: int, clip_ids) -> Prepared:
    """Check features, labels, groups and clip ids against each other (see :func:`probe_layers`).

    Strings among ``y``, ``groups`` and ``clip_ids`` name columns of ``features.clip_table``.
    """
    cv = whole_number("cv", cv, minimum=2)
    X, layer_names = layer_stack(features, allow_single_layer=True)
    y, groups, clip_ids = (from_table(features, value, what)
                           for value, what in ((y, "y"), (groups, "groups"), (clip_ids, "clip_ids")))
    n = X.shape[1]
    labels = encode_labels(y, n, task=task, cv=cv)
    group_codes = encode_groups(groups, n, cv=cv) if groups is not None else None
    clips = encode_clips(clip_ids, n, group_codes, labels) if clip_ids is not None else None
    split_groups, grouped_by = group_codes, "groups" if groups is not None else None
    if split_groups is None and clips is not None:
        split_groups, grouped_by = encode_groups(clip_ids, n, cv=cv, what="clip_ids"), "clips"
    return Prepared(X, layer_names, np.asarray(y), labels, clips if clips is not None else np.arange(n),
                    split_groups, grouped_by)


def _baselines(baselines, n: int) -> dict[str, tuple[np.ndarray, tuple[str, ...]]]:
    """Checked feature baselines: name → (array (layers, n, dim), layer names; a one-layer baseline is its name)."""
    if baselines is None:
        return {}
    if not isinstance(baselines, Mapping):
        raise OptionError(f"baselines must map a name to features, e.g. {{'MFCC': mfcc}}; got "
                          f"{type(baselines).__name__}.")
    out = {}
    for name, values in baselines.items():
        if name in (MODEL, CONTROL):
            raise OptionError(f"baseline name {name!r} is reserved; rename it.")
        arr, names = layer_stack(values, name=f"baselines[{name!r}]", allow_single_layer=True)
        if arr.shape[1] != n:
            raise AnalysisError(f"baselines[{name!r}] has {arr.shape[1]} samples (axis 1) but features have {n}.")
        out[name] = (arr, names if arr.shape[0] > 1 else (name,))
    return out


def probe_layers(features, y, *, groups=None, task: str = "auto", probe="ridge", cv: int = 5, seeds=None,
                 clip_ids=None, control_task: bool | Callable = False, baselines: Mapping | None = None,
                 device="cpu", progress: bool | Callable[[int, int], None] = False) -> ProbeResult:
    """Fit a probe on every layer under cross-validation: "which layer knows what", with error bars.

    Standardisation and hyper-parameters are fitted inside each training fold
    only; with ``groups`` (or ``clip_ids``) the folds never split a group.

    Parameters
    ----------
    features : array_like, shape (layers, n, dim), or Features
        A 2-D array (n, dim) is one layer.  A :class:`~m2v_lab.Features` gives its layer names
        and its ``clip_table``, whose columns ``y``, ``groups`` and ``clip_ids`` may name.
    y : array_like, shape (n,) or (n, k), or str
        Class labels (strings fine), a 0/1 matrix (multilabel) or floats (regression); a
        string names a column of ``features.clip_table`` (``probe_layers(feats, "genre")``).
    groups : array_like, shape (n,), or str, optional
        Group per sample (track, artist…), or a column name as ``y``: folds are
        StratifiedGroupKFold (classes) or GroupKFold.  Without it, ``clip_ids`` group the folds.
    task : {"auto", "multiclass", "multilabel", "regression"}
        "auto": floats → regression, 2-D 0/1 → multilabel, else multiclass.
    probe : {"ridge", "logistic", "mlp"} or Probe
        A name, or a configured probe (``RidgeProbe(alphas=...)``, ``LogisticProbe``,
        ``MLPProbe``, your own :class:`Probe`).  "ridge" solves the whole alpha path with one
        decomposition per layer and fold, batched over layers (torch, float64).
    cv : int
        Outer folds; hyper-parameters are chosen by inner CV over the other ``cv - 1``.
    seeds : int or sequence of int, optional
        One repetition of the CV (new fold assignment, new initialisation) per
        seed; default (0,) for ridge / logistic and (0, 1, 2) for mlp.
    clip_ids : array_like, shape (n,), or str, optional
        Clip of each segment, or a column name as ``y``: decisions are averaged over a clip's
        segments before scoring (metrics are per clip).
    control_task : bool or callable
        True adds Hewitt & Liang's control task, group labels shuffled among the
        groups of each fold (see :meth:`ProbeResult.selectivity`); a callable
        ``f(y, groups, seed) -> y_control`` makes its own control labels.
    baselines : mapping of str to array_like or Features, optional
        Other features of the same samples — e.g. ``{"random-init twin": feats,
        "MFCC": mfcc}``, each (layers, n, dim) or (n, dim) — probed the same way
        on the same folds.
    device : "cpu", None, "auto", "cuda", "mps" or torch.device
        Where torch probes run (ridge, mlp; logistic is scikit-learn on the CPU).  The CPU
        unless you ask: None and ``"auto"`` take CUDA, then MPS, then the CPU.  Ridge
        computes in float64, which MPS lacks, and refuses it.
    progress : bool or callable
        True shows a tqdm bar over layers × folds (× seeds, sources and the control task);
        a callable ``progress(done, total)`` is called with counts of those, first with
        ``done=0``.

    Returns
    -------
    ProbeResult
        ``.scores`` tidy per fold, ``.summary()``, ``.baselines``,
        ``.best_layer()``, ``.selectivity()``, ``.params`` (chosen per fold).

    Raises
    ------
    OptionError
        An option value that cannot be used (unknown probe or task, a task the probe does not
        do, cv < 2, a device this machine lacks…), or a column name with bare-array features.
    AnalysisError
        Features, labels, groups or clip ids that cannot be probed (shapes, lengths, NaN, too
        few members per class or groups for ``cv``…), naming the input and the fix.
    FeaturesError
        A column name that ``features.clip_table`` does not have.

    Examples
    --------
    >>> res = probe_layers(feats, "genre", groups="track", control_task=True)   # doctest: +SKIP
    >>> m2v_lab.plot.layer_curve(res)                                          # doctest: +SKIP
    """
    probe = resolve_probe(probe)
    seeds = seed_list(seeds, probe.default_seeds)
    control_task = _flag_or_function(control_task, "control_task", "f(y, groups, seed)")
    progress = _flag_or_function(progress, "progress", "f(done, total)")
    dev = probe.device_for(device)
    prep = prepare(features, y, groups=groups, task=task, cv=cv, clip_ids=clip_ids)
    X, layer_names, labels, clips, split_groups = prep.X, prep.layer_names, prep.labels, prep.clips, prep.split_groups
    n = X.shape[1]
    probe.check(task=labels.task, cv=cv)
    extra = _baselines(baselines, n)
    control_groups = split_groups if split_groups is not None else np.arange(n)
    per_seed = cv * (X.shape[0] * (2 if control_task else 1) + sum(arr.shape[0] for arr, _ in extra.values()))

    scores, refs, params, fold_rows = [], [], [], []
    with _ticker(progress, len(seeds) * per_seed, f"probing {len(layer_names)} layers ({probe.name})") as tick:
        for seed in seeds:
            folds = fold_ids(labels, split_groups, cv=cv, seed=seed)
            targets = [labels.Y]
            if control_task:
                targets.append(_control_targets(control_task, labels, prep.y, control_groups, folds, seed))
            runs = [(MODEL, X, layer_names, targets)] + [(name, arr, names, [labels.Y])
                                                         for name, (arr, names) in extra.items()]
            for source, arr, names, tgts in runs:
                outputs = probe.cross_validate(arr, tgts, folds, task=labels.task, seed=seed, groups=split_groups,
                                               device=dev, tick=tick)
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
