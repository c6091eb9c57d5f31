"""plot/similarity.py: similarity_heatmap's layer ticks, fixed colour scale, and title with estimator and n."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from m2v_lab.plot.similarity import similarity_heatmap  # noqa: E402
from m2v_lab.similarity import layer_similarity  # noqa: E402


@pytest.fixture
def result():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((40, 6))
    return layer_similarity(np.stack([x, x + rng.standard_normal((40, 6)), 0.01 * x]))


def test_heatmap_draws_on_given_axes_with_fixed_scale_and_informative_title(result):
    fig, ax = plt.subplots()
    out = similarity_heatmap(result, ax)
    assert out is ax
    assert ax.images[0].get_clim() == (0.0, 1.0)
    assert "debiased" in ax.get_title() and "n = 40" in ax.get_title()
    plt.close(fig)


def test_layers_are_ticked_as_layer_label_writes_them_with_zero_the_pre_transformer_state(result):
    ax = similarity_heatmap(result)
    assert [t.get_text() for t in ax.get_yticklabels()] == ["0 (pre)", "1", "2"]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["0 (pre)", "1", "2"]
    plt.close(ax.figure)


def test_heatmap_scale_does_not_follow_the_data():
    rng = np.random.default_rng(1)
    small = layer_similarity(rng.standard_normal((3, 50, 40)))  # values near 0 off the diagonal
    ax = similarity_heatmap(small)
    assert ax.images[0].get_clim() == (0.0, 1.0)
    plt.close(ax.figure)


def test_heatmap_leaves_nan_cells_blank():
    A = np.random.default_rng(2).standard_normal((2, 40, 3))
    A[1] = 1.0
    with pytest.warns(RuntimeWarning):
        res = layer_similarity(A, measure="rsa")
    ax = similarity_heatmap(res, annotate=True)
    texts = [t.get_text() for t in ax.texts]
    assert texts == ["1.00"]  # the NaN cells stay unlabelled
    assert "RSA" in ax.get_title()
    plt.close(ax.figure)
