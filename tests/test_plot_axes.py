"""plot/_axes.py and the plot package: one way to get the axes to draw on, one way to tick layers, pyplot on demand."""

import functools
import subprocess
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from m2v_lab.errors import OptionError  # noqa: E402
from m2v_lab.features import Features  # noqa: E402
from m2v_lab.plot import (feature_image, layer_curve, layer_weights, projection_scatter,  # noqa: E402
                          similarity_heatmap, spectrogram, waveform)
from m2v_lab.plot._axes import axes_for, layer_ticks  # noqa: E402
from m2v_lab.probing import probe_layers  # noqa: E402
from m2v_lab.similarity import layer_similarity  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def test_importing_the_plot_package_does_not_import_pyplot():
    # a fresh interpreter: pyplot picks a backend when imported, which a notebook must be free to set first
    code = ("import sys, m2v_lab, m2v_lab.plot, m2v_lab.plot.features, m2v_lab.plot.similarity\n"
            "m2v_lab.plot.similarity_heatmap\n"
            "print('matplotlib.pyplot' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


def test_without_ax_a_new_pyplot_figure_of_the_given_size_is_made():
    before = set(plt.get_fignums())
    ax = axes_for(None, size=(3, 2))
    assert set(plt.get_fignums()) - before == {ax.figure.number}
    assert tuple(ax.figure.get_size_inches()) == (3, 2)
    plt.close(ax.figure)
    given = Figure().subplots()
    assert axes_for(given, size=(3, 2)) is given


def _wave(ax):
    return waveform(np.zeros(1600), 16000, ax=ax)


def _spectrogram(ax):
    return spectrogram(np.zeros(1600), 16000, ax=ax)


def _feature_image(ax):
    feats = Features(layer_names=["pre_transformer"], layer_indices=[0], clips=["c"], source_index=[0],
                     meta=dict(hidden_size=2, pool=None, sample_rate=16000, frame_stride=320, receptive_field=400),
                     frames=[np.zeros((1, 4, 2), np.float32)], windows=[np.array([[0, 1360, 4]])])
    return feature_image(feats, ax=ax)


def _scatter(ax):
    return projection_scatter(np.zeros((3, 2)), ax=ax)


def _heatmap(ax):
    return similarity_heatmap(layer_similarity(np.random.default_rng(0).standard_normal((2, 10, 3))), ax=ax)


def _weights(ax):
    return layer_weights([0.5, 0.5], ax=ax)


@functools.lru_cache
def _probe_result():
    y = np.tile([0, 1], 15)
    return probe_layers(np.random.default_rng(0).standard_normal((2, 30, 3)) + y[:, None], y, cv=3)


def _curve(ax):
    return layer_curve(_probe_result(), ax=ax)


@pytest.mark.parametrize("draw", [_wave, _spectrogram, _feature_image, _scatter, _heatmap, _weights, _curve])
def test_every_figure_takes_one_axes_and_says_what_to_pass_for_an_array_of_them(draw):
    given = Figure().subplots()
    assert draw(given) is given
    with pytest.raises(OptionError, match=r"gives an array: pass one of its axes"):
        draw(Figure().subplots(1, 2))
    with pytest.raises(OptionError, match="ax= takes one matplotlib Axes or None; got a str"):
        draw("left")


@pytest.mark.parametrize("n_layers, rotation", [(3, 0), (8, 0), (9, 90), (25, 90)])
def test_layer_ticks_are_layer_labels_turned_upright_when_many(n_layers, rotation):
    names = ["pre_transformer"] + [f"block_{i}" for i in range(1, n_layers)]
    ax = Figure().subplots()
    layer_ticks(ax, names)
    layer_ticks(ax, names, axis="y")
    labels = ax.get_xticklabels()
    assert [t.get_text() for t in labels] == ["0 (pre)"] + [str(i) for i in range(1, n_layers)]
    assert [t.get_text() for t in ax.get_yticklabels()] == [t.get_text() for t in labels]
    assert {t.get_rotation() for t in labels} == {rotation}
