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
    assert legend == ["uniform 1/3", "mean, whiskers min–max over 2 fits"]
    with pytest.raises(AnalysisError, match="2 layer names for 3 weights"):
        layer_weights(w, layer_names=["a", "b"])
    plt.close("all")


def test_layer_weights_whiskers_span_the_fits_and_never_reach_below_zero():
    # most fits put ~0 on layer 0, one puts 0.5 there: mean − sd would be −0.14, a weight no softmax can give
    w = np.array([[0.0, 0.5, 0.5], [0.0, 0.9, 0.1], [0.0, 0.8, 0.2], [0.5, 0.4, 0.1]])
    assert (w.mean(0) - w.std(0, ddof=1))[0] < 0
    ax = layer_weights(w)
    (segments,) = [c for c in ax.collections if hasattr(c, "get_segments") and len(c.get_segments()) == 3]
    ends = np.array([[seg[:, 1].min(), seg[:, 1].max()] for seg in segments.get_segments()])
    np.testing.assert_allclose(ends, np.stack([w.min(0), w.max(0)], axis=1))
    assert ends.min() >= 0
    plt.close(ax.figure)


def test_layer_weights_of_a_probe_whose_weights_stayed_near_uniform_say_so():
    fitted = SimpleNamespace(weights_=np.full((4, 3), 1 / 3), layer_names_=["a", "b", "c"], near_uniform_=True)
    ax = layer_weights(fitted)
    assert "mean, whiskers min–max over 4 fits — near uniform: not learned" in [
        t.get_text() for t in ax.get_legend().get_texts()]
    plt.close(ax.figure)


def _features(X, table, *, trained):
    from m2v_lab.features import Features

    meta = {"model": "toy-model", "trained": trained}
    return Features(pooled=X, layer_names=[f"block_{i}" for i in range(X.shape[0])],
                    layer_indices=range(X.shape[0]), clips=list(table["clip_id"]),
                    source_index=np.arange(len(table)), meta=meta, clip_table=table)


def test_layer_curve_title_names_model_training_n_and_cv_and_its_legend_sits_outside_the_axes():
    import pandas as pd

    rng = np.random.default_rng(1)
    table = pd.DataFrame({"clip_id": [f"c{i}" for i in range(40)], "g": np.repeat(np.arange(20), 2)})
    table["y"] = table["g"] % 2
    feats = _features(rng.standard_normal((3, 40, 4)).astype(np.float32), table, trained=False)
    res = probe_layers(feats, "y", groups="g", probe=RidgeProbe((1.0,)))
    ax = layer_curve(res)
    title = ax.get_title()
    assert "toy-model · untrained" in title and "n = 40 clips" in title and "GroupKFold over 20 groups" in title
    anchor = ax.get_legend().get_bbox_to_anchor().transformed(ax.transAxes.inverted())
    assert anchor.x0 > 1.0  # right of the data
    assert layer_curve(res, title=False, legend="inside").get_title() == ""
    with pytest.raises(OptionError, match="legend"):
        layer_curve(res, legend="left")
    plt.close("all")


def test_layer_curve_writes_chance_on_its_line_and_flags_layers_below_chance(result):
    from dataclasses import fields

    from m2v_lab.probing.result import ProbeResult

    class BelowChanceAtLayer1(ProbeResult):
        def summary(self, **kwargs):
            table = super().summary(**kwargs)
            at = (table["layer"] == 1) & (table["metric"] == "accuracy") & (table.get("source", "model") == "model")
            table.loc[at, ["mean", "ci_low", "ci_high"]] = [0.1, 0.05, 0.2]
            return table

    shifted = BelowChanceAtLayer1(**{f.name: getattr(result, f.name) for f in fields(result) if f.init})
    ax = layer_curve(shifted)
    chance = result.baselines.query("name == 'chance' and metric == 'accuracy'")["mean"].item()
    assert any(t.get_text() == f"chance {chance:.2f}" for t in ax.texts)
    [flag] = [c for c in ax.collections if c.get_label() == "below chance (whole interval)"]
    np.testing.assert_allclose(flag.get_offsets(), [[1, 0.1]])
    plt.close(ax.figure)
    ax = layer_curve(result)  # the real result: every layer's interval reaches chance, nothing flagged
    assert not [c for c in ax.collections if c.get_label().startswith("below chance")]
    plt.close(ax.figure)
