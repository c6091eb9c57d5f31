"""Ridge probes along a whole regularisation path, batched over layers.

One eigendecomposition per layer and training set serves every alpha:
with the standardised training features ``Xs = V diag(λ) V'`` (Gram form,
``n ≥ dim``) or ``Xs Xs' = U diag(λ) U'`` (kernel form, ``n < dim``), the
coefficients for any alpha are ``W diag(1/(λ+α)) B``.  Cross-validation works
on per-fold sums (counts, sums, Gram blocks): the standardised Gram of any
union of folds follows from them without touching the samples again.

Alpha is chosen per layer and outer fold by an inner CV on the other folds.
The inner model that leaves out folds ``j`` and ``k`` is the same for outer
fold ``k`` (validating on ``j``) and outer fold ``j`` (validating on ``k``), so a
``cv``-fold nested CV needs ``cv (cv-1)/2`` eigendecompositions per layer, not
``cv (cv-1)``; the refit of each outer fold at its chosen alpha is one Cholesky
solve.  A plain loop needs ``cv (cv-1) × alphas + cv`` fits per layer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import combinations

import numpy as np
import torch

from ..devices import resolve_device
from ..errors import AnalysisError, OptionError
from ..stacks import layer_stack
from .inputs import from_table
from .options import check_inner_folds, positive_grid
from .protocol import Probe, Tick, no_tick

DEFAULT_ALPHAS = tuple(np.logspace(-2, 6, 17).tolist())
_EPS = float(np.finfo(np.float64).eps)
_MEMORY = 2**30  # bytes of per-fold sums held at once; bounds how many layers are batched


def float64_device(device) -> torch.device:
    """The torch device for ridge's float64 algebra: any that :func:`~m2v_lab.devices.resolve_device` gives but MPS.

    Raises
    ------
    OptionError
        ``device`` is (or, as None / ``"auto"``, chose) Apple's MPS, which has no float64.
    """
    dev = resolve_device(device)
    if dev.type == "mps":
        # float32 would lose the small eigenvalues the whole alpha path is read from: refuse rather than degrade
        raise OptionError(f"device={device!r} runs on Apple's MPS, which has no float64, and ridge probes compute "
                          "in float64: pass device='cpu' (one decomposition per layer and fold is quick there).")
    return dev


def _flat(T: torch.Tensor) -> torch.Tensor:
    """(L, A, r, k) → (L, r, A·k), so one batched matmul serves every alpha."""
    L, A, r, k = T.shape
    return T.permute(0, 2, 1, 3).reshape(L, r, A * k)


def _unflat(T: torch.Tensor, A: int) -> torch.Tensor:
    """(L, m, A·k) → (L, A, m, k)."""
    L, m, Ak = T.shape
    return T.reshape(L, m, A, Ak // A).permute(0, 2, 1, 3)


@dataclass
class _Standardised:
    """Standardised normal equations of one training set for a batch of layers.

    Gram form: ``A = Xs'Xs`` (L, dim, dim), ``rhs = Xs'Yc`` (L, dim, k).
    Kernel form: ``A = Xs Xs'`` (L, n, n), ``rhs = Yc`` (L, n, k), ``Xs`` kept.
    """

    mu: torch.Tensor      # (L, dim) training mean (of the shifted features)
    sigma: torch.Tensor   # (L, dim) training standard deviation (1 for constant features)
    ybar: torch.Tensor    # (k,) training mean of the targets
    A: torch.Tensor
    rhs: torch.Tensor
    Xs: torch.Tensor | None = None

    def to_coef(self, T: torch.Tensor) -> torch.Tensor:
        """Map a solution in the equations' space (L, r, ·) to coefficients (L, dim, ·)."""
        return T if self.Xs is None else self.Xs.mT @ T

    def path(self) -> "_Solution":
        """Eigendecomposition of ``A``: every alpha from here on costs two matmuls."""
        lam, V = torch.linalg.eigh(self.A)
        return _Solution(self, lam.clamp_min(0), self.to_coef(V), V.mT @ self.rhs)

    def solve(self, alphas: list[tuple[slice, torch.Tensor]]) -> torch.Tensor:
        """Coefficients (L, dim, k) by Cholesky, each column set at its own per-layer alpha (L,)."""
        eye = torch.eye(self.A.shape[-1], dtype=self.A.dtype, device=self.A.device)
        coef = []
        for cols, alpha in alphas:
            chol = torch.linalg.cholesky(self.A + alpha[:, None, None] * eye)
            coef.append(self.to_coef(torch.cholesky_solve(self.rhs[..., cols], chol)))
        return torch.cat(coef, dim=-1)

    def predict(self, X: torch.Tensor, coef: torch.Tensor) -> torch.Tensor:
        """Predictions (L, m, ·) of shifted features ``X`` (L, m, dim) with coefficients (L, dim, ·)."""
        return ((X - self.mu[:, None]) / self.sigma[:, None]) @ coef


@dataclass
class _Solution:
    """Ridge solutions of one training set at every alpha, from one eigendecomposition."""

    eq: _Standardised
    lam: torch.Tensor     # (L, r) eigenvalues, ≥ 0
    W: torch.Tensor       # (L, dim, r) eigenvectors mapped to coefficient space
    B: torch.Tensor       # (L, r, k) right-hand side in the eigenbasis

    def _coef_flat(self, alpha: torch.Tensor) -> torch.Tensor:
        return self.W @ _flat(self.B[:, None] / (self.lam[:, None, :, None] + alpha[:, :, None, :]))

    def coef(self, alpha: torch.Tensor) -> torch.Tensor:
        """Coefficients on standardised features, (L, A, dim, k), for ``alpha`` shaped (L, A, k)."""
        return _unflat(self._coef_flat(alpha), alpha.shape[1])

    def predict(self, X: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
        """Predictions (L, A, m, k) of shifted features ``X`` (L, m, dim) for ``alpha`` (L, A, k)."""
        return _unflat(self.eq.predict(X, self._coef_flat(alpha)), alpha.shape[1]) + self.eq.ybar


class _FoldSums:
    """Per-fold sums of shifted features (L, n, dim) and targets (n, k) for a batch of layers."""

    def __init__(self, X: torch.Tensor, shift: torch.Tensor, Y: torch.Tensor, blocks: list[torch.Tensor]):
        self.X, self.shift, self.Y, self.blocks = X, shift, Y, blocks
        self.n = [len(b) for b in blocks]
        self.s = torch.stack([X[:, b].sum(1) for b in blocks])            # (K, L, dim)
        self.q = torch.stack([(X[:, b] ** 2).sum(1) for b in blocks])     # (K, L, dim)
        self.sy = torch.stack([Y[b].sum(0) for b in blocks])              # (K, k)
        self._gram = None

    def gram(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Per-fold ``X'X`` (K, L, dim, dim), ``X'Y`` (K, L, dim, k) and their totals, made on first use."""
        if self._gram is None:
            X, Y = self.X, self.Y
            R = torch.stack([X[:, b].mT @ X[:, b] for b in self.blocks])
            P = torch.stack([X[:, b].mT @ Y[b] for b in self.blocks])
            self._gram = (R, P, R.sum(0), P.sum(0))
        return self._gram

    def equations(self, leave_out: tuple[int, ...]) -> _Standardised:
        """Standardise on all folds but ``leave_out``, from the sums alone (Gram form) or the rows (kernel form)."""
        keep = [b for b in range(len(self.blocks)) if b not in leave_out]
        n = float(sum(self.n[b] for b in keep))
        mu = self.s[keep].sum(0) / n
        ybar = self.sy[keep].sum(0) / n
        var = (self.q[keep].sum(0) / n - mu**2).clamp_min(0)
        # sklearn's StandardScaler test for a feature indistinguishable from a constant
        constant = var <= n * _EPS * var + (n * (mu + self.shift).abs() * _EPS) ** 2
        sigma = torch.where(constant, torch.ones_like(var), var.sqrt())
        if n >= self.X.shape[2]:  # Gram form; the kernel form is cheaper below n = dim
            R, P, R_all, P_all = self.gram()
            # in place: these are (L, dim, dim) and each pass over them counts
            C = R_all.clone()
            for b in leave_out:
                C -= R[b]
            C.baddbmm_(mu[:, :, None], mu[:, None, :], alpha=-n)
            C /= sigma[:, :, None]
            C /= sigma[:, None, :]
            Cxy = P_all - sum(P[b] for b in leave_out) - n * mu[:, :, None] * ybar
            return _Standardised(mu, sigma, ybar, C, Cxy / sigma[:, :, None])
        idx = torch.cat([self.blocks[b] for b in keep])
        Xs = (self.X[:, idx] - mu[:, None]) / sigma[:, None]
        return _Standardised(mu, sigma, ybar, Xs @ Xs.mT, (self.Y[idx] - ybar).expand(Xs.shape[0], -1, -1), Xs)


def _layer_batch(n_layers: int, n: int, dim: int, n_folds: int) -> int:
    per_layer = 8 * (n * dim + (n_folds + 3) * dim * dim)
    return max(1, min(n_layers, _MEMORY // per_layer))


def _shifted(X: np.ndarray, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    # Centring on the full-sample mean changes no result (standardisation undoes any shift)
    # but keeps the Gram sums free of cancellation.
    Xt = torch.as_tensor(X, device=device).to(torch.float64)
    shift = Xt.mean(1, keepdim=True)
    return Xt - shift, shift[:, 0]


@dataclass(frozen=True)
class RidgePath:
    """Ridge fits of every layer at every alpha on one training set.

    Attributes
    ----------
    alphas : ndarray, shape (alphas,)
    coef : ndarray, shape (layers, alphas, dim, targets)
        Coefficients on the standardised training features (as
        ``make_pipeline(StandardScaler(), Ridge(alpha))[-1].coef_.T``).
    intercept : ndarray, shape (layers, alphas, targets)
    predictions : ndarray, shape (layers, alphas, n_test, targets)
    """

    alphas: np.ndarray
    coef: np.ndarray
    intercept: np.ndarray
    predictions: np.ndarray


def ridge_path(train, y_train, test, *, alphas=DEFAULT_ALPHAS, device="cpu") -> RidgePath:
    """Standardise on ``train``, fit ridge at every alpha, predict ``test``: one decomposition per layer.

    Parameters
    ----------
    train : array_like, shape (layers, n_train, dim) or (n_train, dim), or Features
    y_train : array_like, shape (n_train,) or (n_train, targets), or str
        Real-valued targets (one-hot or ±1 columns for classification); a string names a
        column of ``train.clip_table``.
    test : array_like, shape (layers, n_test, dim) or (n_test, dim), or Features
    alphas : sequence of float > 0
    device : "cpu", None, "auto", "cuda" or torch.device
        Where the float64 algebra runs; None and ``"auto"`` take CUDA when there is a GPU
        (Apple's MPS is refused: it has no float64).

    Returns
    -------
    RidgePath
    """
    Xtr, _ = layer_stack(train, name="train", allow_single_layer=True)
    Xte, _ = layer_stack(test, name="test", allow_single_layer=True)
    y_train = from_table(train, y_train, "y_train")
    if Xte.shape[0] != Xtr.shape[0] or Xte.shape[2] != Xtr.shape[2]:
        raise AnalysisError(f"test is shaped {Xte.shape} but train {Xtr.shape}: layers and dim must match.")
    Y = np.array(y_train, dtype=np.float64)  # a copy: torch warns on the read-only arrays pandas hands out
    if Y.ndim not in (1, 2) or len(Y) != Xtr.shape[1]:
        raise AnalysisError(f"y_train is shaped {Y.shape} but train has {Xtr.shape[1]} samples (axis 1).")
    Y = Y.reshape(len(Y), -1)
    alphas = positive_grid(alphas, "alphas")
    dev = float64_device(device)
    X, shift = _shifted(Xtr, dev)
    sums = _FoldSums(X, shift, torch.as_tensor(Y, device=dev), [torch.arange(X.shape[1], device=dev)])
    sol = sums.equations(()).path()
    grid = torch.as_tensor(alphas, device=dev)[None, :, None].expand(X.shape[0], -1, Y.shape[1])
    Xt = torch.as_tensor(Xte, device=dev).to(torch.float64) - shift[:, None]
    return RidgePath(alphas, sol.coef(grid).cpu().numpy(),
                     sol.eq.ybar.expand(X.shape[0], len(alphas), -1).cpu().numpy(),
                     sol.predict(Xt, grid).cpu().numpy())


def ridge_cv(X: np.ndarray, Y: np.ndarray, folds: np.ndarray, *, alphas=DEFAULT_ALPHAS,
             target_sets: list[slice] | None = None, scale_targets: bool = False, device="cpu",
             tick: Tick = no_tick) -> tuple[np.ndarray, np.ndarray]:
    """Out-of-fold ridge predictions with alpha chosen by inner CV on the other folds.

    Parameters
    ----------
    X : ndarray, shape (layers, n, dim)
    Y : ndarray, shape (n, k)
        Targets: ±1 indicator columns for classification, values for regression.
    folds : ndarray, shape (n,)
        Outer test fold of each sample (0 … cv-1).
    alphas : sequence of float > 0
    target_sets : list of slice, optional
        Column groups of ``Y`` that get their own alpha (the target sets given to
        :meth:`RidgeProbe.cross_validate`); default one set.
    scale_targets : bool
        Weigh the inner squared error of each column by 1 / its training variance
        (regression with targets on different scales).
    device : "cpu", None, "auto", "cuda" or torch.device
        As :func:`ridge_path`.
    tick : callable
        ``tick(n)`` after each outer fold's refit of ``n`` (layer, target set) pairs.

    Returns
    -------
    decision : ndarray, shape (layers, n, k)
        Out-of-fold predictions (decision values for classification).
    chosen : ndarray, shape (layers, cv, sets)
        Chosen alpha per layer, fold and target set.
    """
    alphas = positive_grid(alphas, "alphas")
    n_folds = int(folds.max()) + 1
    check_inner_folds(len(alphas), n_folds, "alpha")
    target_sets = target_sets or [slice(0, Y.shape[1])]
    dev = float64_device(device)
    n_layers, n, dim = X.shape
    Yt = torch.as_tensor(Y, dtype=torch.float64, device=dev)
    blocks = [torch.as_tensor(np.flatnonzero(folds == k), device=dev) for k in range(n_folds)]
    grid_a = torch.as_tensor(alphas, device=dev)
    decision = np.empty((n_layers, n, Y.shape[1]))
    chosen = np.empty((n_layers, n_folds, len(target_sets)))
    step = _layer_batch(n_layers, n, dim, n_folds)
    for start in range(0, n_layers, step):
        Xc, shift = _shifted(X[start:start + step], dev)
        L = Xc.shape[0]
        sums = _FoldSums(Xc, shift, Yt, blocks)
        grid = grid_a[None, :, None].expand(L, -1, Y.shape[1])
        sse = torch.zeros(n_folds, L, len(alphas), Y.shape[1], dtype=torch.float64, device=dev)
        if len(alphas) > 1:
            for j, k in combinations(range(n_folds), 2):
                sol = sums.equations((j, k)).path()
                for val, outer in ((j, k), (k, j)):
                    pred = sol.predict(Xc[:, blocks[val]], grid)
                    sse[outer] += ((pred - Yt[blocks[val]]) ** 2).sum(2)
        for k in range(n_folds):
            train = torch.cat([blocks[b] for b in range(n_folds) if b != k])
            weight = 1 / Yt[train].var(0, correction=0) if scale_targets else torch.ones_like(Yt[0])
            picked = []
            for s, cols in enumerate(target_sets):
                crit = (sse[k][..., cols] * weight[cols]).sum(-1)           # (L, A)
                # ties go to the strongest regularisation
                best = len(alphas) - 1 - crit.flip(-1).argmin(-1)
                picked.append((cols, grid_a[best]))
                chosen[start:start + L, k, s] = alphas[best.cpu().numpy()]
            # one alpha per layer and set is left: a Cholesky solve is cheaper than another eigh
            eq = sums.equations((k,))
            pred = eq.predict(Xc[:, blocks[k]], eq.solve(picked)) + eq.ybar
            decision[start:start + L, blocks[k].cpu().numpy()] = pred.cpu().numpy()
            tick(L * len(target_sets))
    return decision, chosen


@dataclass(frozen=True)
class RidgeProbe(Probe):
    """Linear ridge probe (RidgeClassifier-style ±1 targets for classes), alpha chosen per fold.

    Every task; float64 torch on the CPU or CUDA (not on MPS, which has no float64).

    Parameters
    ----------
    alphas : sequence of float > 0
        Regularisation path; every alpha costs about as much as one.

    Raises
    ------
    OptionError
        ``alphas`` is empty or holds a number ≤ 0.
    """

    alphas: tuple = field(default=DEFAULT_ALPHAS)
    name = "ridge"
    tasks = frozenset({"multiclass", "multilabel", "regression"})

    def __post_init__(self):
        positive_grid(self.alphas, "alphas")

    def check(self, *, task: str, cv: int) -> None:
        super().check(task=task, cv=cv)
        check_inner_folds(len(self.alphas), cv, "alpha")

    def device_for(self, device) -> torch.device:
        return float64_device(device)

    def inner_description(self) -> str:
        return (f"alpha chosen per layer and fold among {len(self.alphas)} values by inner CV on the other "
                "folds (squared error)")

    def cross_validate(self, X: np.ndarray, targets: list[np.ndarray], folds: np.ndarray, *, task: str,
                       seed: int, groups, device, tick: Tick) -> list[tuple[np.ndarray, dict]]:
        """Out-of-fold decisions (layers, n, k) and chosen ``{"alpha": (layers, cv)}`` per target set.

        All target sets share each layer's decompositions; each gets its own alpha.
        """
        coded = [2 * T - 1 if task != "regression" else T for T in targets]
        edges = np.cumsum([0] + [T.shape[1] for T in coded])
        sets = [slice(a, b) for a, b in zip(edges[:-1], edges[1:])]
        decision, chosen = ridge_cv(X, np.hstack(coded), folds, alphas=self.alphas, target_sets=sets,
                                    scale_targets=task == "regression", device=device, tick=tick)
        return [(decision[..., cols], {"alpha": chosen[..., s]}) for s, cols in enumerate(sets)]
