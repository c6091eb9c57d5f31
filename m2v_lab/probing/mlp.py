"""MARBLE-like MLP probes, one per layer, trained side by side with early stopping.

All layers' heads live in one module whose weights carry a leading "output"
axis, so a single batched matmul trains every layer at once; Adam is
element-wise, so this is the same as training them one by one on the same
batches.  Each head keeps its own best-validation state (early stopping per
head); training ends when every head has run out of patience.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import AnalysisError
from .device import resolve_device

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
        Seeds the initialisation (uniform ±1/sqrt(fan_in), as ``nn.Linear``).

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

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i, (w, b) in enumerate(zip(self.weights, self.biases)):
            if i:
                x = F.dropout(F.relu(x), self.dropout, self.training)
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
    targets = torch.as_tensor(T, dtype=torch.float32, device=X.device)
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
    return dec.double().cpu().numpy()


@dataclass(frozen=True)
class MLPProbe:
    """MARBLE-like probe: ``dim → hidden (ReLU, dropout) → classes``, Adam, early stopping.

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
    default_seeds = (0, 1, 2)

    def inner_description(self) -> str:
        return (f"early stopping on a grouped {self.val_fraction:.0%} validation split of each training fold "
                f"(patience {self.patience}, ≤ {self.max_epochs} epochs)")

    def cross_validate(self, X: np.ndarray, targets: list[np.ndarray], folds: np.ndarray, *, task: str,
                       seed: int, groups, device) -> list[tuple[np.ndarray, dict]]:
        """Out-of-fold decisions (layers, n, k) and ``{"best_epoch", "val_loss"}`` (layers, cv) per target set."""
        dev = resolve_device(device)
        Xt = torch.as_tensor(X, device=dev).float()
        n_layers, n_folds = X.shape[0], int(folds.max()) + 1
        results = []
        for t, T in enumerate(targets):
            decision = np.empty((n_layers, len(folds), T.shape[1]))
            epochs, losses = np.empty((n_layers, n_folds)), np.empty((n_layers, n_folds))
            for k in range(n_folds):
                data, test = fold_data(Xt, T, folds, k, task=task, groups=groups, fraction=self.val_fraction,
                                       seed=seed)
                gen = torch.Generator().manual_seed(int(np.random.SeedSequence([seed, k, t]).generate_state(1)[0]))
                head = BatchedHead(n_layers, X.shape[2], T.shape[1], hidden=self.hidden, dropout=self.dropout,
                                   generator=gen).to(dev)
                losses[:, k], epochs[:, k] = train_early_stopping(
                    head, n_layers, task, data.X_fit, data.t_fit, data.X_val, data.t_val,
                    param_groups=[{"params": head.parameters(), "lr": self.lr, "weight_decay": self.weight_decay}],
                    batch_size=self.batch_size, max_epochs=self.max_epochs, patience=self.patience, generator=gen)
                decision[:, test] = predict(head, task, data.X_test, data.t_scale)
            results.append((decision, {"best_epoch": epochs, "val_loss": losses}))
        return results
