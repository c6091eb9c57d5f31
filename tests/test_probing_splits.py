"""Outer folds (grouped whenever groups are known) and control-task labels."""

import numpy as np
import pandas as pd
import pytest

from m2v_lab.errors import AnalysisError, OptionError
from m2v_lab.probing import RidgeProbe, make_folds, probe_layers
from m2v_lab.probing.inputs import encode_labels
from m2v_lab.probing.splits import control_codes, control_split

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


def test_control_split_spreads_each_groups_clips_over_folds_keeps_clips_whole_and_drops_single_clip_groups():
    types = np.repeat(np.arange(13), 8)       # 13 groups of 4 clips of 2 segments…
    members = np.repeat(np.arange(52), 2)
    types[-2:] = 13                           # …but the last clip is a group of its own
    rows, folds = control_split(types, members, cv=3, seed=0)
    assert set(types[rows]) == set(range(13)) and len(rows) == len(types) - 2
    assert (pd.Series(folds).groupby(members[rows]).nunique() == 1).all()   # a clip's segments stay together
    spread = pd.Series(folds).groupby(types[rows]).nunique()
    assert (spread[:12] == 3).all() and spread[12] == 3                   # every group in every fold (3 clips left)
    sizes = np.bincount(folds) // 2
    assert sizes.max() - sizes.min() <= 1


def test_control_split_needs_enough_clips_in_groups_of_two_or_more():
    with pytest.raises(AnalysisError, match="needs groups with ≥ 2 members .* there are 4"):
        control_split(np.array([0, 0, 1, 1, 2, 3]), np.arange(6), cv=5, seed=0)


def test_control_labels_are_one_per_group_in_the_real_class_proportions():
    y = np.repeat(["a", "b", "c"], [40, 20, 20])
    types = np.arange(80) // 2                # 40 groups of 2; labels vary within some groups
    Y = control_codes(encode_labels(y, 80), types, seed=1)
    per_group = pd.DataFrame(Y).groupby(types).nunique()
    assert (per_group == 1).all().all()
    np.testing.assert_array_equal(Y[::2].sum(0), [20, 10, 10])
