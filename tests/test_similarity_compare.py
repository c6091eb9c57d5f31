import numpy as np
import pandas as pd
import pytest

from m2v_lab.errors import AnalysisError
from m2v_lab.similarity import SimilarityResult, compare


def _result(values, rows=None, cols=None):
    values = np.asarray(values, dtype=float)
    rows = rows or tuple(f"a{i}" for i in range(values.shape[0]))
    cols = cols or tuple(f"b{j}" for j in range(values.shape[1]))
    return SimilarityResult(values=values, rows=rows, cols=cols, measure="cka", estimator="debiased", method="gram",
                            n=10)


def test_distance_profile_averages_each_off_diagonal():
    values = np.array([[1.0, 0.9, 0.5], [0.9, 1.0, 0.7], [0.5, 0.7, 1.0]])
    profile = compare.distance_profile(_result(values))
    assert list(profile.index) == [1, 2] and profile.index.name == "distance"
    np.testing.assert_allclose(profile.to_numpy(), [0.8, 0.5])


def test_distance_profile_skips_nan_and_refuses_non_square_maps():
    values = np.array([[1.0, np.nan, 0.5], [np.nan, 1.0, 0.7], [0.5, 0.7, 1.0]])
    np.testing.assert_allclose(compare.distance_profile(values).to_numpy(), [0.7, 0.5])
    with pytest.raises(AnalysisError, match="square"):
        compare.distance_profile(np.ones((2, 3)))
    assert compare.distance_profile(np.ones((1, 1))).empty


def test_adjacent_vs_distant_weighs_every_pair_once():
    values = np.array([[1, 0.9, 0.6, 0.2], [0.9, 1, 0.8, 0.4], [0.6, 0.8, 1, 0.7], [0.2, 0.4, 0.7, 1]])
    adjacent, distant = compare.adjacent_vs_distant(values)
    assert adjacent == pytest.approx((0.9 + 0.8 + 0.7) / 3)
    assert distant == pytest.approx((0.6 + 0.4 + 0.2) / 3)
    with pytest.raises(AnalysisError, match="at least 3"):
        compare.adjacent_vs_distant(np.ones((2, 2)))


def test_layer_matching_names_the_best_column_and_relative_depths():
    values = np.array([[0.2, 0.9, 0.1], [0.3, 0.4, 0.8]])
    table = compare.layer_matching(_result(values, rows=("x0", "x1"), cols=("y0", "y1", "y2")))
    assert isinstance(table, pd.DataFrame)
    assert table.match.tolist() == ["y1", "y2"] and table.match_index.tolist() == [1, 2]
    np.testing.assert_allclose(table.value, [0.9, 0.8])
    np.testing.assert_allclose(table.margin, [0.7, 0.4])
    np.testing.assert_allclose(table.depth, [0.0, 1.0])
    np.testing.assert_allclose(table.match_depth, [0.5, 1.0])


def test_layer_matching_leaves_nan_rows_unmatched_and_skips_nan_cells():
    values = np.array([[np.nan, np.nan], [np.nan, 0.3]])
    table = compare.layer_matching(values)
    assert table.match_index.tolist() == [-1, 1]
    assert np.isnan(table.value[0]) and table.value[1] == pytest.approx(0.3)
    assert table.margin.isna().all()          # one finite cell: no runner-up


@pytest.mark.parametrize("a, b, verdict", [((0.6, 0.8), (0.2, 0.5), "above"), ((0.1, 0.2), (0.3, 0.4), "below"),
                                           ((0.3, 0.6), (0.5, 0.7), "overlap")])
def test_interval_verdict(a, b, verdict):
    assert compare.interval_verdict(*a, *b) == verdict


def test_estimators_by_n_shows_the_biased_null_shrinking_and_the_debiased_null_at_zero():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((400, 64))
    Y = X @ rng.standard_normal((64, 32)) + rng.standard_normal((400, 32))
    table = compare.estimators_by_n(X, Y, [20, 400], repeats=8, seed=0)
    assert len(table) == 8 and set(table.pairing) == {"paired", "shuffled"}
    null = table[table.pairing == "shuffled"].set_index(["estimator", "n"])["mean"]
    assert null["biased", 20] > null["biased", 400] > 0
    assert abs(null["debiased", 20]) < 0.05 and abs(null["debiased", 400]) < 0.01
    paired = table[table.pairing == "paired"].set_index(["estimator", "n"])["mean"]
    assert paired["biased", 20] > paired["debiased", 20]
    with pytest.raises(AnalysisError, match="subset size"):
        compare.estimators_by_n(X, Y, [2])
