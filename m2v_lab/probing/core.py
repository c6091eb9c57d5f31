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
from .intervals import ClipPredictions
from .logistic import LogisticProbe
from .metrics import aggregate, first_of_clip, reference_scores, score
from .mlp import MLPProbe
from ..options import whole_number
from .options import seed_list
from .protocol import Probe, Tick, no_tick
from .result import CONTROL, MAJORITY, MODEL, ProbeResult
from .ridge import RidgeProbe
from .splits import control_codes, control_split, describe, fold_ids

#: Probe names and what makes each: "mlp-marble" is MARBLE v1's whole protocol (:meth:`MLPProbe.marble`).
PROBES = {"ridge": RidgeProbe, "logistic": LogisticProbe, "mlp": MLPProbe, "mlp-marble": MLPProbe.marble}


def resolve_probe(probe) -> Probe:
    """A probe object from a name (``"ridge"``, ``"logistic"``, ``"mlp"``, ``"mlp-marble"``) or a :class:`Probe`."""
    if isinstance(probe, str):
        if probe not in PROBES:
            raise OptionError(f"probe={probe!r} is not one of {sorted(PROBES)} (or a Probe instance such as "
                              "RidgeProbe(alphas=...)).")
        return PROBES[probe]()
    if not isinstance(probe, Probe):
        raise OptionError(f"probe={probe!r} is neither a probe name {sorted(PROBES)} nor a Probe instance "
                          "(subclass m2v_lab.probing.Probe for your own).")
    return probe


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


@dataclass(frozen=True)
class Control:
    """The control task of one seed: its rows, their split, labels and scoring units."""

    rows: np.ndarray     # samples in the control task
    folds: np.ndarray    # (len(rows),) test fold of each
    Y: np.ndarray        # (len(rows), k) control targets
    members: np.ndarray  # (len(rows),) what a fold keeps whole and what is scored: clips, else samples


def _types_and_members(prep: Prepared) -> tuple[np.ndarray, np.ndarray, str, str]:
    """Control types and members per sample, and their names: groups and clips, else clips and segments."""
    if prep.split_groups is None:
        raise AnalysisError("control_task needs groups (or clip_ids): the control gives each group a random label and "
                            "asks whether a probe recalls it on held-out members of groups it was trained on. Pass "
                            "groups=... (track, instrument…), or control_task=False.")
    if prep.grouped_by == "groups":
        return prep.split_groups, prep.clips, "group", "clips"
    return prep.split_groups, np.arange(len(prep.split_groups)), "clip", "segments"


def control_task_for(control_task, prep: Prepared, *, cv: int, seed: int) -> Control:
    """Hewitt & Liang's control task on its own split (see :func:`~m2v_lab.probing.splits.control_split`).

    Types are the groups (else the clips, whose segments are then the members); members are the
    clips within a group (else the samples).

    Raises
    ------
    AnalysisError
        Nothing to group by, or too few groups with two or more members.
    """
    types, members, _, _ = _types_and_members(prep)
    if control_task is True:
        Y = control_codes(prep.labels, types, seed=seed)
    else:
        made = control_task(np.asarray(prep.y), types, seed)
        Y = encode_labels(made, prep.labels.n, task=prep.labels.task, cv=1, classes=prep.labels.classes).Y
    rows, folds = control_split(types, members, cv=cv, seed=seed)
    return Control(rows, folds, Y[rows], members[rows])


def describe_control(prep: Prepared, *, cv: int) -> str:
    """One line saying how the control task was made and split, for :attr:`ProbeResult.control`."""
    types, members, kind, parts = _types_and_members(prep)
    alone = int((pd.Series(members).groupby(types).nunique() < 2).sum())
    text = (f"Hewitt & Liang: a random label per {kind}; {cv} folds spread each {kind}'s {parts}, so a probe is "
            f"scored on held-out {parts} of {kind}s it trained on")
    if alone:
        text += f"; {alone} {kind}{'s' if alone > 1 else ''} with a single member left out"
    return text


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
    probe : {"ridge", "logistic", "mlp", "mlp-marble"} or Probe
        A name, or a configured probe (``RidgeProbe(alphas=...)``, ``LogisticProbe``,
        ``MLPProbe``, your own :class:`Probe`).  "ridge" solves the whole alpha path with one
        decomposition per layer and fold, batched over layers (torch, float64); "mlp-marble" is
        ``MLPProbe.marble()``, MARBLE v1's probe and training.
    cv : int
        Outer folds; hyper-parameters are chosen by inner CV over the other ``cv - 1``.
    seeds : int or sequence of int, optional
        One repetition of the CV (new fold assignment, new initialisation, new control
        labels) per seed; default (0,) for ridge / logistic and (0, 1, 2) for mlp.
    clip_ids : array_like, shape (n,), or str, optional
        Clip of each segment, or a column name as ``y``: decisions are averaged over a clip's
        segments before scoring (metrics are per clip).
    control_task : bool or callable
        True adds Hewitt & Liang's control task: every group gets a random label (classes
        dealt in the real labels' proportions) and the probe is scored on held-out clips of
        groups it trained on — each group's clips spread over the folds, a clip's segments kept
        together — so the control accuracy says how much a probe of this kind can memorise
        about group identity (see :meth:`ProbeResult.selectivity`).  Groups with a single clip
        cannot be split that way and are left out of the control task (``result.control``
        says how many).  Without groups, ``clip_ids`` are the groups and segments their
        members.  A callable ``f(y, groups, seed) -> y_control`` makes its own control labels,
        scored the same way.
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
        ``.scores`` tidy per fold, ``.summary()`` (means with intervals that stay on the
        metric's scale), ``.baselines``, ``.best_layer()``, ``.selectivity()``, ``.params``
        (chosen per fold).

    Raises
    ------
    OptionError
        An option value that cannot be used (unknown probe or task, a task the probe does not
        do, cv < 2, a device this machine lacks…), or a column name with bare-array features.
    AnalysisError
        Features, labels, groups or clip ids that cannot be probed (shapes, lengths, NaN, too
        few members per class or groups for ``cv``, a control task without groups or with
        fewer than ``cv`` clips in groups of two or more…), naming the input and the fix.
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
    per_seed = cv * (X.shape[0] * (2 if control_task else 1) + sum(arr.shape[0] for arr, _ in extra.values()))
    # what the bootstrap redraws: groups, else clips
    units = split_groups if split_groups is not None else clips
    kept: dict[str, list] = {}

    def keep(source: str, decision: np.ndarray, Y: np.ndarray, folds: np.ndarray, members: np.ndarray,
             rows: np.ndarray) -> None:
        """Each clip's predicted class, for the bootstrap intervals of class metrics."""
        if labels.task == "multiclass":
            kept.setdefault(source, []).append((aggregate(decision, members).argmax(-1),
                                                first_of_clip(Y.argmax(1), members), first_of_clip(folds, members),
                                                first_of_clip(units[rows], members)))

    # made before any fit, so that data the control task cannot use is refused at once
    controls = {seed: control_task_for(control_task, prep, cv=cv, seed=seed) for seed in seeds} if control_task else {}
    scores, refs, params, fold_rows = [], [], [], []
    everyone = np.arange(n)
    with _ticker(progress, len(seeds) * per_seed, f"probing {len(layer_names)} layers ({probe.name})") as tick:
        for seed in seeds:
            folds = fold_ids(labels, split_groups, cv=cv, seed=seed)
            runs = [(MODEL, X, layer_names, labels.Y, folds, split_groups, clips, everyone)]
            if control_task:
                c = controls[seed]
                # the control's inner splits (validation for early stopping) keep members whole, as its folds do
                runs.append((CONTROL, X[:, c.rows], layer_names, c.Y, c.folds, c.members, c.members, c.rows))
            runs += [(name, arr, names, labels.Y, folds, split_groups, clips, everyone)
                     for name, (arr, names) in extra.items()]
            for source, arr, names, Y, run_folds, run_groups, members, rows in runs:
                [(decision, chosen)] = probe.cross_validate(arr, [Y], run_folds, task=labels.task, seed=seed,
                                                            groups=run_groups, device=dev, tick=tick)
                scores += score_rows(labels.task, Y, decision, run_folds, members, seed=seed, source=source,
                                     layer_names=names)
                params += param_rows(chosen, seed=seed, source=source, layer_names=names)
                keep(source, decision, Y, run_folds, members, rows)
            majority = np.empty(n, dtype=np.int64)  # the class the "majority" reference predicts, per sample
            for k in range(cv):
                test, train = folds == k, folds != k
                train_truth = first_of_clip(labels.Y[train], clips[train])
                per_ref = reference_scores(labels.task, train_truth, first_of_clip(labels.Y[test], clips[test]))
                refs += [{"name": name, "seed": seed, "fold": k, "metric": metric, "value": float(value)}
                         for name, values in per_ref.items() for metric, value in values.items()]
                fold_rows.append({"seed": seed, "fold": k, "n_train": int(train.sum()), "n_test": int(test.sum()),
                                  "n_test_clips": len(np.unique(clips[test]))})
                majority[test] = train_truth.sum(0).argmax()
            keep(MAJORITY, np.eye(labels.Y.shape[1])[majority][None], labels.Y, folds, clips, everyone)

    text = prep.describe(cv=cv, n_seeds=len(seeds), inner=probe.inner_description())
    predictions = {source: ClipPredictions(group=runs[0][3], truth=np.stack([run[1] for run in runs]),
                                           fold=np.stack([run[2] for run in runs]),
                                           predicted=np.stack([run[0] for run in runs], axis=1))
                   for source, runs in kept.items()}
    return ProbeResult(scores=pd.DataFrame(scores), references=pd.DataFrame(refs), params=pd.DataFrame(params),
                       folds=pd.DataFrame(fold_rows), task=labels.task, probe=probe.name, cv=text,
                       layer_names=tuple(layer_names), columns=tuple(labels.columns),
                       predictions=predictions,
                       control=describe_control(prep, cv=cv) if control_task else None,
                       grouped=split_groups is not None, n_samples=n, n_clips=len(np.unique(clips)),
                       model=getattr(features, "model_label", None))
