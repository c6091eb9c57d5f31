"""Learnable softmax-weighted sum over layers (s3prl Featurizer, MARBLE "all layers") with a probe head.

The seed model card ends with ``nn.Conv1d(13, 1, 1)``: an unconstrained
weighted average with a bias.  :class:`WeightedLayerSum` is the softmax
variant MARBLE and s3prl use: weights start uniform (zero logits), stay
positive and sum to one, so they read as each layer's share.  Every layer is
z-scored on the training fold first, so a layer's weight is not just its scale.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import AnalysisError, OptionError
from .core import param_rows, prepare, probe_layers, score_rows
from .metrics import fold_interval
from .mlp import BatchedHead, MLPProbe
from ..options import real_number
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

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.mix(x)[None])


class LayerSumProbe:
    """Weighted layer sum + head under grouped CV, compared with the best single layer.

    Parameters
    ----------
    head : {"linear", "mlp"}
        Linear head, or MARBLE's ``hidden``-wide ReLU MLP.
    hidden, dropout, lr, batch_size, max_epochs, patience, val_fraction :
        As :class:`MLPProbe` (MARBLE: 512, 0.2, 1e-3, 64, 100, 10).
    weights_lr : float, optional
        Learning rate of the layer logits (default: ``lr``).
    layer_norm : bool
        Layer norm per layer before the sum (s3prl option).
    cv : int
    seeds : int or sequence of int
        One CV repetition per seed.
    compare : bool
        Also train one head per single layer (same head, folds and validation
        splits) and report the best layer, chosen inside each training fold by
        validation loss, and the best on the test folds (optimistic).
    device : "cpu", None, "auto", "cuda", "mps" or torch.device
        Where training runs (float32).  The CPU unless you ask: None and ``"auto"`` take
        CUDA, then MPS, then the CPU.

    Attributes
    ----------
    weights_ : ndarray, shape (fits, layers)
        Learned softmax weights of each fold × seed.
    weights_mean_, weights_sd_ : ndarray, shape (layers,)
        Their mean and standard deviation across fits.
    fits_ : DataFrame
        ``seed`` and ``fold`` of each row of ``weights_``.
    layer_names_ : list of str
    scores_ : DataFrame
        Tidy scores of the weighted sum (as :attr:`ProbeResult.scores`).
    layer_result_ : ProbeResult or None
        The single-layer heads (when ``compare``).
    comparison_ : DataFrame
        Mean, sd and interval per metric of the weighted sum and the best single layers.
    task_, cv_ : str

    Raises
    ------
    OptionError
        ``head`` is not "linear" or "mlp", or a head setting is out of range (as :class:`MLPProbe`).
    """

    def __init__(self, *, head: str = "linear", hidden: int = 512, layer_norm: bool = False, cv: int = 5,
                 seeds=(0,), lr: float = 1e-3, weights_lr: float | None = None, dropout: float = 0.2,
                 batch_size: int = 64, max_epochs: int = 100, patience: int = 10, val_fraction: float = 0.15,
                 compare: bool = True, device="cpu"):
        if head not in ("linear", "mlp"):
            raise OptionError(f"head={head!r} is not 'linear' or 'mlp'.")
        self.head, self.hidden, self.layer_norm, self.cv = head, hidden, layer_norm, cv
        self.seeds = seed_list(seeds, (0,))
        self.lr, self.weights_lr, self.dropout, self.batch_size = lr, weights_lr, dropout, batch_size
        self.max_epochs, self.patience, self.val_fraction = max_epochs, patience, val_fraction
        self.compare, self.device = compare, device
        if weights_lr is not None:
            real_number("weights_lr", weights_lr, low=0)
        self._head_probe()  # checks the head's settings now rather than at fit time

    def _head_probe(self) -> MLPProbe:
        return MLPProbe(hidden=self.hidden if self.head == "mlp" else 0, dropout=self.dropout, lr=self.lr,
                        batch_size=self.batch_size, max_epochs=self.max_epochs, patience=self.patience,
                        val_fraction=self.val_fraction)

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

        scores, weights, fits, params = [], [], [], []
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
        self.layer_names_ = list(prep.layer_names)
        self.task_ = labels.task
        self.weights_ = np.array(weights)
        self.weights_mean_ = self.weights_.mean(0)
        self.weights_sd_ = self.weights_.std(0, ddof=1) if len(weights) > 1 else np.zeros(n_layers)
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
        keys = ["seed", "fold", "metric"]
        parts = [self.scores_.assign(probe=SUM, layer_name=SUM)]
        if self.layer_result_ is not None:
            res = self.layer_result_
            layers = res.scores[res.scores["source"] == MODEL]
            val = res.params[(res.params["source"] == MODEL) & (res.params["param"] == "val_loss")]
            picked = val.loc[val.groupby(["seed", "fold"])["value"].idxmin(), ["seed", "fold", "layer"]]
            chosen = layers.merge(picked, on=["seed", "fold", "layer"])
            parts.append(chosen.assign(probe="best layer, chosen in training fold"))
            for metric in res.metrics:
                best = res.best_layer(metric)
                rows = layers[(layers["layer"] == best) & (layers["metric"] == metric)]
                parts.append(rows.assign(probe="best layer on test folds (optimistic)"))
        ratio = float((self.layer_result_.folds["n_test"] / self.layer_result_.folds["n_train"]).mean()
                      if self.layer_result_ is not None else 1 / (self.cv - 1))
        out = []
        for (probe, metric), rows in pd.concat(parts)[["probe", "layer_name"] + keys + ["value"]].groupby(
                ["probe", "metric"], sort=False):
            mean, sd, low, high = fold_interval(rows["value"].to_numpy(), ratio)
            names = rows["layer_name"].unique()
            out.append({"probe": probe, "layer_name": names[0] if len(names) == 1 else "per fold",
                        "metric": metric, "mean": mean, "sd": sd, "ci_low": low, "ci_high": high,
                        "n_folds": len(rows)})
        return pd.DataFrame(out)

    def summary(self) -> pd.DataFrame:
        """Learned weight per layer: ``layer, layer_name, weight_mean, weight_sd``."""
        return pd.DataFrame({"layer": np.arange(len(self.layer_names_)), "layer_name": self.layer_names_,
                             "weight_mean": self.weights_mean_, "weight_sd": self.weights_sd_})
