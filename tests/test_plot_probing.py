"""plot/probing.py: layer_curve and layer_weights draw what the probing results hold, layers labelled one way."""

from types import SimpleNamespace

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from m2v_lab.errors import AnalysisError, OptionError  # noqa: E402
from m2v_lab.layers import layer_label  # noqa: E402
from m2v_lab.plot.probing import layer_curve, layer_weights  # noqa: E402
from m2v_lab.probing import RidgeProbe, probe_layers  # noqa: E402


@pytest.fixture(scope="module")
def result():
    rng = np.random.default_rng(0)
    groups = np.repeat(np.arange(30), 2)
    y = (np.arange(30) % 3)[groups]
    X = rng.standard_normal((4, 60, 6)).astype(np.float32)
    X[2, :, :3] += 3 * np.eye(3)[y]
    return probe_layers(X, y, groups=groups, probe=RidgeProbe((1.0, 100.0)), control_task=True,
                        baselines={"twin": rng.standard_normal((4, 60, 6)), "MFCC": X[1]})


def test_layer_curve_draws_mean_band_baselines_and_control(result):
    ax = layer_curve(result)
    labels = [line.get_label() for line in ax.get_lines()]
    model = ax.get_lines()[0]
    np.testing.assert_allclose(model.get_ydata(), result.summary().query("metric == 'accuracy'")["mean"])
    assert len(ax.collections) == 1  # the interval band
    assert any(label.startswith("majority") for label in labels) and "twin" in labels
    assert any(label.startswith("MFCC") for label in labels) and "control task" in labels
    dashed = [line for line in ax.get_lines() if line.get_linestyle() == "--"]
    assert len(dashed) == 4  # chance, majority, twin curve, MFCC line
    assert [t.get_text() for t in ax.get_xticklabels()] == [layer_label(n, style="tick") for n in result.layer_names]
    assert ax.get_ylabel() == "accuracy"
    plt.close(ax.figure)


def test_layer_curve_draws_on_a_given_ax_and_other_metrics(result):
    fig, ax = plt.subplots()
    out = layer_curve(result, ax, metric="macro_f1", baselines=False, control=False, band=False, label="mine")
    assert out is ax and [line.get_label() for line in ax.get_lines()] == ["mine"]
    with pytest.raises(OptionError, match="not reported"):
        layer_curve(result, ax, metric="r2")
    plt.close(fig)


def test_layer_weights_draws_mean_bars_with_spread_and_uniform_line():
    w = np.array([[0.1, 0.7, 0.2], [0.2, 0.6, 0.2]])
    ax = layer_weights(w, layer_names=["a", "b", "c"])
    heights = [patch.get_height() for patch in ax.patches]
    np.testing.assert_allclose(heights, w.mean(0))
    assert ax.get_lines()[-1].get_ydata()[0] == pytest.approx(1 / 3)
    assert [t.get_text() for t in ax.get_xticklabels()] == ["a", "b", "c"]
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend == ["uniform 1/3", "mean ± fold spread (sd over 2 fits)"]
    with pytest.raises(AnalysisError, match="2 layer names for 3 weights"):
        layer_weights(w, layer_names=["a", "b"])
    plt.close("all")


def test_layer_weights_of_a_probe_whose_weights_stayed_near_uniform_say_so():
    fitted = SimpleNamespace(weights_=np.full((4, 3), 1 / 3), layer_names_=["a", "b", "c"], near_uniform_=True)
    ax = layer_weights(fitted)
    assert "mean ± fold spread (sd over 4 fits) — near uniform: not learned" in [
        t.get_text() for t in ax.get_legend().get_texts()]
    plt.close(ax.figure)
