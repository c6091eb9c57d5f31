"""probe_layers: per-layer curves under grouped CV, with controls, baselines, clip averaging and progress."""

import numpy as np
import pandas as pd
import pytest
import torch

from m2v_lab.errors import AnalysisError, OptionError
from m2v_lab.probing import LogisticProbe, MLPProbe, RidgeProbe, probe_layers
from tests.synthetic import tracks

ALPHAS = (0.1, 10.0, 1000.0)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def mean_of(result, metric, *, source="model"):
    table = result.summary(source=source)
    return table[table["metric"] == metric].set_index("layer")["mean"]


# --- the layer curve ---------------------------------------------------------------------------------

def test_ridge_curve_peaks_at_the_only_informative_layer():
    X, y, groups = tracks(informative=3)
    res = probe_layers(X, np.array(["rock", "jazz", "pop", "folk"])[y], groups=groups, probe=RidgeProbe(ALPHAS))
    assert res.best_layer() == 3
    acc = mean_of(res, "accuracy")
    assert acc[3] > 0.7 and acc.drop(3).max() < 0.45
    assert res.task == "multiclass" and res.grouped and "StratifiedGroupKFold over 40 groups" in res.cv
    assert set(res.scores["metric"]) == {"accuracy", "balanced_accuracy", "macro_f1"}


def test_same_seed_gives_the_same_scores():
    X, y, groups = tracks(layers=2, informative=1)
    a = probe_layers(X, y, groups=groups, probe=RidgeProbe(ALPHAS), seeds=7)
    b = probe_layers(X, y, groups=groups, probe=RidgeProbe(ALPHAS), seeds=7)
    pd.testing.assert_frame_equal(a.scores, b.scores)


def test_features_object_gives_its_layer_names():
    X, y, groups = tracks(layers=3, informative=1)

    class Feats:
        pooled = X
        layer_names = ("conv", "block_1", "block_2")

    res = probe_layers(Feats(), y, groups=groups, probe=RidgeProbe(ALPHAS))
    assert res.layer_names == ("conv", "block_1", "block_2")
    assert list(res.summary()["layer_name"].unique()) == ["conv", "block_1", "block_2"]


# --- controls and baselines ----------------------------------------------------------------------------

def test_control_task_sits_near_chance_and_selectivity_isolates_the_signal():
    X, y, groups = tracks(layers=3, informative=1, n_tracks=120, segments=2, classes=3, signal=3.0)
    res = probe_layers(X, y, groups=groups, probe=RidgeProbe(ALPHAS), control_task=True, seeds=(0, 1))
    control = mean_of(res, "accuracy", source="control")
    assert (abs(control - 1 / 3) < 0.08).all()
    sel = res.selectivity().set_index("layer")["selectivity"]
    assert sel[1] > 0.5 and (abs(sel.drop(1)) < 0.12).all()
    base = res.baselines
    assert set(base["kind"]) == {"reference", "control"}
    majority = base[(base["name"] == "majority") & (base["metric"] == "accuracy")]["mean"].item()
    assert majority == pytest.approx(1 / 3, abs=0.05)


def test_control_task_scores_what_a_probe_memorises_about_groups():
    # layer 0 gives every track a feature signature of its own, layer 1 none; neither knows the class.  The control
    # gives each track a random label and scores held-out segments of tracks trained on: far above chance where
    # tracks can be told apart, at chance where they cannot (grouped folds put it at chance for both: 0.23, 0.26)
    signature, y, groups = tracks(layers=1, informative=0, signal=0.0, track_noise=3.0, n_tracks=40, segments=4, dim=32)
    plain, _, _ = tracks(layers=1, informative=0, signal=0.0, track_noise=0.0, n_tracks=40, segments=4, dim=32)
    res = probe_layers(np.concatenate([signature, plain]), y, groups=groups, probe=RidgeProbe(ALPHAS),
                       control_task=True, seeds=(0, 1))
    control = mean_of(res, "accuracy", source="control")
    assert control[0] > 0.8 and abs(control[1] - 0.25) < 0.1
    sel = res.selectivity().set_index("layer")
    np.testing.assert_allclose(sel["selectivity"], sel["model"] - sel["control"])
    assert sel.loc[0, "ci_high"] < -0.5  # what a probe can memorise here dwarfs the (chance) real score
    assert res.control.startswith("Hewitt & Liang: a random label per group; 5 folds spread each group's")


def test_groups_with_a_single_clip_are_left_out_of_the_control_task_and_counted():
    X, y, groups = tracks(layers=2, informative=1, n_tracks=40, segments=3)
    groups = groups.copy()
    groups[[0, 3, 6]] = [100, 101, 102]  # the first segment of three tracks becomes a group of its own
    res = probe_layers(X, y, groups=groups, probe=RidgeProbe(ALPHAS), control_task=True)
    assert res.control.endswith("; 3 groups with a single member left out")
    assert len(res.predictions["control"].group) == len(y) - 3
    assert not np.isin(res.predictions["control"].group, res.predictions["model"].group[[0, 3, 6]]).any()


def test_a_control_task_without_groups_is_refused_before_any_fit():
    X, y, _ = tracks(layers=2, informative=1)
    calls = []
    with pytest.raises(AnalysisError, match="control_task needs groups"):
        probe_layers(X, y, probe=RidgeProbe(ALPHAS), control_task=True, progress=lambda d, t: calls.append(d))
    assert calls == []


def test_a_control_task_function_makes_labels_that_are_scored_on_the_control_split():
    # only track identity, no class signal; a "control" that returns the real labels is scored on held-out segments
    # of tracks the probe trained on, where recognising the track gives the label: far above the grouped real task
    rng = np.random.default_rng(0)
    groups = np.repeat(np.arange(60), 5)
    y = (np.arange(60) % 3)[groups]
    X = (rng.standard_normal((60, 40))[groups] + 0.3 * rng.standard_normal((len(y), 40)))[None]
    res = probe_layers(X, y, groups=groups, probe=RidgeProbe(ALPHAS), control_task=lambda y, g, seed: y)
    assert mean_of(res, "accuracy")[0] < 0.45 and mean_of(res, "accuracy", source="control")[0] > 0.75


def test_ungrouped_cv_inflates_a_label_free_layer():
    # only track identity, no class signal: grouped CV is at chance, segment-level KFold is not
    rng = np.random.default_rng(0)
    n_tracks, segments = 60, 5
    groups = np.repeat(np.arange(n_tracks), segments)
    y = (np.arange(n_tracks) % 3)[groups]
    X = (rng.standard_normal((n_tracks, 40))[groups] + 0.3 * rng.standard_normal((len(y), 40)))[None]
    grouped = probe_layers(X, y, groups=groups, probe=RidgeProbe(ALPHAS))
    ungrouped = probe_layers(X, y, probe=RidgeProbe(ALPHAS))
    assert mean_of(grouped, "accuracy")[0] < 0.45
    assert mean_of(ungrouped, "accuracy")[0] > 0.7
    assert not ungrouped.grouped


def test_feature_baselines_are_probed_on_the_same_folds():
    X, y, groups = tracks(layers=3, informative=1)
    twin = np.random.default_rng(5).standard_normal(X.shape).astype(np.float32)
    res = probe_layers(X, y, groups=groups, probe=RidgeProbe(ALPHAS),
                       baselines={"random-init twin": twin, "MFCC": X[1]})
    assert res.sources == ["model", "random-init twin", "MFCC"]
    mfcc = mean_of(res, "accuracy", source="MFCC")
    assert list(mfcc.index) == [0]
    assert mfcc[0] == pytest.approx(mean_of(res, "accuracy")[1])  # same data, same folds → same score
    base = res.baselines
    assert base[base["name"] == "MFCC"]["layer_name"].iloc[0] == "MFCC"
    assert len(base[(base["name"] == "random-init twin") & (base["metric"] == "accuracy")]) == 1


# --- tasks --------------------------------------------------------------------------------------------------

def test_multilabel_path_peaks_and_references_sit_at_half_auc():
    X, y, groups = tracks(layers=3, informative=2, classes=4)
    rng = np.random.default_rng(2)
    Y = np.eye(4)[y]
    Y[:, 3] = (rng.random(len(y)) < 0.3)  # a label no layer knows
    res = probe_layers(X, pd.DataFrame(Y.astype(int), columns=list("abcd")), groups=groups, probe=RidgeProbe(ALPHAS))
    assert res.task == "multilabel" and res.columns == tuple("abcd")
    assert res.best_layer() == 2 and res.best_layer("average_precision") == 2
    auc = mean_of(res, "roc_auc")
    assert auc[2] > 0.75 and auc.drop(2).max() < 0.62
    refs = res.references.groupby(["name", "metric"])["value"].mean()
    assert refs[("majority", "roc_auc")] == 0.5 and refs[("chance", "roc_auc")] == 0.5
    assert refs[("chance", "average_precision")] == pytest.approx(Y.mean(), abs=0.03)


def test_regression_path_peaks_with_r2_and_pearson():
    X, _, groups = tracks(layers=4, informative=1)
    rng = np.random.default_rng(3)
    target = X[1, :, :3].astype(float) @ np.array([1.0, -0.5, 0.25]) + 0.3 * rng.standard_normal(X.shape[1])
    res = probe_layers(X, target, groups=groups, probe=RidgeProbe(ALPHAS))
    assert res.task == "regression" and res.metrics == ("r2", "pearson_r")
    assert res.best_layer() == 1 and mean_of(res, "r2")[1] > 0.8 and mean_of(res, "pearson_r")[1] > 0.9
    assert mean_of(res, "r2").drop(1).max() < 0.2
    assert res.references["name"].unique().tolist() == ["mean predictor"]


def test_segment_scores_are_averaged_per_clip_before_metrics():
    # each clip: 4 noisy segments; clip-level means are far cleaner than single segments
    X, y, groups = tracks(layers=1, informative=0, n_tracks=60, segments=4, signal=0.6, dim=8)
    per_segment = probe_layers(X, y, groups=groups, probe=RidgeProbe(ALPHAS))
    per_clip = probe_layers(X, y, groups=groups, clip_ids=groups, probe=RidgeProbe(ALPHAS))
    assert per_clip.n_clips == 60 and per_clip.folds["n_test_clips"].sum() == 60
    assert mean_of(per_clip, "accuracy")[0] > mean_of(per_segment, "accuracy")[0] + 0.05
    # clip_ids alone also keep a clip's segments in one fold
    assert probe_layers(X, y, clip_ids=groups, probe=RidgeProbe(ALPHAS)).grouped


# --- progress -----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("probe", [RidgeProbe(ALPHAS), LogisticProbe(Cs=(1.0,)), MLPProbe(hidden=0, max_epochs=1)],
                         ids=["ridge", "logistic", "mlp"])
def test_progress_counts_every_layer_and_fold_of_each_seed_source_and_control_task(probe):
    X, y, groups = tracks(layers=3, informative=1, n_tracks=24, dim=6)
    calls = []
    probe_layers(X, y, groups=groups, probe=probe, cv=3, seeds=(0, 1), control_task=True,
                 baselines={"MFCC": X[0]}, progress=lambda done, total: calls.append((done, total)))
    total = 2 * 3 * (3 * 2 + 1)  # seeds × folds × (layers × {real, control} + one baseline layer)
    assert calls[0] == (0, total) and calls[-1] == (total, total)
    done = [d for d, t in calls]
    assert done == sorted(done) and len(calls) > 2 and {t for _, t in calls} == {total}


def test_progress_true_shows_a_bar_that_ends_full(capsys):
    X, y, groups = tracks(layers=2, informative=1)
    probe_layers(X, y, groups=groups, probe=RidgeProbe(ALPHAS), progress=True)
    bar = capsys.readouterr().err.split("\r")[-1]
    assert bar.startswith("probing 2 layers (ridge): 100%") and "10/10" in bar  # 2 layers × 5 folds


# --- options ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs, message", [
    ({"probe": "logistic", "y": "values"}, "probe='logistic' cannot do regression"),
    ({"probe": "svm"}, "probe='svm' is not one of"),
    ({"cv": 2}, "cv=2 leaves one training fold"),
    ({"cv": 1}, "cv=1: give a whole number ≥ 2"),
    ({"task": "clustering"}, "task='clustering' is not one of"),
    ({"seeds": ()}, "seeds is empty"),
    ({"seeds": (0, -1)}, r"seeds=-1: give a whole number ≥ 0"),
    ({"control_task": "yes"}, r"control_task='yes': give True, False or a function f\(y, groups, seed\)"),
    ({"progress": 1}, r"progress=1: give True, False or a function f\(done, total\)"),
    ({"baselines": {"model": np.zeros((1, 120, 3))}}, "baseline name 'model' is reserved"),
    ({"baselines": [np.zeros((1, 120, 3))]}, "baselines must map a name to features"),
    ({"device": "cuda:0" if not torch.cuda.is_available() else "nonsense"}, "device="),
])
def test_bad_option_values_are_option_errors_naming_the_option(kwargs, message):
    X, y, groups = tracks(layers=2, informative=1)
    y = np.linspace(0, 1, len(y)) if kwargs.pop("y", None) == "values" else np.array(list("abcd"))[y]
    with pytest.raises(OptionError, match=message):
        probe_layers(X, y, groups=groups, **kwargs)


@pytest.mark.parametrize("kwargs, message", [
    ({"baselines": {"MFCC": np.zeros((1, 7, 3))}}, r"baselines\['MFCC'\] has 7 samples"),
    ({"task": "multilabel"}, "needs numeric y"),
])
def test_data_that_does_not_fit_the_options_is_an_analysis_error(kwargs, message):
    X, y, groups = tracks(layers=2, informative=1)
    with pytest.raises(AnalysisError, match=message):
        probe_layers(X, np.array(list("abcd"))[y], groups=groups, **kwargs)
