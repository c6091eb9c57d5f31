"""Reference solutions of notebooks 02 and 03: selectivity by hand, and the layer weights' KL from uniform."""

import warnings

import numpy as np
import pytest

from m2v_lab.probing import LayerSumProbe, RidgeProbe, probe_layers
from m2v_lab.solutions import nb02, nb03
from tests import synthetic

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_selectivity_by_hand_matches_probe_result_selectivity():
    X, y, groups = synthetic.tracks(layers=3, n_tracks=30, segments=2, dim=6, classes=3, informative=1)
    result = probe_layers(X, y, groups=groups, probe=RidgeProbe((1.0, 100.0)), control_task=True, seeds=(0, 1))
    mine = nb02.selectivity(result.scores)
    assert mine.shape == (3,)
    np.testing.assert_allclose(mine, result.selectivity("accuracy")["selectivity"], atol=1e-12)
    np.testing.assert_allclose(nb02.selectivity(result.scores, "macro_f1"),
                               result.selectivity("macro_f1")["selectivity"], atol=1e-12)
    assert mine.argmax() == 1  # the informative layer carries the property beyond what the probe memorises


def test_selectivity_is_in_layer_order_whatever_the_row_order():
    X, y, groups = synthetic.tracks(layers=3, n_tracks=30, segments=2, dim=6, classes=3, informative=2)
    result = probe_layers(X, y, groups=groups, probe=RidgeProbe((1.0,)), control_task=True)
    shuffled = result.scores.sample(frac=1.0, random_state=0)
    np.testing.assert_allclose(nb02.selectivity(shuffled), nb02.selectivity(result.scores))


def test_kl_from_uniform_ends_of_the_scale_and_the_median_over_fits():
    assert nb03.kl_from_uniform(np.full((4, 5), 0.2)) == 0
    assert nb03.kl_from_uniform([[1.0, 0.0, 0.0, 0.0]]) == pytest.approx(np.log(4))  # 0 · log 0 taken as 0
    w = np.array([[0.5, 0.5, 0.0, 0.0], [0.25] * 4, [1.0, 0.0, 0.0, 0.0]])
    assert nb03.kl_from_uniform(w) == pytest.approx(np.log(2))  # median of 0, log 2, log 4


def test_kl_from_uniform_matches_layer_sum_probe():
    X, y, groups = synthetic.tracks(layers=4, n_tracks=40, segments=2, dim=8, classes=3, informative=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        probe = LayerSumProbe(cv=4, lr=2e-2, max_epochs=20, patience=5, compare=False).fit(X, y, groups=groups)
    assert nb03.kl_from_uniform(probe.weights_) == pytest.approx(probe.kl_from_uniform_, rel=1e-6)
