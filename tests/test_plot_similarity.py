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


def test_mask_nonsignificant_blanks_cells_above_the_level_and_leaves_them_unannotated():
    from m2v_lab.similarity import permutation_test

    rng = np.random.default_rng(3)
    x = rng.standard_normal((40, 4))
    A = np.stack([x, x + 0.5 * rng.standard_normal((40, 4)), rng.standard_normal((40, 4))])
    res = permutation_test(A, n_permutations=19)
    hidden = res.p_adjusted > 0.05  # the unrelated layer 2; NaN on the diagonal: not tested, drawn
    assert hidden.sum() == 4 and not hidden[0, 1]
    ax = similarity_heatmap(res, mask_nonsignificant=0.05, annotate=True)
    np.testing.assert_array_equal(~ax.images[1].get_array().mask, hidden)
    assert len(ax.texts) == 9 - 4 and "blank: FWER-adjusted p > 0.05" in ax.get_title()
    plt.close(ax.figure)


@pytest.mark.parametrize("level,match", [(0.05, "needs p-values"), (5, "mask_nonsignificant=5")])
def test_mask_nonsignificant_needs_p_values_and_a_level(result, level, match):
    from m2v_lab.errors import OptionError

    with pytest.raises(OptionError, match=match):
        similarity_heatmap(result, mask_nonsignificant=level)


def test_heatmap_scale_stretches_over_the_map_on_request_and_the_title_names_the_models():
    import pandas as pd

    from m2v_lab.features import Features

    rng = np.random.default_rng(3)
    x = rng.standard_normal((30, 8))
    X = np.stack([x, x + 0.3 * rng.standard_normal((30, 8))]).astype(np.float32)
    table = pd.DataFrame({"clip_id": [f"c{i}" for i in range(30)]})
    feats = [Features(pooled=X, layer_names=["pre_transformer", "block_1"], layer_indices=[0, 1],
                      clips=list(table["clip_id"]), source_index=np.arange(30), clip_table=table,
                      meta={"model": name, "trained": trained}) for name, trained in (("m", True), ("twin", False))]
    res = layer_similarity(*feats)
    ax = similarity_heatmap(res, vmin="data")
    low = ax.images[0].get_clim()[0]
    assert 0.0 < low <= np.nanmin(res.values) and round(low * 20) == pytest.approx(low * 20)
    assert ax.get_title().startswith("m · trained vs twin · untrained\nCKA")
    assert layer_similarity(feats[0]).title.startswith("m · trained\nCKA")
    with pytest.raises(Exception, match="vmin"):
        similarity_heatmap(res, vmin="auto")
    plt.close("all")
