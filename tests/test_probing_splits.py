"""Outer folds (grouped whenever groups are known) and control-task labels."""

import numpy as np
import pandas as pd
import pytest

from m2v_lab.errors import OptionError
from m2v_lab.probing import RidgeProbe, make_folds, probe_layers

ALPHAS = (0.1, 10.0, 1000.0)


@pytest.mark.parametrize("task", ["multiclass", "regression", "multilabel"])
def test_grouped_folds_never_share_a_group(task):
    rng = np.random.default_rng(0)
    groups = rng.integers(0, 25, 200)
    y = {"multiclass": groups % 3, "regression": rng.standard_normal(200),
         "multilabel": (rng.random((200, 3)) < 0.4).astype(int)}[task]
    for seed in range(3):
        folds = make_folds(y, groups=groups, cv=5, seed=seed)
        assert set(folds) == set(range(5))
        per_group = pd.Series(folds).groupby(groups).nunique()
        assert (per_group == 1).all()


@pytest.mark.usefixtures("one_torch_thread")
def test_control_task_stays_near_chance_when_labels_vary_within_groups():
    # pitch within instrument: every group holds every class, in the same order
    rng = np.random.default_rng(0)
    classes, n_groups = 4, 24
    y = np.tile(np.arange(classes), n_groups)
    groups = np.repeat(np.arange(n_groups), classes)
    X = rng.standard_normal((2, y.size, 8)) + 2.0 * np.eye(8)[y][None]
    res = probe_layers(X, y, groups=groups, probe=RidgeProbe(ALPHAS), control_task=True, seeds=(0, 1, 2))
    control = res.summary(source="control").query("metric == 'accuracy'")["mean"]
    assert (control < 1 / classes + 0.15).all()


@pytest.mark.parametrize("cv", [1, 2.0, True, "5"])
def test_cv_that_is_not_a_whole_number_of_two_or_more_folds_is_an_option_error(cv):
    with pytest.raises(OptionError, match=f"cv={cv!r}: give a whole number ≥ 2"):
        make_folds(np.arange(20) % 2, cv=cv)
