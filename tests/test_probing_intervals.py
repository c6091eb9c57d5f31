"""Intervals of probe scores: a bootstrap over groups for class metrics, t on an unbounded scale for the others."""

import numpy as np
import pandas as pd
import pytest

from m2v_lab.probing import RidgeProbe, probe_layers
from m2v_lab.probing.intervals import class_replicates, scaled_interval
from tests.synthetic import flipped_groups, tracks

ALPHAS = (0.1, 10.0, 1000.0)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_a_bootstrap_draw_of_every_group_once_gives_the_reported_means():
    # the replicate statistic is the reported one (mean of fold × seed scores), recomputed from clip predictions
    X, y, groups = tracks(layers=3, informative=1, n_tracks=30)
    res = probe_layers(X, y, groups=groups, probe=RidgeProbe(ALPHAS), control_task=True, seeds=(0, 1))
    for source in ("model", "control"):
        once = class_replicates(res.predictions[source], np.ones((1, 30)), 4)
        means = res.summary(source=source).set_index(["metric", "layer"])["mean"]
        for metric, values in once.items():
            np.testing.assert_allclose(values[0], means[metric].to_numpy(), rtol=0, atol=1e-12)
    majority = class_replicates(res.predictions["majority"], np.ones((1, 30)), 4)
    references = res.references.query("name == 'majority'").groupby("metric")["value"].mean()
    assert {m: v[0, 0] for m, v in majority.items()} == pytest.approx(references.to_dict())


def test_class_metric_intervals_stay_in_0_1_contain_the_mean_and_say_what_they_are():
    # a near-perfect layer, a chance layer, the control task and majority: fold-score t intervals left [0, 1] here
    X, y, groups = tracks(layers=2, informative=1, n_tracks=30, signal=6.0)
    res = probe_layers(X, y, groups=groups, probe=RidgeProbe(ALPHAS), control_task=True)
    table = pd.concat([res.summary(source=None), res.baselines.query("name != 'chance'")])
    assert (table["ci_low"] >= 0).all() and (table["ci_high"] <= 1).all()
    assert ((table["ci_low"] <= table["mean"] + 1e-12) & (table["mean"] <= table["ci_high"] + 1e-12)).all()
    assert res.summary().query("layer == 1 and metric == 'accuracy'")["mean"].item() > 0.95
    assert set(table["interval"]) == {"bootstrap over 30 groups (2000 resamples, percentile)"}
    chance = res.baselines.query("name == 'chance'")
    assert chance[["ci_low", "ci_high"]].isna().all().all() and chance["interval"].str.startswith("none").all()


def test_class_metric_interval_covers_a_known_accuracy_at_about_the_nominal_rate():
    # 100 data sets whose accuracy on new groups is 0.75, errors coming in whole groups (1000: coverage 0.929)
    covered, inside = [], []
    for seed in range(100):
        X, y, groups = flipped_groups(seed=seed)
        row = probe_layers(X, y, groups=groups, probe=RidgeProbe((1.0,))).summary().query("metric == 'accuracy'")
        low, high = row["ci_low"].item(), row["ci_high"].item()
        covered.append(low <= 0.75 <= high)
        inside.append(0 <= low <= row["mean"].item() <= high <= 1)
    assert all(inside) and 0.86 <= np.mean(covered) <= 0.99


@pytest.mark.parametrize("metric, values, bounds", [
    ("roc_auc", [1.0, 0.99, 1.0, 0.97, 1.0], (0, 1)),
    ("average_precision", [0.02, 0.0, 0.05, 0.01, 0.03], (0, 1)),
    ("pearson_r", [0.99, 0.97, 1.0, 0.995, 0.98], (-1, 1)),
    ("r2", [0.99, 0.95, 1.0, 0.97, 0.999], (-np.inf, 1)),
])
def test_label_and_value_metric_intervals_stay_within_the_metric_range(metric, values, bounds):
    mean, sd, low, high, label = scaled_interval(np.array(values), 0.25, 0.95, metric)
    assert bounds[0] <= low <= mean <= high <= bounds[1] and mean == pytest.approx(np.mean(values))
    assert label.startswith("Nadeau–Bengio t on the")
    # the same scores all at a bound: the interval is that bound
    assert scaled_interval(np.full(5, bounds[1]), 0.25, 0.95, metric)[2:4] == (bounds[1], bounds[1])
