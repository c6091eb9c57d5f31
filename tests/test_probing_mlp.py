"""MLP probes: one head per layer trained side by side, early-stopped on a grouped validation split."""

import pandas as pd
import pytest

from m2v_lab.errors import OptionError
from m2v_lab.probing import MLPProbe, probe_layers
from tests.synthetic import tracks

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_mlp_curve_peaks_with_repeated_seeds():
    X, y, groups = tracks(layers=3, informative=2, dim=8, n_tracks=40, signal=3.0)
    probe = MLPProbe(hidden=16, lr=1e-2, max_epochs=25, patience=5)
    res = probe_layers(X, y, groups=groups, probe=probe, seeds=(0, 1), cv=4)
    assert res.best_layer() == 2
    assert res.summary().query("metric == 'accuracy' and layer == 2")["mean"].item() > 0.6
    assert sorted(res.scores["seed"].unique()) == [0, 1]
    assert (res.params[res.params["param"] == "best_epoch"]["value"] >= 1).all()


def test_mlp_with_dropout_gives_the_same_scores_for_the_same_seed():
    # dropout masks come from the probe's seeded generator, not torch's global one
    X, y, groups = tracks(layers=2, informative=1, dim=6, n_tracks=24)
    probe = MLPProbe(hidden=8, dropout=0.5, max_epochs=4, patience=2)
    a, b = (probe_layers(X, y, groups=groups, probe=probe, seeds=3, cv=3) for _ in range(2))
    pd.testing.assert_frame_equal(a.scores, b.scores)
    pd.testing.assert_frame_equal(a.params, b.params)


@pytest.mark.parametrize("kwargs, message", [
    ({"hidden": -1}, r"hidden=-1: give a whole number ≥ 0"),
    ({"batch_size": 0}, r"batch_size=0: give a whole number ≥ 1"),
    ({"patience": 2.5}, r"patience=2.5: give a whole number ≥ 1"),
    ({"dropout": 1.0}, r"dropout=1.0: give a number in \[0, 1\)"),
    ({"lr": 0}, r"lr=0: give a number in \(0, inf\)"),
    ({"val_fraction": 1}, r"val_fraction=1: give a number in \(0, 1\)"),
])
def test_settings_out_of_range_are_refused_when_the_probe_is_made(kwargs, message):
    with pytest.raises(OptionError, match=message):
        MLPProbe(**kwargs)
