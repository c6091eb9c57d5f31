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
from ..options import real_number, whole_number
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


def train_early_stopping(model: nn.Module, n_outputs: int, task: str, X_fit: torch.Tensor, t_fit: torch.Tensor,
                         X_val: torch.Tensor, t_val: torch.Tensor, *, param_groups: list[dict],
                         batch_size: int, max_epochs: int, patience: int,
                         generator: torch.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Adam on mini-batches; keeps each output's best-validation parameters and loads them at the end.

    ``model`` maps (layers, batch, dim) to (n_outputs, batch, k); when
    ``n_outputs > 1`` every parameter's first axis must index the outputs.

    Returns
    -------
    best_loss, best_epoch : ndarray, shape (n_outputs,)
        Lowest validation loss of each output and the epoch (1-based) it was reached.
    """
    optimiser = torch.optim.Adam(param_groups)
    params = dict(model.named_parameters())
    best_state = {name: p.detach().clone() for name, p in params.items()}
    best = torch.full((n_outputs,), math.inf, device=X_fit.device)
    best_epoch = torch.zeros(n_outputs, dtype=torch.long)
    waited = torch.zeros(n_outputs, dtype=torch.long)
    n = X_fit.shape[1]
    for epoch in range(1, max_epochs + 1):
        model.train()
        for batch in torch.randperm(n, generator=generator).to(X_fit.device).split(batch_size):
            optimiser.zero_grad()
            loss_per_output(task, model(X_fit[:, batch]), t_fit[batch]).sum().backward()
            optimiser.step()
        model.eval()
        with torch.no_grad():
            val = sum(loss_per_output(task, model(X_val[:, i:i + _VAL_CHUNK]), t_val[i:i + _VAL_CHUNK])
                      * len(t_val[i:i + _VAL_CHUNK]) for i in range(0, len(t_val), _VAL_CHUNK)) / len(t_val)
            improved = val < best
            best = torch.where(improved, val, best)
            for name, p in params.items():
                if n_outputs == 1:
                    if improved.item():
                        best_state[name] = p.detach().clone()
                else:
                    best_state[name][improved] = p.detach()[improved]
        improved = improved.cpu()
        best_epoch[improved] = epoch
        waited = torch.where(improved, 0, waited + 1)
        if (waited >= patience).all():
            break
    with torch.no_grad():
        for name, p in params.items():
            p.copy_(best_state[name])
    return best.cpu().numpy(), best_epoch.numpy()


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


@dataclass(frozen=True)
class MLPProbe(Probe):
    """MARBLE-like probe: ``dim → hidden (ReLU, dropout) → classes``, Adam, early stopping.

    Every task; float32 torch on the CPU, CUDA or MPS.

    Parameters
    ----------
    hidden : int
        Hidden width (MARBLE: 512); 0 gives a linear (logistic / least-squares) head.
    dropout, lr, batch_size : float, float, int
        MARBLE: 0.2, 1e-3, 64.
    max_epochs, patience : int
        At most ``max_epochs``; stop a head after ``patience`` epochs without a better
        validation loss, keeping its best state.
    val_fraction : float
        Share of each training fold held out (whole groups) for early stopping.
    weight_decay : float
        Adam's L2 penalty.

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

    def inner_description(self) -> str:
        return (f"early stopping on a grouped {self.val_fraction:.0%} validation split of each training fold "
                f"(patience {self.patience}, ≤ {self.max_epochs} epochs)")

    def cross_validate(self, X: np.ndarray, targets: list[np.ndarray], folds: np.ndarray, *, task: str,
                       seed: int, groups, device, tick: Tick) -> list[tuple[np.ndarray, dict]]:
        """Out-of-fold decisions (layers, n, k) and ``{"best_epoch", "val_loss"}`` (layers, cv) per target set."""
        Xt = torch.as_tensor(X, dtype=torch.float32).to(device)
        n_layers, dim = X.shape[0], X.shape[2]

        def heads(classes: int) -> Callable[[torch.Generator], tuple[nn.Module, list[dict]]]:
            def build(generator: torch.Generator) -> tuple[nn.Module, list[dict]]:
                head = BatchedHead(n_layers, dim, classes, hidden=self.hidden, dropout=self.dropout,
                                   generator=generator).to(device)
                return head, [{"params": head.parameters(), "lr": self.lr, "weight_decay": self.weight_decay}]
            return build

        # the target set's index keeps the control task's initialisations apart from the real task's
        return [self.fit_folds(Xt, T, folds, task=task, groups=groups, seed=seed, stream=t, build=heads(T.shape[1]),
                               n_outputs=n_layers, tick=tick)[:2] for t, T in enumerate(targets)]

    def fit_folds(self, X: torch.Tensor, T: np.ndarray, folds: np.ndarray, *, task: str, groups, seed: int,
                  stream: int, build: Callable[[torch.Generator], tuple[nn.Module, list[dict]]], n_outputs: int,
                  tick: Tick) -> tuple[np.ndarray, dict[str, np.ndarray], list[nn.Module]]:
        """Train one model per outer fold with early stopping and predict the fold: the shared fold loop.

        For each outer fold ``k``: standardise on its training rows, hold out whole groups of them
        (``val_fraction``) for early stopping, seed a generator from ``(seed, k, stream)`` (it draws
        the initialisation, the batch order and the dropout masks), build the model with it, train
        it with Adam (``batch_size``, ``max_epochs``, ``patience``) keeping its best-validation
        state, then predict fold ``k``'s rows.  A run is a function of its seeds alone.

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
            ``best_epoch`` and ``val_loss`` of each output per fold, each (n_outputs, cv).
        models : list of nn.Module
            The trained model of each fold, at its best-validation state.
        """
        n_folds = int(folds.max()) + 1
        decision = np.empty((n_outputs, len(folds), T.shape[1]))
        epochs, losses = np.empty((n_outputs, n_folds)), np.empty((n_outputs, n_folds))
        models = []
        for k in range(n_folds):
            data, test = fold_data(X, T, folds, k, task=task, groups=groups, fraction=self.val_fraction, seed=seed)
            gen = torch.Generator().manual_seed(int(np.random.SeedSequence([seed, k, stream]).generate_state(1)[0]))
            model, param_groups = build(gen)
            losses[:, k], epochs[:, k] = train_early_stopping(
                model, n_outputs, task, data.X_fit, data.t_fit, data.X_val, data.t_val, param_groups=param_groups,
                batch_size=self.batch_size, max_epochs=self.max_epochs, patience=self.patience, generator=gen)
            decision[:, test] = predict(model, task, data.X_test, data.t_scale)
            models.append(model)
            tick(n_outputs)
        return decision, {"best_epoch": epochs, "val_loss": losses}, models
