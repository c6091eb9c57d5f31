"""SimilarityExplorer (widgets/similarity.py): its options are checked like the functions' options."""

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from m2v_lab import Features  # noqa: E402
from m2v_lab.errors import OptionError  # noqa: E402
from m2v_lab.widgets import SimilarityExplorer  # noqa: E402


@pytest.fixture
def feats():
    data = np.random.default_rng(0).standard_normal((3, 12, 4)).astype(np.float32)
    return Features(layer_names=["pre_transformer", "block_1", "block_2"], layer_indices=[0, 1, 2],
                    clips=[f"c{i}" for i in range(12)], source_index=range(12),
                    meta={"hidden_size": 4, "pool": "mean"}, pooled=data)


@pytest.mark.parametrize("options,match", [({"measure": "cca"}, "measure='cca'"),
                                           ({"method": "mds"}, r"method='mds': use one of \('pca', 'tsne'"),
                                           ({"label": "genre"}, r"label='genre'.*choose from \[\]")])  # fmt: skip
def test_bad_explorer_options_raise_option_errors(feats, options, match):
    with pytest.raises(OptionError, match=match):
        SimilarityExplorer(feats, **options)


def test_the_cells_take_the_colours_the_heatmap_figure_gives_them(feats):
    from matplotlib.colors import to_hex
    from matplotlib.figure import Figure

    from m2v_lab.plot import cell_colours, colour_scale_css, similarity_heatmap

    view = SimilarityExplorer(feats)
    values = view.result.values.copy()
    values[0, 1], values[1, 0], values[2, 2] = -0.3, np.nan, 1.4  # below the scale, a constant layer, above it
    view.result.values[...] = values
    image = similarity_heatmap(view.result, ax=Figure().add_subplot()).images[0]
    drawn = [[to_hex(c) for c in row] for row in image.to_rgba(image.get_array())]
    assert cell_colours(values).tolist() == drawn
    assert cell_colours(values)[1, 0] == "#d9d9d9"  # NaN: grey, as in the figure
    assert colour_scale_css(steps=3) == f"linear-gradient(to right, {', '.join(cell_colours([0, 0.5, 1]))})"
