"""The reference solutions of notebooks 04 and 05 agree with the library helpers the notebooks use."""

import numpy as np

from m2v_lab.similarity import compare
from m2v_lab.solutions import nb04, nb05


def test_nb04_distance_profile_matches_the_library_on_symmetric_maps():
    rng = np.random.default_rng(0)
    x = rng.random((6, 6))
    values = (x + x.T) / 2
    np.fill_diagonal(values, 1.0)
    np.testing.assert_allclose(nb04.distance_profile(values), compare.distance_profile(values).to_numpy())
    assert nb04.distance_profile(values).shape == (5,)


def test_nb04_distance_profile_skips_nan_cells():
    values = np.array([[1.0, np.nan, 0.5], [np.nan, 1.0, 0.7], [0.5, 0.7, 1.0]])
    np.testing.assert_allclose(nb04.distance_profile(values), [0.7, 0.5])


def test_nb05_best_match_is_the_argmax_of_each_row_and_never_a_nan_cell():
    values = np.array([[0.2, 0.9, 0.1], [np.nan, 0.4, 0.8], [0.5, np.nan, 0.1]])
    np.testing.assert_array_equal(nb05.best_match(values), [1, 2, 0])
    np.testing.assert_array_equal(nb05.best_match(values), compare.layer_matching(values).match_index)
