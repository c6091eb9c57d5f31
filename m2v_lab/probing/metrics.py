"""Metrics per task, segment → clip aggregation, reference baselines and fold-score intervals."""

from __future__ import annotations

import numpy as np
from scipy import stats
from sklearn.metrics import average_precision_score, roc_auc_score

METRICS = {
    "multiclass": ("accuracy", "balanced_accuracy", "macro_f1"),
    "multilabel": ("roc_auc", "average_precision"),
    "regression": ("r2", "pearson_r"),
}
PRIMARY = {"multiclass": "accuracy", "multilabel": "roc_auc", "regression": "r2"}


def aggregate(values: np.ndarray, clips: np.ndarray) -> np.ndarray:
    """Mean of ``values`` (..., m, k) over the segments of each clip → (..., clips, k), clips in first-seen order."""
    _, first, inverse = np.unique(clips, return_index=True, return_inverse=True)
    order = np.argsort(first)
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    inverse = rank[inverse]
    by_segment = np.moveaxis(values, -2, 0)
    sums = np.zeros((len(first),) + by_segment.shape[1:])
    np.add.at(sums, inverse, by_segment)
    return np.moveaxis(sums, 0, -2) / np.bincount(inverse)[:, None]


def first_of_clip(values: np.ndarray, clips: np.ndarray) -> np.ndarray:
    """Row of the first segment of each clip (clips in first-seen order): the clip's label."""
    _, first = np.unique(clips, return_index=True)
    return values[np.sort(first)]


def _class_metrics(y: np.ndarray, pred: np.ndarray, n_classes: int) -> dict[str, float]:
    """accuracy, balanced accuracy and macro-F1 exactly as scikit-learn defines them, from one confusion matrix."""
    conf = np.bincount(y * n_classes + pred, minlength=n_classes**2).reshape(n_classes, n_classes)
    tp, true, predicted = np.diag(conf), conf.sum(1), conf.sum(0)
    in_truth = true > 0
    in_union = in_truth | (predicted > 0)
    f1 = 2 * tp[in_union] / (true[in_union] + predicted[in_union])
    return {"accuracy": tp.sum() / len(y), "balanced_accuracy": float((tp[in_truth] / true[in_truth]).mean()),
            "macro_f1": float(f1.mean())}


def score(task: str, truth: np.ndarray, decision: np.ndarray) -> dict[str, float]:
    """Metrics of one fold.

    Parameters
    ----------
    task : {"multiclass", "multilabel", "regression"}
    truth : ndarray, shape (m, k)
        One-hot classes, binary labels or target values.
    decision : ndarray, shape (m, k)
        Class scores (argmax is the prediction), label scores, or predicted values.
    """
    if task == "multiclass":
        return _class_metrics(truth.argmax(1), decision.argmax(1), truth.shape[1])
    if task == "multilabel":
        # a label without both classes in this fold has no AUC: average over the others
        valid = [j for j in range(truth.shape[1]) if 0 < truth[:, j].sum() < len(truth)]
        if not valid:
            return {"roc_auc": np.nan, "average_precision": np.nan}
        return {"roc_auc": float(np.mean([roc_auc_score(truth[:, j], decision[:, j]) for j in valid])),
                "average_precision": float(np.mean([average_precision_score(truth[:, j], decision[:, j])
                                                    for j in valid]))}
    resid = ((truth - decision) ** 2).sum(0)
    total = ((truth - truth.mean(0)) ** 2).sum(0)
    dc, tc = decision - decision.mean(0), truth - truth.mean(0)
    norm = np.sqrt((dc**2).sum(0) * (tc**2).sum(0))
    # a constant prediction has no correlation; count it as 0
    r = np.divide((dc * tc).sum(0), norm, out=np.zeros_like(norm), where=norm > 0)
    return {"r2": float(np.mean(1 - resid / total)), "pearson_r": float(r.mean())}


def reference_scores(task: str, train_truth: np.ndarray, test_truth: np.ndarray) -> dict[str, dict[str, float]]:
    """Chance and majority (or mean-predictor) metrics on one fold, given clip-level truths (m, k).

    ``majority`` predicts the training fold's most frequent class (multilabel:
    each label's training prevalence, a constant score).  ``chance`` is the
    expected score of uniform random guessing: 1/K accuracy and balanced
    accuracy, macro-F1 ``mean_c 2 p_c / (1 + K p_c)`` over the K classes (ratio of
    expectations; p_c = test share), ROC-AUC 0.5 and average precision = label
    prevalence.  Regression gets the training mean as ``mean predictor``.
    """
    if task == "regression":
        return {"mean predictor": score(task, test_truth, np.broadcast_to(train_truth.mean(0), test_truth.shape))}
    if task == "multiclass":
        k = test_truth.shape[1]
        share = test_truth.mean(0)
        chance = {"accuracy": 1 / k, "balanced_accuracy": 1 / k,
                  "macro_f1": float(np.mean(2 * share / (1 + k * share)))}
        majority = np.zeros_like(test_truth)
        majority[:, train_truth.sum(0).argmax()] = 1
    else:
        prevalence = test_truth.mean(0)
        valid = (prevalence > 0) & (prevalence < 1)
        chance = {"roc_auc": 0.5, "average_precision": float(prevalence[valid].mean()) if valid.any() else np.nan}
        majority = np.broadcast_to(train_truth.mean(0), test_truth.shape)
    return {"chance": chance, "majority": score(task, test_truth, majority)}


def fold_interval(values: np.ndarray, test_train_ratio: float,
                  level: float = 0.95) -> tuple[float, float, float, float]:
    """Mean, sd and a ``level`` interval of cross-validated fold scores.

    Fold scores share training data, so their plain standard error is too
    small; the interval uses the Nadeau–Bengio corrected variance
    ``(1/J + n_test/n_train) · sd²`` over the ``J`` fold × seed scores with a
    t quantile on ``J - 1`` degrees of freedom (Bouckaert & Frank 2004 for
    repeated CV).

    Returns
    -------
    mean, sd, low, high : float
        NaN sd and bounds when fewer than two scores exist.
    """
    values = np.asarray(values, dtype=np.float64)
    values = values[np.isfinite(values)]
    if values.size == 0:
        return np.nan, np.nan, np.nan, np.nan
    mean = float(values.mean())
    if values.size < 2:
        return mean, np.nan, np.nan, np.nan
    sd = float(values.std(ddof=1))
    half = stats.t.ppf(0.5 + level / 2, values.size - 1) * sd * np.sqrt(1 / values.size + test_train_ratio)
    return mean, sd, mean - half, mean + half
