"""What probing is given: labels, groups and clip ids as arrays or clip-table column names; every bad input named."""

import numpy as np
import pandas as pd
import pytest

from m2v_lab.errors import AnalysisError, FeaturesError, OptionError
from m2v_lab.features import Features
from m2v_lab.probing import LayerSumProbe, RidgeProbe, probe_layers, ridge_path
from tests.synthetic import tracks

ALPHAS = (0.1, 10.0, 1000.0)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def labelled(X, y, groups):
    """Features whose clip table holds the labels, as extract makes them from a clip frame."""
    n = X.shape[1]
    table = pd.DataFrame({"genre": np.array(["rock", "jazz", "pop", "folk"])[y], "track": groups,
                          "tempo": y * 10.0 + np.arange(n) % 3})
    return Features(layer_names=["pre_transformer"] + [f"block_{i}" for i in range(1, len(X))],
                    layer_indices=range(len(X)), clips=[f"c{i}" for i in range(n)], source_index=range(n),
                    meta={"model": "synthetic"}, pooled=X, clip_table=table)


# --- column names -----------------------------------------------------------------------------------------

def test_labels_groups_and_clip_ids_can_name_columns_of_the_clip_table():
    X, y, groups = tracks(layers=3, informative=1, segments=2)
    feats = labelled(X, y, groups)
    by_name = probe_layers(feats, "genre", groups="track", clip_ids="track", probe=RidgeProbe(ALPHAS))
    by_value = probe_layers(X, feats.clip_table["genre"], groups=groups, clip_ids=groups, probe=RidgeProbe(ALPHAS))
    pd.testing.assert_frame_equal(by_name.scores, by_value.scores)
    assert by_name.n_clips == 40 and "over 40 groups" in by_name.cv
    path = ridge_path(feats, "tempo", X[:, :5], alphas=ALPHAS)
    np.testing.assert_array_equal(path.predictions, ridge_path(X, feats.labels("tempo"), X[:, :5],
                                                               alphas=ALPHAS).predictions)


@pytest.mark.filterwarnings("ignore:the learned layer weights stayed near uniform")
def test_layer_sum_probe_reads_labels_and_groups_by_column_name():
    X, y, groups = tracks(layers=3, informative=1, n_tracks=24, dim=6, track_noise=0.0)
    feats = labelled(X, y, groups)
    probe = dict(cv=3, max_epochs=3, patience=2, compare=False)
    by_name = LayerSumProbe(**probe).fit(feats, "genre", groups="track")
    by_value = LayerSumProbe(**probe).fit(X, feats.labels("genre"), groups=groups)
    np.testing.assert_array_equal(by_name.weights_, by_value.weights_)
    pd.testing.assert_frame_equal(by_name.scores_, by_value.scores_)


def test_a_column_name_with_bare_array_features_is_an_option_error():
    X, y, groups = tracks(layers=2, informative=1)
    with pytest.raises(OptionError, match="y='genre' names a column, but the features are a bare array.*pass y as "
                                          "an array"):
        probe_layers(X, "genre", groups=groups)
    with pytest.raises(OptionError, match="groups='track' names a column"):
        probe_layers(X, y, groups="track")


def test_a_column_the_clip_table_lacks_is_named_with_the_columns_it_has():
    X, y, groups = tracks(layers=2, informative=1)
    with pytest.raises(FeaturesError, match=r"no column 'genr'.*\['clip_id', 'genre', 'track', 'tempo', "):
        probe_layers(labelled(X, y, groups), "genr", groups="track")


# --- bad labels, groups and clip ids ------------------------------------------------------------------------

def test_labels_of_the_wrong_length_are_named():
    X, y, groups = tracks(layers=2, informative=1)
    with pytest.raises(AnalysisError, match=r"y has 119 labels but features have 120 samples \(axis 1\)"):
        probe_layers(X, y[:-1], groups=groups)


def test_class_with_one_member_is_named():
    X, y, groups = tracks(layers=2, informative=1)
    y = np.array(["a", "b", "c", "d"])[y].astype(object)
    y[5] = "solo"
    with pytest.raises(AnalysisError, match="class 'solo' has 1 member: need ≥ 5"):
        probe_layers(X, y, groups=groups)


def test_nan_features_name_the_layer():
    X, y, groups = tracks(layers=4)
    X[3, 17, 2] = np.nan
    with pytest.raises(AnalysisError, match=r"NaN at layer 3 \('block_3'\).*sample 17"):
        probe_layers(X, y, groups=groups)


def test_single_group_is_rejected():
    X, y, _ = tracks(layers=2, informative=1)
    with pytest.raises(AnalysisError, match="only one group.*grouped CV needs ≥ 2 groups"):
        probe_layers(X, y, groups=np.zeros(len(y)))
    with pytest.raises(AnalysisError, match="3 distinct ids but cv=5"):
        probe_layers(X, y, groups=np.arange(len(y)) % 3)


def test_clip_spanning_two_groups_is_rejected():
    X, y, groups = tracks(layers=2, informative=1)
    clips = groups.copy()
    clips[3] = 0  # sample 3 belongs to track 1
    y = y.copy()
    y[3] = y[0]
    with pytest.raises(AnalysisError, match="clip 0 spans 2 groups"):
        probe_layers(X, y, groups=groups, clip_ids=clips)
