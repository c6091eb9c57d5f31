"""ProbeResult: summaries, its long frame, its notebook view, and concatenation of runs over layer subsets."""

import dataclasses
import re

import numpy as np
import pandas as pd
import pytest

from m2v_lab.errors import AnalysisError, OptionError
from m2v_lab.probing import ProbeResult, RidgeProbe, probe_layers
from tests.synthetic import tracks

ALPHAS = (0.1, 10.0, 1000.0)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def data():
    return tracks(layers=4, informative=2, n_tracks=30)


def run(X, y, groups, **kwargs):
    return probe_layers(X, y, groups=groups, probe=RidgeProbe(ALPHAS), **kwargs)


def test_summary_and_best_layer_reject_unknown_metric_or_source():
    X, y, groups = tracks(layers=2, informative=1)
    res = run(X, y, groups)
    cols = ["source", "layer", "layer_name", "metric", "mean", "sd", "ci_low", "ci_high", "n_folds", "interval"]
    assert list(res.summary().columns) == cols and (res.summary()["n_folds"] == 5).all()
    with pytest.raises(OptionError, match="r2.*not reported for multiclass"):
        res.best_layer("r2")
    with pytest.raises(OptionError, match="no scores for source 'twin'"):
        res.summary(source="twin")
    with pytest.raises(AnalysisError, match="control_task=True"):
        res.selectivity()
    assert "best layer 1 (block_1)" in repr(res)


def test_concat_of_runs_over_layer_subsets_equals_one_run_over_all_layers(data):
    X, y, groups = data
    options = dict(control_task=True, seeds=(0, 1), baselines={"MFCC": X[0]})
    whole = run(X, y, groups, **options)
    parts = [run(X[[0, 1]], y, groups, **options), run(X[[2]], y, groups, **options),
             run(X[[3]], y, groups, **options)]
    joined = ProbeResult.concat(parts, layer_names=whole.layer_names)
    for attr in ("scores", "params"):
        a, b = getattr(joined, attr), getattr(whole, attr)
        keys = [c for c in a.columns if c != "value"]
        pd.testing.assert_frame_equal(a.sort_values(keys, ignore_index=True), b.sort_values(keys, ignore_index=True))
    assert joined.sources == whole.sources == ["model", "control", "MFCC"]
    pd.testing.assert_frame_equal(joined.summary(source=None), whole.summary(source=None))
    pd.testing.assert_frame_equal(joined.selectivity(), whole.selectivity())
    assert joined.best_layer() == whole.best_layer() == 2 and joined.layer_names == whole.layer_names


def test_concat_keeps_the_parts_layer_names_unless_they_repeat(data):
    X, y, groups = data
    named = [dataclasses.replace(run(X[[i]], y, groups), layer_names=(f"L{i}",)) for i in (3, 1)]
    assert ProbeResult.concat(named).layer_names == ("L3", "L1")
    bare = [run(X[[i]], y, groups) for i in (3, 1)]  # both "pre_transformer"
    with pytest.raises(AnalysisError, match="layer names .* repeat; pass layer_names"):
        ProbeResult.concat(bare)
    with pytest.raises(OptionError, match="layer_names has 3 names for the parts' 2 layers"):
        ProbeResult.concat(bare, layer_names=["a", "b", "c"])
    with pytest.raises(OptionError, match="non-empty list of ProbeResults"):
        ProbeResult.concat([])


def test_concat_refuses_runs_on_other_folds_or_labels_naming_what_differs(data):
    X, y, groups = data
    first = run(X[[0]], y, groups)
    with pytest.raises(AnalysisError, match=r"parts\[1\] differs from parts\[0\] in references, folds"):
        ProbeResult.concat([first, run(X[[1]], y, groups, seeds=1)], layer_names=["a", "b"])
    with pytest.raises(AnalysisError, match=r"differs from parts\[0\] in sources"):
        ProbeResult.concat([first, run(X[[1]], y, groups, control_task=True)], layer_names=["a", "b"])


def test_to_frame_holds_every_fold_score_and_the_references_in_one_long_frame(data):
    X, y, groups = data
    res = run(X, y, groups, control_task=True, baselines={"MFCC": X[0]})
    frame = res.to_frame()
    assert list(frame.columns) == ["source", "kind", "layer", "layer_name", "seed", "fold", "metric", "value"]
    assert len(frame) == len(res.scores) + len(res.references)
    kinds = frame.groupby("source")["kind"].unique().map(list).to_dict()
    assert kinds == {"model": ["model"], "control": ["control"], "MFCC": ["features"], "chance": ["reference"],
                     "majority": ["reference"]}
    references = frame[frame["kind"] == "reference"]
    assert references["layer"].isna().all() and frame["layer"].dtype == "Int64"
    model = frame.query("kind == 'model' and metric == 'accuracy'").groupby("layer")["value"].mean()
    np.testing.assert_allclose(model.to_numpy(), res.summary().query("metric == 'accuracy'")["mean"])


def test_html_view_shows_the_run_its_best_layer_and_a_row_per_layer(data):
    X, y, groups = data
    res = run(X, y, groups, control_task=True)
    page = res._repr_html_()
    assert page.startswith("<div><b>ProbeResult</b>: ridge probe, multiclass, 4 layers, 90 samples; 5-fold")
    assert "best layer 2 (block_2): accuracy" in page
    assert re.findall(r"<th>(\w+)</th>", page) == ["layer", "layer_name", "accuracy", "ci_low", "ci_high",
                                                    "selectivity"]
    assert re.findall(r"<td>(block_\d|pre_transformer)</td>", page) == list(res.layer_names)
