"""Learnable softmax-weighted sum over layers (s3prl Featurizer, MARBLE "all layers") with a probe head.

The seed model card ends with ``nn.Conv1d(13, 1, 1)``: an unconstrained
weighted average with a bias.  :class:`WeightedLayerSum` is the softmax
variant MARBLE and s3prl use: weights start uniform (zero logits), stay
positive and sum to one, so they read as each layer's share.  Every layer is
z-scored on the training fold first, so a layer's weight is not just its scale.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import AnalysisError, OptionError
from ..options import flag, real_number
from .core import param_rows, prepare, probe_layers, score_rows
from .intervals import (ClipPredictions, bootstrap_label, class_replicates, group_weights, percentile_interval,
                        scaled_interval)
from .metrics import PRIMARY, aggregate, first_of_clip, fold_interval
from .mlp import BatchedHead, MLPProbe
from .options import seed_list
from .protocol import no_tick
from .result import MODEL
from .splits import fold_ids

SUM = "weighted sum"
#: Random stream of the weighted-sum models in :meth:`MLPProbe.fit_folds` (the heads use their target set's index).
_SUM_STREAM = 0x5A


class WeightedLayerSum(nn.Module):
    """Softmax-weighted sum of layers: (layers, batch, dim) → (batch, dim).

    Parameters
    ----------
    n_layers : int
    layer_norm : bool
        Layer-normalise each layer's vectors (no affine) before summing, as s3prl's option.
    """

    def __init__(self, n_layers: int, *, layer_norm: bool = False):
        super().__init__()
        self.logits = nn.Parameter(torch.zeros(n_layers))
        self.layer_norm = layer_norm

    @property
    def weights(self) -> torch.Tensor:
        """Softmax of the logits, shape (layers,)."""
        return self.logits.softmax(0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.layer_norm:
            x = F.layer_norm(x, x.shape[-1:])
        return torch.einsum("l,lbd->bd", self.weights, x)


class _SumThenHead(nn.Module):
    def __init__(self, n_layers: int, dim: int, classes: int, *, hidden: int, dropout: float, layer_norm: bool,
                 generator: torch.Generator):
        super().__init__()
        self.mix = WeightedLayerSum(n_layers, layer_norm=layer_norm)
        self.head = BatchedHead(1, dim, classes, hidden=hidden, dropout=dropout, generator=generator)
        # A random output layer gives the layer weights random first gradients, and they follow whatever noise the
        # head fits first (measured: the informative layer's weight fell to 0 in 2 of 5 folds).  At zero, it first
        # learns the classes' directions in the uniform mix, where informative layers show, so the weights move to them.
        with torch.no_grad():
            self.head.weights[-1].zero_()
            self.head.biases[-1].zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.mix(x)[None])


#: Below this KL divergence (nats) from uniform in the median fit, the weights count as not learned: for 13
#: layers, one layer at 1.5 × its uniform share (the rest even) is 0.009.
NEAR_UNIFORM_KL = 0.01
_CHOSEN, _OPTIMISTIC = "best layer, chosen in training fold", "best layer on test folds (optimistic)"


class LayerSumProbe:
    """Weighted layer sum + head under grouped CV, compared with the best single layer.

    The defaults are set so that the weights learn on small data too: the layer logits get a
    learning rate of their own (``weights_lr``, 30 × the head's), training runs up to 200
    epochs with a patience of 20 on the validation loss, and the head's output layer starts at
    zero (a random one sends the weights after the noise it fits first).  Measured on 13
    layers, 10 classes, one informative layer (400 clips of 200 tracks): the informative
    layer's weight 0.999 and accuracy 0.263, against 0.273 for the best single layer; with
    s3prl's and MARBLE's settings (the weights at the head's lr 1e-3, 100 epochs, patience 10, a
    random head) the weight was 0.078 (uniform 0.077) and the accuracy 0.098.

    Parameters
    ----------
    head : {"linear", "mlp"}
        Linear head, or MARBLE's ``hidden``-wide ReLU MLP.
    hidden, dropout, lr, batch_size, max_epochs, patience, val_fraction, monitor, lr_patience, lr_factor :
        As :class:`MLPProbe`; they apply to the single-layer heads of ``compare`` too.
    weights_lr : float or None
        Learning rate of the layer logits; None: ``lr``, as s3prl and MARBLE.
    layer_norm : bool
        Layer norm per layer before the sum (s3prl's option); each layer's dims are z-scored on
        the training fold in any case.
    cv : int
    seeds : int or sequence of int
        One CV repetition per seed.
    compare : bool
        Also train one head per single layer (same head, folds and validation
        splits) and report the best layer, chosen inside each training fold by
        the monitored validation score, and the best on the test folds (optimistic): in
        each fold the layer with the best test score, so never below the in-fold pick
        (fold by fold, on the same folds), nor below any one layer kept across folds.
    device : "cpu", None, "auto", "cuda", "mps" or torch.device
        Where training runs (float32).  The CPU unless you ask: None and ``"auto"`` take
        CUDA, then MPS, then the CPU.

    Attributes
    ----------
    weights_ : ndarray, shape (fits, layers)
        Learned softmax weights of each fold × seed.
    weights_mean_, weights_sd_ : ndarray, shape (layers,)
        Their mean, and their sd across the fold × seed fits: the fold spread, how much refits
        on other training folds move them — not a confidence interval, and small when the
        weights did not move at all.
    kl_from_uniform_ : float
        Median over the fits of their weights' KL divergence (nats) from uniform weights.
    near_uniform_ : bool
        ``kl_from_uniform_`` < :data:`NEAR_UNIFORM_KL` (a warning says so): in most fits the
        weights stayed about where they started, and they say nothing about the layers.
    fits_ : DataFrame
        ``seed`` and ``fold`` of each row of ``weights_``.
    layer_names_ : list of str
    scores_ : DataFrame
        Tidy scores of the weighted sum (as :attr:`ProbeResult.scores`).
    layer_result_ : ProbeResult or None
        The single-layer heads (when ``compare``).
    comparison_ : DataFrame
        ``probe, layer_name, metric, mean, sd, ci_low, ci_high, n_folds, interval`` of the
        weighted sum and the best single layers, intervals as :meth:`ProbeResult.summary`'s
        (a bootstrap over groups for class metrics, on the same draws for all three).
    task_, cv_ : str

    Raises
    ------
    OptionError
        ``head`` is not "linear" or "mlp", or a head setting is out of range (as :class:`MLPProbe`).
    """

    def __init__(self, *, head: str = "linear", hidden: int = 512, layer_norm: bool = False, cv: int = 5,
                 seeds=(0,), lr: float = 1e-3, weights_lr: float | None = 3e-2, dropout: float = 0.2,
                 batch_size: int = 64, max_epochs: int = 200, patience: int = 20, val_fraction: float = 0.15,
                 monitor: str = "loss", lr_patience: int | None = None, lr_factor: float = 0.5,
                 compare: bool = True, device="cpu"):
        if head not in ("linear", "mlp"):
            raise OptionError(f"head={head!r} is not 'linear' or 'mlp'.")
        self.head, self.hidden, self.layer_norm, self.cv = head, hidden, flag("layer_norm", layer_norm), cv
        self.seeds = seed_list(seeds, (0,))
        self.lr, self.weights_lr, self.dropout, self.batch_size = lr, weights_lr, dropout, batch_size
        self.max_epochs, self.patience, self.val_fraction = max_epochs, patience, val_fraction
        self.monitor, self.lr_patience, self.lr_factor = monitor, lr_patience, lr_factor
        self.compare, self.device = compare, device
        if weights_lr is not None:
            real_number("weights_lr", weights_lr, low=0)
        self._head_probe()  # checks the head's settings now rather than at fit time

    def _head_probe(self) -> MLPProbe:
        return MLPProbe(hidden=self.hidden if self.head == "mlp" else 0, dropout=self.dropout, lr=self.lr,
                        batch_size=self.batch_size, max_epochs=self.max_epochs, patience=self.patience,
                        val_fraction=self.val_fraction, monitor=self.monitor, lr_patience=self.lr_patience,
                        lr_factor=self.lr_factor)

    def fit(self, features, y, *, groups=None, task: str = "auto", clip_ids=None) -> "LayerSumProbe":
        """Train and score under CV; see :func:`probe_layers` for the inputs.

        Parameters
        ----------
        features : array_like, shape (layers, n, dim), or Features
        y : array_like, shape (n,) or (n, k), or str
            Labels; a string names a column of ``features.clip_table``.
        groups, clip_ids : array_like, shape (n,), or str, optional
            As ``y``.
        task : {"auto", "multiclass", "multilabel", "regression"}

        Warns
        -----
        UserWarning
            The learned weights stayed near uniform (:attr:`near_uniform_`).
        """
        prep = prepare(features, y, groups=groups, task=task, cv=self.cv, clip_ids=clip_ids)
        if prep.X.shape[0] < 2:
            raise AnalysisError("a weighted layer sum needs ≥ 2 layers; features have 1.")
        labels, head = prep.labels, self._head_probe()
        dev = head.device_for(self.device)
        Xt = torch.as_tensor(prep.X, dtype=torch.float32).to(dev)
        n_layers, _, dim = prep.X.shape

        def build(generator: torch.Generator) -> tuple[nn.Module, list[dict]]:
            model = _SumThenHead(n_layers, dim, labels.Y.shape[1], hidden=head.hidden, dropout=self.dropout,
                                 layer_norm=self.layer_norm, generator=generator).to(dev)
            return model, [{"params": model.mix.parameters(), "lr": self.weights_lr or self.lr},
                           {"params": model.head.parameters(), "lr": self.lr}]

        scores, weights, fits, params, predicted, fold_of = [], [], [], [], [], []
        for seed in self.seeds:
            folds = fold_ids(labels, prep.split_groups, cv=self.cv, seed=seed)
            decision, chosen, models = head.fit_folds(Xt, labels.Y, folds, task=labels.task, groups=prep.split_groups,
                                                      seed=seed, stream=_SUM_STREAM, build=build, n_outputs=1,
                                                      tick=no_tick)
            weights += [model.mix.weights.detach().cpu().numpy() for model in models]
            fits += [{"seed": seed, "fold": k} for k in range(self.cv)]
            scores += score_rows(labels.task, labels.Y, decision, folds, prep.clips, seed=seed, source=SUM,
                                 layer_names=[SUM])
            params += param_rows({"best_epoch": chosen["best_epoch"]}, seed=seed, source=SUM, layer_names=[SUM])
            predicted.append(aggregate(decision, prep.clips).argmax(-1))
            fold_of.append(first_of_clip(folds, prep.clips))
        units = prep.split_groups if prep.split_groups is not None else prep.clips
        self._predictions = ClipPredictions(first_of_clip(units, prep.clips),
                                            np.stack([first_of_clip(labels.Y.argmax(1), prep.clips)] * len(fold_of)),
                                            np.stack(fold_of), np.stack(predicted, axis=1))
        self._grouped, self._n_classes = prep.split_groups is not None, labels.Y.shape[1]
        self.layer_names_ = list(prep.layer_names)
        self.task_ = labels.task
        self.weights_ = np.array(weights)
        self.weights_mean_ = self.weights_.mean(0)
        self.weights_sd_ = self.weights_.std(0, ddof=1) if len(weights) > 1 else np.zeros(n_layers)
        # the median fit, not the mean weights: one fold whose weights wandered off uniform while it fitted noise
        # (and happened to validate well) would otherwise hide that the others never left it
        self.kl_from_uniform_ = float(np.median(np.sum(self.weights_ * np.log(self.weights_ * n_layers), axis=1)))
        self.near_uniform_ = self.kl_from_uniform_ < NEAR_UNIFORM_KL
        if self.near_uniform_:
            warnings.warn(f"the learned layer weights stayed near uniform (median KL {self.kl_from_uniform_:.4f} nats "
                          f"from uniform over the fits, < {NEAR_UNIFORM_KL}): they do not single out layers. No layer "
                          "may help more than the others, or the weights did not train (raise weights_lr or "
                          "max_epochs).", stacklevel=2)
        self.fits_ = pd.DataFrame(fits)
        self.scores_ = pd.DataFrame(scores)
        self.params_ = pd.DataFrame(params)
        self.cv_ = prep.describe(cv=self.cv, n_seeds=len(self.seeds), inner=head.inner_description())
        self.layer_result_ = (probe_layers(features, y, groups=groups, task=task, probe=head, cv=self.cv,
                                           seeds=self.seeds, clip_ids=clip_ids, device=self.device)
                              if self.compare else None)
        self.comparison_ = self._compare()
        return self

    def _compare(self) -> pd.DataFrame:
        """Fold scores, and clip predictions for the bootstrap, of the weighted sum and the best single layers."""
        multiclass = self.task_ == "multiclass"
        metrics = list(dict.fromkeys(self.scores_["metric"]))
        entries = [(SUM, SUM, self.scores_, self._predictions)]  # (probe, layer name, fold scores, predictions)
        if self.layer_result_ is not None:
            res = self.layer_result_
            layers = res.scores[res.scores["source"] == MODEL]
            params = res.params[res.params["source"] == MODEL]
            # the layer a careful study would pick: the best monitored validation score of the training fold (the
            # loss where the metric was undefined, as early stopping did)
            wide = params.pivot(index=["seed", "fold", "layer"], columns="param", values="value").reset_index()
            by, ascending = ["val_loss"], [True]
            if self.monitor == "metric":
                by, ascending = [f"val_{PRIMARY[self.task_]}", "val_loss"], [False, True]
            picked = (wide.sort_values(["seed", "fold"] + by, ascending=[True, True] + ascending, na_position="last")
                      .groupby(["seed", "fold"]).head(1)[["seed", "fold", "layer"]])
            chosen = layers.merge(picked, on=["seed", "fold", "layer"])
            names = chosen["layer_name"].unique()
            entries.append((_CHOSEN, names[0] if len(names) == 1 else "per fold", chosen,
                            _per_fold(res.predictions[MODEL], picked, self.seeds) if multiclass else None))
            for metric in metrics:
                # the upper bound of any per-fold pick: in each fold the layer with the best *test* score. One layer
                # fixed across folds (the best mean, ``res.best_layer``) is no such bound: a pick that moves between
                # folds can beat it (measured on two informative layers of synthetic tracks: 0.600 chosen in fold vs
                # 0.588 for the best fixed layer), which read as "peeking at the test folds does worse than not".
                scored = layers[layers["metric"] == metric]
                oracle = (scored.sort_values(["seed", "fold", "value", "layer"], ascending=[True, True, False, True])
                          .groupby(["seed", "fold"]).head(1)[["seed", "fold", "layer"]])
                rows = scored.merge(oracle, on=["seed", "fold", "layer"])
                names = rows["layer_name"].unique()
                entries.append((_OPTIMISTIC, names[0] if len(names) == 1 else "per fold", rows,
                                _per_fold(res.predictions[MODEL], oracle, self.seeds) if multiclass else None))
        ratio = 1 / (self.cv - 1) if self.layer_result_ is None else self.layer_result_._ratio()
        weights = group_weights(int(self._predictions.group.max()) + 1) if multiclass else None
        out = []
        for probe, name, rows, pred in entries:
            replicates = class_replicates(pred, weights, self._n_classes) if multiclass else None
            for metric in metrics:
                values = rows.loc[rows["metric"] == metric, "value"].to_numpy()
                if not len(values):  # "best on test folds" is one entry per metric
                    continue
                mean, sd, _, _ = fold_interval(values, ratio)
                if multiclass:
                    low, high = percentile_interval(replicates[metric][:, 0], 0.95)
                    label = bootstrap_label(len(weights[0]), self._grouped)
                else:
                    _, _, low, high, label = scaled_interval(values, ratio, 0.95, metric)
                out.append({"probe": probe, "layer_name": name, "metric": metric, "mean": mean, "sd": sd,
                            "ci_low": float(low), "ci_high": float(high), "n_folds": len(values), "interval": label})
        return pd.DataFrame(out)

    def summary(self) -> pd.DataFrame:
        """Learned weight per layer: ``layer, layer_name, weight_mean, weight_sd`` (sd: the fold spread)."""
        return pd.DataFrame({"layer": np.arange(len(self.layer_names_)), "layer_name": self.layer_names_,
                             "weight_mean": self.weights_mean_, "weight_sd": self.weights_sd_})


def _per_fold(pred: ClipPredictions, picked: pd.DataFrame, seeds: tuple[int, ...]) -> ClipPredictions:
    """One "layer" whose prediction in each seed's fold is that of the layer ``picked`` there (seed, fold, layer)."""
    predicted = np.empty((1,) + pred.fold.shape, dtype=pred.predicted.dtype)
    for seed, fold, layer in picked.itertuples(index=False):
        s = seeds.index(seed)
        here = pred.fold[s] == fold
        predicted[0, s, here] = pred.predicted[layer, s, here]
    return ClipPredictions(pred.group, pred.truth, pred.fold, predicted)
