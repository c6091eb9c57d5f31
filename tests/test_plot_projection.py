"""plot/projection.py: projection_scatter colours a 2-D map by a label column."""

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from m2v_lab.errors import AnalysisError
from m2v_lab.plot import projection_scatter
from m2v_lab.projection import project


def test_projection_scatter_draws_classes_missing_labels_and_numbers():
    coords = np.arange(12, dtype=float).reshape(6, 2)
    ax = projection_scatter(coords, pd.Series(["a", "b", None, "a", "b", "b"], name="letter"), ax=Figure().subplots())
    legend = ax.get_legend()
    assert [t.get_text() for t in legend.get_texts()] == ["missing (1)", "a", "b"]
    assert legend.get_title().get_text() == "letter"
    fig = Figure()
    projection_scatter(np.random.default_rng(0).standard_normal((30, 2)), pd.Series(np.arange(30), name="pitch"),
                       ax=fig.subplots(), max_classes=10)
    assert len(fig.axes) == 2 and fig.axes[1].get_ylabel() == "pitch"  # a colour bar, not 30 legend entries
    with pytest.raises(AnalysisError, match="3 labels for 6 points"):
        projection_scatter(coords, ["a", "b", "c"], ax=Figure().subplots())


def test_projection_scatter_takes_axis_labels_and_title_from_the_projection():
    proj = project(np.random.default_rng(1).standard_normal((9, 4)), name="block 6")
    ax = projection_scatter(proj, ax=Figure().subplots())
    assert ax.get_title() == "block 6 · PCA" and ax.get_xlabel().startswith("PC 1 (")
    assert ax.get_xticks().size == 0  # positions on a map have no units
