"""Probing metrics: class metrics as scikit-learn defines them, segment → clip averaging, fold intervals."""

import warnings

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, balanced_accuracy_score, f1_score

from m2v_lab.probing.metrics import aggregate, fold_interval, score


def test_class_metrics_match_scikit_learn_including_absent_classes():
    rng = np.random.default_rng(4)
    y, pred = rng.integers(0, 4, 50), rng.integers(0, 5, 50)  # class 4 only predicted, never true
    y[y == 2] = 1  # class 2 absent from both
    ours = score("multiclass", np.eye(5)[y], np.eye(5)[pred])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert ours["balanced_accuracy"] == pytest.approx(balanced_accuracy_score(y, pred))
    assert ours["accuracy"] == pytest.approx(accuracy_score(y, pred))
    assert ours["macro_f1"] == pytest.approx(f1_score(y, pred, average="macro"))


def test_aggregate_averages_segments_in_first_seen_clip_order():
    values = np.arange(12.0).reshape(6, 2)
    out = aggregate(values, np.array([7, 7, 3, 3, 3, 9]))
    np.testing.assert_allclose(out, [[1, 2], [6, 7], [10, 11]])


def test_fold_interval_is_wider_than_the_naive_standard_error():
    values = np.array([0.6, 0.7, 0.65, 0.75, 0.7])
    mean, sd, low, high = fold_interval(values, 0.25)
    naive = 2.776 * sd / np.sqrt(5)
    assert mean == pytest.approx(0.68) and high - mean > 1.2 * naive and mean - low == pytest.approx(high - mean)
    assert np.isnan(fold_interval(np.array([0.5]), 0.25)[1])
