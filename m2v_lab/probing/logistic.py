"""Logistic-regression probes (scikit-learn), C chosen per layer and fold by inner CV on the other folds.

The nesting is the ridge one: the fit that leaves out folds ``j`` and ``k``
validates outer fold ``k`` on ``j`` and outer fold ``j`` on ``k``.  Each fit
walks the C grid upwards with warm starts.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from itertools import combinations

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from ..options import whole_number
from .options import check_inner_folds, positive_grid
from .protocol import Probe, Tick

DEFAULT_CS = tuple(np.logspace(-4, 2, 7).tolist())
_FLOOR = 1e-12


def _log_loss(task: str, truth: np.ndarray, prob: np.ndarray) -> float:
    prob = np.clip(prob, _FLOOR, 1 - _FLOOR)
    if task == "multiclass":
        return float(-np.log(prob[truth.astype(bool)]).sum())
    return float(-(truth * np.log(prob) + (1 - truth) * np.log(1 - prob)).sum())


def _fit_predict(task: str, X: np.ndarray, T: np.ndarray, evaluate: list[np.ndarray], Cs, max_iter: int,
                 caught: list) -> list[list[np.ndarray]]:
    """Probabilities ``[C][set] → (m, k)`` of logistic fits on (X, T) for each C (ascending)."""
    scaler = StandardScaler().fit(X)
    X = scaler.transform(X)
    evaluate = [scaler.transform(E) for E in evaluate]
    out = [[np.zeros((len(E), T.shape[1])) for E in evaluate] for _ in Cs]
    columns = [T.argmax(1)] if task == "multiclass" else [T[:, j] for j in range(T.shape[1])]
    for j, y in enumerate(columns):
        present = np.unique(y)
        if len(present) < 2:  # one class in this training set: predict it with certainty
            for p in (p for per_c in out for p in per_c):
                if task == "multiclass":
                    p[:, int(present[0])] = 1.0
                else:
                    p[:, j] = present[0]
            continue
        clf = LogisticRegression(max_iter=max_iter, warm_start=True)
        for c, C in enumerate(Cs):
            with warnings.catch_warnings(record=True) as seen:
                warnings.simplefilter("always", ConvergenceWarning)
                clf.set_params(C=C).fit(X, y)
            caught.extend(w for w in seen if issubclass(w.category, ConvergenceWarning))
            for p, E in zip(out[c], evaluate):
                prob = clf.predict_proba(E)
                if task == "multiclass":
                    p[:, clf.classes_.astype(int)] = prob
                else:
                    p[:, j] = prob[:, 1]
    return out


@dataclass(frozen=True)
class LogisticProbe(Probe):
    """Logistic regression (multinomial for classes, one per label for multilabel).

    Classes and labels only; scikit-learn on the CPU, whatever ``device`` says.

    Parameters
    ----------
    Cs : sequence of float > 0
        Inverse regularisation strengths to choose from (by validation log-loss).
    max_iter : int
        lbfgs iterations per fit.

    Raises
    ------
    OptionError
        ``Cs`` is empty or holds a number ≤ 0, or ``max_iter`` < 1.
    """

    Cs: tuple = field(default=DEFAULT_CS)
    max_iter: int = 1000
    name = "logistic"
    tasks = frozenset({"multiclass", "multilabel"})

    def __post_init__(self):
        positive_grid(self.Cs, "Cs")
        whole_number("max_iter", self.max_iter, minimum=1)

    def check(self, *, task: str, cv: int) -> None:
        super().check(task=task, cv=cv)
        check_inner_folds(len(self.Cs), cv, "C")

    def inner_description(self) -> str:
        return f"C chosen per layer and fold among {len(self.Cs)} values by inner CV on the other folds (log-loss)"

    def cross_validate(self, X: np.ndarray, targets: list[np.ndarray], folds: np.ndarray, *, task: str,
                       seed: int, groups, device, tick: Tick) -> list[tuple[np.ndarray, dict]]:
        """Out-of-fold probabilities (layers, n, k) and chosen ``{"C": (layers, cv)}`` per target set."""
        Cs = positive_grid(self.Cs, "Cs")
        n_folds = int(folds.max()) + 1
        blocks = [np.flatnonzero(folds == k) for k in range(n_folds)]
        caught: list = []
        results = []
        for T in targets:
            decision = np.empty(X.shape[:2] + (T.shape[1],))
            chosen = np.empty((X.shape[0], n_folds))
            for layer, XL in enumerate(X):
                loss = np.zeros((n_folds, len(Cs)))
                if len(Cs) > 1:
                    for j, k in combinations(range(n_folds), 2):
                        train = np.flatnonzero((folds != j) & (folds != k))
                        probs = _fit_predict(task, XL[train], T[train], [XL[blocks[j]], XL[blocks[k]]], Cs,
                                             self.max_iter, caught)
                        for c, (pj, pk) in enumerate(probs):
                            loss[k, c] += _log_loss(task, T[blocks[j]], pj)
                            loss[j, c] += _log_loss(task, T[blocks[k]], pk)
                for k in range(n_folds):
                    # ties go to the strongest regularisation (smallest C)
                    C = Cs[int(loss[k].argmin())]
                    train = np.flatnonzero(folds != k)
                    decision[layer, blocks[k]] = _fit_predict(task, XL[train], T[train], [XL[blocks[k]]], [C],
                                                              self.max_iter, caught)[0][0]
                    chosen[layer, k] = C
                    tick(1)
            results.append((decision, {"C": chosen}))
        if caught:
            warnings.warn(f"{len(caught)} logistic fits stopped at max_iter={self.max_iter} before converging; "
                          "raise max_iter or use smaller Cs.", ConvergenceWarning, stacklevel=3)
        return results
