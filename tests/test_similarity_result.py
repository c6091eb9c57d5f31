"""SimilarityResult (result.py): labelled frames, and what a notebook shows of it."""

import numpy as np
import pytest

from m2v_lab.errors import OptionError
from m2v_lab.similarity import layer_similarity, similarity_ci
from tests.test_similarity_inputs import clip_ids, features


@pytest.fixture
def A():
    return np.random.default_rng(3).standard_normal((3, 30, 4))


def test_notebook_view_shows_title_layers_and_how_clips_were_paired(A):
    ids = clip_ids(30)
    res = layer_similarity(features(A, ids), features(A[:, ::-1], ids[::-1]))
    html = res._repr_html_()
    assert "CKA (linear, debiased), n = 30" in html and "layer_2" in html
    assert "paired by clip id (B reordered to A&#x27;s clip order)" in html


def test_notebook_view_says_what_the_interval_is(A):
    assert "95% subsample: 10 draws" in similarity_ci(A, n_resamples=10)._repr_html_()


@pytest.mark.parametrize("what,match", [("value", "what='value'"), ("p_values", "permutation_test"),
                                        ("ci_low", "similarity_ci")])  # fmt: skip
def test_to_frame_of_an_array_not_held_raises_option_error(A, what, match):
    with pytest.raises(OptionError, match=match):
        layer_similarity(A).to_frame(what)



def test_long_frame_has_one_row_per_layer_pair_with_value_interval_and_p_values(A):
    from m2v_lab.similarity import permutation_test

    res = permutation_test(A, A[:2, :, :3] + 0.1, n_permutations=9)
    long = res.to_frame("long")
    assert list(long.columns) == ["row", "col", "value", "ci_low", "ci_high", "p", "p_adjusted"]
    assert len(long) == 3 * 2 and long.attrs["n"] == 30
    cell = long[(long.row == "block_2") & (long.col == "block_1")].iloc[0]
    assert cell.value == res.values[2, 1] and cell.p == res.p_values[2, 1] and cell.p_adjusted == res.p_adjusted[2, 1]
    assert long[["ci_low", "ci_high"]].isna().all().all()  # this result holds no interval
    ci = similarity_ci(A, n_resamples=5).to_frame("long")
    np.testing.assert_array_equal(ci.ci_low.to_numpy().reshape(3, 3), similarity_ci(A, n_resamples=5).ci_low)
    assert ci.p.isna().all()


def test_wide_frame_of_adjusted_p_values(A):
    from m2v_lab.similarity import permutation_test

    res = permutation_test(A, n_permutations=9, correction="fdr")
    np.testing.assert_array_equal(res.to_frame("p_adjusted").to_numpy(), res.p_adjusted)
    with pytest.raises(OptionError, match="permutation_test"):
        layer_similarity(A).to_frame("p_adjusted")
