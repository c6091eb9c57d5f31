"""Logistic probes: C chosen per layer and fold by inner CV on the other folds."""

import numpy as np
import pytest

from m2v_lab.errors import OptionError
from m2v_lab.probing import LogisticProbe, probe_layers
from tests.synthetic import tracks


def test_logistic_curve_peaks_and_reports_the_chosen_C_per_fold():
    X, y, groups = tracks(layers=3, informative=1, dim=6, n_tracks=30)
    res = probe_layers(X, y, groups=groups, probe=LogisticProbe(Cs=(0.01, 1.0)), cv=3)
    assert res.best_layer() == 1
    chosen = res.params[res.params["param"] == "C"]
    assert len(chosen) == 3 * 3 and set(chosen["value"]) <= {0.01, 1.0}


@pytest.mark.parametrize("kwargs, message", [
    ({"Cs": ()}, "Cs must be a non-empty list of positive numbers"),
    ({"Cs": (0.0, 1.0)}, "Cs must be a non-empty list of positive numbers"),
    ({"max_iter": 0}, r"max_iter=0: give a whole number ≥ 1"),
])
def test_settings_out_of_range_are_refused_when_the_probe_is_made(kwargs, message):
    with pytest.raises(OptionError, match=message):
        LogisticProbe(**kwargs)


def test_regression_is_refused_before_any_fit():
    X, _, groups = tracks(layers=2, informative=1)
    with pytest.raises(OptionError, match="probe='logistic' cannot do regression: it does multiclass, multilabel"):
        probe_layers(X, np.linspace(0, 1, X.shape[1]), groups=groups, probe="logistic")
