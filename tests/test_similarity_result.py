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

