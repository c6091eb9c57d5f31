"""MARBLE-like MLP probes, one per layer, trained side by side with early stopping; their fold loop.

All layers' heads live in one module whose weights carry a leading "output"
axis, so a single batched matmul trains every layer at once; Adam is
element-wise, so this is the same as training them one by one on the same
batches.  Each head keeps its own best-validation state (early stopping per
head); training ends when every head has run out of patience.

:meth:`MLPProbe.fit_folds` is the one fold loop of every early-stopped torch model here:
the per-layer heads and :class:`~m2v_lab.probing.LayerSumProbe`'s weighted sum.
Everything is float32, so it runs on the CPU, CUDA and Apple's MPS alike.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import AnalysisError
from ..options import one_of, real_number, whole_number
from .metrics import PRIMARY
from .protocol import Probe, Tick

_VAL_CHUNK = 1024


class BatchedHead(nn.Module):
    """``outputs`` independent heads ``dim → hidden → classes`` (or linear when ``hidden=0``).

    Parameters
    ----------
    outputs, dim, classes : int
    hidden : int
        Width of the ReLU hidden layer; 0 gives a linear head.
    dropout : float
        Dropout after the hidden layer.
    generator : torch.Generator, optional
        A CPU generator that seeds the initialisation (uniform ±1/sqrt(fan_in), as
        ``nn.Linear``) and then draws the dropout masks; default torch's global one.

    Shapes: ``forward`` maps (outputs, batch, dim) to (outputs, batch, classes).
    """

    def __init__(self, outputs: int, dim: int, classes: int, *, hidden: int = 512, dropout: float = 0.2,
                 generator: torch.Generator | None = None):
        super().__init__()
        sizes = [dim, hidden, classes] if hidden else [dim, classes]
        self.weights = nn.ParameterList()
        self.biases = nn.ParameterList()
        for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
            bound = 1 / math.sqrt(fan_in)
            for store, shape in ((self.weights, (outputs, fan_in, fan_out)), (self.biases, (outputs, 1, fan_out))):
                store.append(nn.Parameter((torch.rand(shape, generator=generator) * 2 - 1) * bound))
        self.dropout = dropout
        self.generator = generator

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i, (w, b) in enumerate(zip(self.weights, self.biases)):
            if i:
                x = F.relu(x)
                if self.training and self.dropout:
                    # F.dropout draws from torch's global generator, so the probe's seeds would not fix a run;
                    # drawn on the CPU, the masks are the same whatever device trains
                    keep = torch.rand(x.shape, generator=self.generator) >= self.dropout
                    x = x * keep.to(x.device) / (1 - self.dropout)
            x = torch.baddbmm(b, x, w)
        return x


def loss_per_output(task: str, out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean loss of each output, shape (outputs,), for ``out`` (outputs, batch, k)."""
    if task == "multiclass":
        # written out: F.cross_entropy(reduction="none") was 40x slower on small batches (2 busy cores)
        return -(out.log_softmax(-1) * target).sum(-1).mean(1)
    if task == "multilabel":
        return F.binary_cross_entropy_with_logits(out, target.expand_as(out), reduction="none").mean((1, 2))
    return ((out - target) ** 2).mean((1, 2))


def to_decision(task: str, out: torch.Tensor) -> torch.Tensor:
    """Probabilities (classification) or values (regression) from raw head outputs."""
    if task == "multiclass":
        return out.softmax(-1)
    if task == "multilabel":
        return out.sigmoid()
    return out


def carve_validation(train: np.ndarray, groups: np.ndarray | None, fraction: float,
                     rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Split training indices into (fit, validation), whole groups going to validation.

    Groups are drawn in random order until ``fraction`` of the samples are
    held out; at least one group is held out and at least one kept.
    """
    ids = groups[train] if groups is not None else np.arange(len(train))
    uniques = rng.permutation(np.unique(ids))
    if len(uniques) < 2:
        raise AnalysisError("a training fold holds a single group, so no grouped validation split can be "
                            "carved for early stopping; use more groups or a lower cv.")
    sizes = np.array([np.sum(ids == g) for g in uniques])
    n_val = int(np.clip(np.searchsorted(np.cumsum(sizes), fraction * len(train)) + 1, 1, len(uniques) - 1))
    val = np.isin(ids, uniques[:n_val])
    return train[~val], train[val]


def standardise(X: torch.Tensor, train: torch.Tensor) -> torch.Tensor:
    """z-score every layer's dims with the mean and sd of the ``train`` rows; (layers, n, dim)."""
    mu = X[:, train].mean(1, keepdim=True)
    sd = X[:, train].std(1, correction=0, keepdim=True)
    return (X - mu) / torch.where(sd > 0, sd, torch.ones_like(sd))


def val_metric(task: str, out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The task's primary metric of each output, shape (outputs,), for ``out`` (outputs, m, k).

    Accuracy (classes), ROC-AUC averaged over the labels with both values present (labels),
    R² averaged over the targets (values).
    """
    if task == "multiclass":
        return (out.argmax(-1) == target.argmax(-1)).float().mean(1)
    if task == "multilabel":
        # rank form of the AUC; ties between float scores are too rare to average
        ranks = out.argsort(1).argsort(1).to(out.dtype) + 1
        pos = target.sum(0)
        neg = len(target) - pos
        auc = ((ranks * target).sum(1) - pos * (pos + 1) / 2) / (pos * neg)
        return auc[:, (pos > 0) & (neg > 0)].mean(1)
    total = ((target - target.mean(0)) ** 2).sum(0)
    return (1 - ((out - target) ** 2).sum(1) / total).mean(-1)


def train_early_stopping(model: nn.Module, n_outputs: int, task: str, X_fit: torch.Tensor, t_fit: torch.Tensor,
                         X_val: torch.Tensor, t_val: torch.Tensor, *, param_groups: list[dict],
                         batch_size: int, max_epochs: int, patience: int, generator: torch.Generator,
                         monitor: str = "loss", lr_patience: int | None = None,
                         lr_factor: float = 0.5) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
    """Adam on mini-batches; keeps each output's best-validation parameters and loads them at the end.

    ``model`` maps (layers, batch, dim) to (n_outputs, batch, k); when
    ``n_outputs > 1`` every parameter's first axis must index the outputs.  ``monitor`` is
    ``"loss"`` (lower is better) or ``"metric"`` (:func:`val_metric`, higher is better; the
    loss where the validation rows leave it undefined); an output improves when it is strictly
    better.  With ``lr_patience``, an output's learning
    rate is multiplied by ``lr_factor`` once more than ``lr_patience`` epochs passed without
    improvement (as torch's ``ReduceLROnPlateau``), per output: its Adam steps are scaled, which
    is what a smaller learning rate does to them.

    Returns
    -------
    val_loss : ndarray, shape (n_outputs,)
        Validation loss of each output at its best epoch.
    val_metric : ndarray, shape (n_outputs,), or None
        Its validation metric there (when monitored; NaN where undefined).
    best_epoch : ndarray, shape (n_outputs,)
        The epoch (1-based) of the kept state.
    """
    optimiser = torch.optim.Adam(param_groups)
    params = dict(model.named_parameters())
    best_state = {name: p.detach().clone() for name, p in params.items()}
    device = X_fit.device
    best = torch.full((n_outputs,), -math.inf, device=device)
    best_loss = torch.full((n_outputs,), math.inf, device=device)
    best_metric = torch.full((n_outputs,), math.nan, device=device)
    best_epoch = torch.zeros(n_outputs, dtype=torch.long)
    waited = torch.zeros(n_outputs, dtype=torch.long)
    since_cut = torch.zeros(n_outputs, dtype=torch.long)
    rate = torch.ones(n_outputs, device=device)
    n = X_fit.shape[1]
    for epoch in range(1, max_epochs + 1):
        model.train()
        for batch in torch.randperm(n, generator=generator).to(device).split(batch_size):
            optimiser.zero_grad()
            loss_per_output(task, model(X_fit[:, batch]), t_fit[batch]).sum().backward()
            before = {name: p.detach().clone() for name, p in params.items()} if (rate < 1).any() else None
            optimiser.step()
            if before is not None:
                with torch.no_grad():
                    for name, p in params.items():
                        scale = rate.view(-1, *[1] * (p.dim() - 1)) if n_outputs > 1 else rate[0]
                        p.copy_(before[name] + scale * (p - before[name]))
        model.eval()
        with torch.no_grad():
            outs = [model(X_val[:, i:i + _VAL_CHUNK]) for i in range(0, X_val.shape[1], _VAL_CHUNK)]
            loss = sum(loss_per_output(task, out, t_val[i * _VAL_CHUNK:(i + 1) * _VAL_CHUNK]) * out.shape[1]
                       for i, out in enumerate(outs)) / len(t_val)
            metric = val_metric(task, torch.cat(outs, dim=1), t_val) if monitor == "metric" else None
            # a metric the validation rows leave undefined (no label with both values in them) is so at every
            # epoch: the loss is watched instead
            score = -loss if metric is None else torch.where(metric.isnan(), -loss, metric)
            improved = score > best
            best = torch.where(improved, score, best)
            best_loss = torch.where(improved, loss, best_loss)
            if metric is not None:
                best_metric = torch.where(improved, metric, best_metric)
            for name, p in params.items():
                if n_outputs == 1:
                    if improved.item():
                        best_state[name] = p.detach().clone()
                else:
                    best_state[name][improved] = p.detach()[improved]
        if lr_patience is not None:
            since_cut = torch.where(improved.cpu(), 0, since_cut + 1)
            cut = since_cut > lr_patience
            rate[cut.to(device)] *= lr_factor
            since_cut[cut] = 0
        improved = improved.cpu()
        best_epoch[improved] = epoch
        waited = torch.where(improved, 0, waited + 1)
        if (waited >= patience).all():
            break
    with torch.no_grad():
        for name, p in params.items():
            p.copy_(best_state[name])
    return (best_loss.cpu().numpy(), None if monitor == "loss" else best_metric.cpu().numpy(),
            best_epoch.numpy())


@dataclass
class FoldData:
    """One outer fold on the device: standardised features and targets split into fit / val / test."""

    X_fit: torch.Tensor
    X_val: torch.Tensor
    X_test: torch.Tensor
    t_fit: torch.Tensor
    t_val: torch.Tensor
    t_scale: tuple  # (mean, sd) that undo the regression target standardisation


def fold_data(X: torch.Tensor, T: np.ndarray, folds: np.ndarray, k: int, *, task: str, groups, fraction: float,
              seed: int) -> tuple[FoldData, np.ndarray]:
    """Standardise on the training folds, carve a grouped validation split; returns data and test indices."""
    train, test = np.flatnonzero(folds != k), np.flatnonzero(folds == k)
    fit, val = carve_validation(train, groups, fraction, np.random.default_rng([seed, k, 0x7A1]))
    Xs = standardise(X, torch.as_tensor(train, device=X.device))
    # float32 before the move: MPS cannot hold the float64 targets even for a moment
    targets = torch.as_tensor(T, dtype=torch.float32).to(X.device)
    mean, sd = torch.zeros(T.shape[1], device=X.device), torch.ones(T.shape[1], device=X.device)
    if task == "regression":
        mean, sd = targets[train].mean(0), targets[train].std(0, correction=0)
        targets = (targets - mean) / sd
    idx = [torch.as_tensor(i, device=X.device) for i in (fit, val, test)]
    return FoldData(Xs[:, idx[0]], Xs[:, idx[1]], Xs[:, idx[2]], targets[idx[0]], targets[idx[1]],
                    (mean, sd)), test


def predict(model: nn.Module, task: str, X: torch.Tensor, t_scale: tuple) -> np.ndarray:
    """Decisions (outputs, n, k) of a trained model on standardised features (layers, n, dim)."""
    model.eval()
    with torch.no_grad():
        out = torch.cat([model(X[:, i:i + _VAL_CHUNK]) for i in range(0, X.shape[1], _VAL_CHUNK)], dim=1)
        dec = to_decision(task, out)
        if task == "regression":
            dec = dec * t_scale[1] + t_scale[0]
    return dec.cpu().double().numpy()  # float64 only off the device: MPS has none


#: What :meth:`MLPProbe.marble` sets: MARBLE v1's probe (see its docstring for the source).
MARBLE = dict(hidden=512, dropout=0.2, lr=1e-3, batch_size=64, max_epochs=100, patience=20, weight_decay=0.0,
              monitor="metric", lr_patience=6, lr_factor=0.5)


@dataclass(frozen=True)
class MLPProbe(Probe):
    """MARBLE-like probe: ``dim → hidden (ReLU, dropout) → classes``, Adam, early stopping.

    Every task; float32 torch on the CPU, CUDA or MPS.  The defaults are MARBLE's network and
    optimiser with early stopping on the validation loss and a constant learning rate;
    :meth:`marble` gives MARBLE's whole protocol.

    Parameters
    ----------
    hidden : int
        Hidden width (MARBLE: 512); 0 gives a linear (logistic / least-squares) head.
    dropout, lr, batch_size : float, float, int
        MARBLE: 0.2, 1e-3, 64.
    max_epochs, patience : int
        At most ``max_epochs``; stop a head after ``patience`` epochs without a better
        validation score, keeping its best state.
    val_fraction : float
        Share of each training fold held out (whole groups) for early stopping.
    weight_decay : float
        Adam's L2 penalty.
    monitor : {"loss", "metric"}
        What early stopping (and ``lr_patience``) watches on the validation split: the loss,
        or the task's primary metric — accuracy, ROC-AUC or R², as MARBLE's ``valid_acc`` …
    lr_patience : int, optional
        Multiply a head's learning rate by ``lr_factor`` after more than ``lr_patience``
        epochs without improvement (``ReduceLROnPlateau``); None keeps it constant.
    lr_factor : float
        In (0, 1).

    Raises
    ------
    OptionError
        A setting out of its range (``hidden`` < 0, ``dropout`` outside [0, 1), ``lr`` ≤ 0 …).
    """

    hidden: int = 512
    dropout: float = 0.2
    lr: float = 1e-3
    batch_size: int = 64
    max_epochs: int = 100
    patience: int = 10
    val_fraction: float = 0.15
    weight_decay: float = 0.0
    monitor: str = "loss"
    lr_patience: int | None = None
    lr_factor: float = 0.5
    name = "mlp"
    tasks = frozenset({"multiclass", "multilabel", "regression"})
    default_seeds = (0, 1, 2)

    def __post_init__(self):
        whole_number("hidden", self.hidden, minimum=0)
        for option in ("batch_size", "max_epochs", "patience"):
            whole_number(option, getattr(self, option), minimum=1)
        real_number("dropout", self.dropout, low=0, high=1, low_ok=True)
        real_number("lr", self.lr, low=0)
        real_number("val_fraction", self.val_fraction, low=0, high=1)
        real_number("weight_decay", self.weight_decay, low=0, low_ok=True)
        one_of("monitor", self.monitor, ("loss", "metric"))
        if self.lr_patience is not None:
            whole_number("lr_patience", self.lr_patience, minimum=0)
        real_number("lr_factor", self.lr_factor, low=0, high=1)

    @classmethod
    def marble(cls, **changes) -> MLPProbe:
        """The probe of MARBLE v1 (Yuan et al. 2023), for results comparable with its tables.

        One hidden layer of 512 ReLU units, dropout 0.2; Adam, lr 1e-3, no weight decay, batch
        64, at most 100 epochs; the validation accuracy (the task's primary metric: ROC-AUC for
        labels, R² for values) is monitored: ``ReduceLROnPlateau`` halves the learning rate
        after more than 6 epochs without improvement, early stopping waits 20 and the best
        state is kept.  Source: MARBLE-Benchmark ``configs/mert/MERT-v1-330M/GTZAN.yaml``
        (``hidden_layer_sizes: [512]``, ``dropout_p: 0.2``, ``lr: 1e-3``, ``batch_size: 64``,
        ``max_epochs: 100``, ``lr_scheduler_patience: 6``, ``earlystop_patience: 20``,
        ``monitor: valid_acc``) and ``benchmark/models/probers.py`` (``ReduceLROnPlateau(...,
        factor=0.5)``).  MARBLE validates on a fixed split and averages a track's windows
        there; here validation holds out ``val_fraction`` of each training fold, whole groups.

        Parameters
        ----------
        **changes
            Settings to change, e.g. ``MLPProbe.marble(max_epochs=50)``.

        Returns
        -------
        MLPProbe
        """
        return cls(**{**MARBLE, **changes})

    def inner_description(self) -> str:
        watched = "validation loss" if self.monitor == "loss" else "validation metric"
        text = (f"early stopping on the {watched} of a grouped {self.val_fraction:.0%} validation split of each "
                f"training fold (patience {self.patience}, ≤ {self.max_epochs} epochs")
        if self.lr_patience is not None:
            text += f"; learning rate × {self.lr_factor:g} after {self.lr_patience} epochs without improvement"
        return text + ")"

    def cross_validate(self, X: np.ndarray, targets: list[np.ndarray], folds: np.ndarray, *, task: str,
                       seed: int, groups, device, tick: Tick) -> list[tuple[np.ndarray, dict]]:
        """Out-of-fold decisions (layers, n, k) and ``{"best_epoch", "val_loss"}`` (layers, cv) per target set.

        With ``monitor="metric"`` also the validation metric at the kept epoch (``val_accuracy``,
        ``val_roc_auc`` or ``val_r2``).
        """
        Xt = torch.as_tensor(X, dtype=torch.float32).to(device)
        n_layers, dim = X.shape[0], X.shape[2]

        def heads(classes: int) -> Callable[[torch.Generator], tuple[nn.Module, list[dict]]]:
            def build(generator: torch.Generator) -> tuple[nn.Module, list[dict]]:
                head = BatchedHead(n_layers, dim, classes, hidden=self.hidden, dropout=self.dropout,
                                   generator=generator).to(device)
                return head, [{"params": head.parameters(), "lr": self.lr, "weight_decay": self.weight_decay}]
            return build

        # each target set's index keeps its initialisations apart from the others'
        return [self.fit_folds(Xt, T, folds, task=task, groups=groups, seed=seed, stream=t, build=heads(T.shape[1]),
                               n_outputs=n_layers, tick=tick)[:2] for t, T in enumerate(targets)]

    def fit_folds(self, X: torch.Tensor, T: np.ndarray, folds: np.ndarray, *, task: str, groups, seed: int,
                  stream: int, build: Callable[[torch.Generator], tuple[nn.Module, list[dict]]], n_outputs: int,
                  tick: Tick) -> tuple[np.ndarray, dict[str, np.ndarray], list[nn.Module]]:
        """Train one model per outer fold with early stopping and predict the fold: the shared fold loop.

        For each outer fold ``k``: standardise on its training rows, hold out whole groups of them
        (``val_fraction``) for early stopping, seed a generator from ``(seed, k, stream)`` (it draws
        the initialisation, the batch order and the dropout masks), build the model with it, train
        it with Adam (``batch_size``, ``max_epochs``, ``patience``, ``monitor``, ``lr_patience``)
        keeping its best-validation state, then predict fold ``k``'s rows.  A run is a function of its seeds alone.

        Parameters
        ----------
        X : Tensor, shape (layers, n, dim)
            float32 features on the device the models train on.
        T : ndarray, shape (n, k)
            Targets (one-hot, 0/1 or values).
        folds : ndarray, shape (n,)
            Outer test fold of each sample.
        task : {"multiclass", "multilabel", "regression"}
        groups : ndarray, shape (n,), or None
            Group codes: validation splits take whole groups.
        seed : int
        stream : int
            Keeps apart the initialisations of different models trained on the same folds and seed.
        build : callable
            ``build(generator) -> (model, param_groups)``: a model on ``X``'s device mapping
            (layers, batch, dim) to (n_outputs, batch, k), initialised from ``generator``, and its
            Adam parameter groups.
        n_outputs : int
            Independent outputs of the model, each early-stopped on its own.
        tick : callable
            Called with ``n_outputs`` after each fold.

        Returns
        -------
        decision : ndarray, shape (n_outputs, n, k)
            Out-of-fold probabilities (classes, labels) or values (regression).
        params : dict
            ``best_epoch`` and ``val_loss`` (and, when monitored, ``val_<metric>``) of each
            output per fold at its kept state, each (n_outputs, cv).
        models : list of nn.Module
            The trained model of each fold, at its best-validation state.
        """
        n_folds = int(folds.max()) + 1
        decision = np.empty((n_outputs, len(folds), T.shape[1]))
        found = []
        models = []
        for k in range(n_folds):
            data, test = fold_data(X, T, folds, k, task=task, groups=groups, fraction=self.val_fraction, seed=seed)
            gen = torch.Generator().manual_seed(int(np.random.SeedSequence([seed, k, stream]).generate_state(1)[0]))
            model, param_groups = build(gen)
            loss, metric, epoch = train_early_stopping(
                model, n_outputs, task, data.X_fit, data.t_fit, data.X_val, data.t_val, param_groups=param_groups,
                batch_size=self.batch_size, max_epochs=self.max_epochs, patience=self.patience, generator=gen,
                monitor=self.monitor, lr_patience=self.lr_patience, lr_factor=self.lr_factor)
            found.append({"best_epoch": epoch, "val_loss": loss} if metric is None else
                         {"best_epoch": epoch, "val_loss": loss, f"val_{PRIMARY[task]}": metric})
            decision[:, test] = predict(model, task, data.X_test, data.t_scale)
            models.append(model)
            tick(n_outputs)
        return decision, {name: np.stack([f[name] for f in found], axis=1) for name in found[0]}, models
