"""Probing: per-layer curves under grouped CV, ridge path exactness, controls, metrics, input errors."""

import warnings

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.linear_model import Ridge
from sklearn.metrics import accuracy_score, balanced_accuracy_score, f1_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from m2v_lab.errors import AnalysisError
from m2v_lab.probing import (LogisticProbe, MLPProbe, RidgeProbe, make_folds, probe_layers, ridge_path)
from m2v_lab.probing.metrics import aggregate, fold_interval, score
from m2v_lab.probing.ridge import ridge_cv
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


def test_logistic_curve_peaks_and_reports_the_chosen_C_per_fold():
    X, y, groups = tracks(layers=3, informative=1, dim=6, n_tracks=30)
    res = probe_layers(X, y, groups=groups, probe=LogisticProbe(Cs=(0.01, 1.0)), cv=3)
    assert res.best_layer() == 1
    chosen = res.params[res.params["param"] == "C"]
    assert len(chosen) == 3 * 3 and set(chosen["value"]) <= {0.01, 1.0}


def test_mlp_curve_peaks_with_repeated_seeds():
    X, y, groups = tracks(layers=3, informative=2, dim=8, n_tracks=40, signal=3.0)
    probe = MLPProbe(hidden=16, lr=1e-2, max_epochs=25, patience=5)
    res = probe_layers(X, y, groups=groups, probe=probe, seeds=(0, 1), cv=4)
    assert res.best_layer() == 2
    assert mean_of(res, "accuracy")[2] > 0.6
    assert sorted(res.scores["seed"].unique()) == [0, 1]
    assert (res.params[res.params["param"] == "best_epoch"]["value"] >= 1).all()


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


# --- the ridge path ------------------------------------------------------------------------------------

@pytest.mark.parametrize("n_train, dim", [(60, 10), (25, 40)], ids=["gram form", "kernel form"])
def test_ridge_path_equals_sklearn_ridge_for_each_alpha(n_train, dim):
    rng = np.random.default_rng(1)
    train = rng.standard_normal((3, n_train, dim)) * 4 + 2
    train[:, :, 0] = 5.0  # a constant feature: StandardScaler leaves it at zero
    test = rng.standard_normal((3, 9, dim))
    y = rng.standard_normal((n_train, 2))
    alphas = (1e-2, 1.0, 30.0, 1e4)
    path = ridge_path(train, y, test, alphas=alphas)
    for layer in range(3):
        for a, alpha in enumerate(alphas):
            ref = make_pipeline(StandardScaler(), Ridge(alpha=alpha)).fit(train[layer], y)
            np.testing.assert_allclose(path.predictions[layer, a], ref.predict(test[layer]), atol=1e-6, rtol=0)
            np.testing.assert_allclose(path.coef[layer, a], ref[-1].coef_.T, atol=1e-6, rtol=0)
            np.testing.assert_allclose(path.intercept[layer, a], ref[-1].intercept_, atol=1e-6, rtol=0)


def test_ridge_path_on_auto_device_matches_cpu():
    # "auto" is the GPU where one exists: its float64 path must agree with the CPU one
    rng = np.random.default_rng(2)
    train, test, y = rng.standard_normal((2, 50, 8)), rng.standard_normal((2, 5, 8)), rng.standard_normal(50)
    cpu = ridge_path(train, y, test, alphas=ALPHAS)
    auto = ridge_path(train, y, test, alphas=ALPHAS, device="auto")
    np.testing.assert_allclose(auto.predictions, cpu.predictions, atol=1e-8)


@pytest.mark.parametrize("n_tracks", [40, 12], ids=["gram form", "kernel form"])
def test_ridge_cv_equals_a_plain_sklearn_nested_loop(n_tracks):
    X, y, groups = tracks(layers=2, informative=1, n_tracks=n_tracks, dim=10)
    X = X.astype(np.float64)
    targets = 2 * np.eye(4)[y] - 1
    folds = make_folds(y, groups=groups, cv=4, seed=3)
    decision, chosen = ridge_cv(X, targets, folds, alphas=ALPHAS)
    for layer in range(2):
        for k in range(4):
            sse = np.zeros(len(ALPHAS))
            for j in set(range(4)) - {k}:
                fit, val = ~np.isin(folds, (j, k)), folds == j
                for a, alpha in enumerate(ALPHAS):
                    model = make_pipeline(StandardScaler(), Ridge(alpha=alpha)).fit(X[layer][fit], targets[fit])
                    sse[a] += ((model.predict(X[layer][val]) - targets[val]) ** 2).sum()
            best = ALPHAS[int(np.argmin(sse))]
            assert chosen[layer, k, 0] == best
            model = make_pipeline(StandardScaler(), Ridge(alpha=best)).fit(X[layer][folds != k], targets[folds != k])
            np.testing.assert_allclose(decision[layer, folds == k], model.predict(X[layer][folds == k]), atol=1e-6)


# --- splits and controls -------------------------------------------------------------------------------

@pytest.mark.parametrize("task", ["multiclass", "regression", "multilabel"])
def test_grouped_folds_never_share_a_group(task):
    rng = np.random.default_rng(0)
    groups = rng.integers(0, 25, 200)
    y = {"multiclass": groups % 3, "regression": rng.standard_normal(200),
         "multilabel": (rng.random((200, 3)) < 0.4).astype(int)}[task]
    for seed in range(3):
        folds = make_folds(y, groups=groups, cv=5, seed=seed)
        assert set(folds) == set(range(5))
        per_group = pd.Series(folds).groupby(groups).nunique()
        assert (per_group == 1).all()


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


def test_control_task_stays_near_chance_when_labels_vary_within_groups():
    # pitch within instrument: every group holds every class, in the same order
    rng = np.random.default_rng(0)
    classes, n_groups = 4, 24
    y = np.tile(np.arange(classes), n_groups)
    groups = np.repeat(np.arange(n_groups), classes)
    X = rng.standard_normal((2, y.size, 8)) + 2.0 * np.eye(8)[y][None]
    res = probe_layers(X, y, groups=groups, probe=RidgeProbe(ALPHAS), control_task=True, seeds=(0, 1, 2))
    control = mean_of(res, "accuracy", source="control")
    assert (control < 1 / classes + 0.15).all()


def test_control_task_callable_is_used():
    X, y, groups = tracks(layers=2, informative=1)
    res = probe_layers(X, y, groups=groups, probe=RidgeProbe(ALPHAS), control_task=lambda y, g, seed: y)
    # a "control" that returns the real labels scores exactly like the real task
    real, control = mean_of(res, "accuracy"), mean_of(res, "accuracy", source="control")
    np.testing.assert_allclose(real, control)


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


# --- tasks and metrics ---------------------------------------------------------------------------------

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


def test_class_metrics_match_scikit_learn_including_absent_classes():
    rng = np.random.default_rng(4)
    y, pred = rng.integers(0, 4, 50), rng.integers(0, 5, 50)  # class 4 only predicted, never true
    y[y == 2] = 1  # class 2 absent from both
    ours = score("multiclass", np.eye(5)[y], np.eye(5)[pred])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert ours["balanced_accuracy"] == pytest.approx(balanced_accuracy_score(y, pred))
    assert ours["accuracy"] == pytest.approx(accuracy_score(y, pred))
    assert ours["macro_f1"] == pytest.approx(f1_score(y, pred, average="macro"))


def test_aggregate_averages_segments_in_first_seen_clip_order():
    values = np.arange(12.0).reshape(6, 2)
    out = aggregate(values, np.array([7, 7, 3, 3, 3, 9]))
    np.testing.assert_allclose(out, [[1, 2], [6, 7], [10, 11]])


def test_fold_interval_is_wider_than_the_naive_standard_error():
    values = np.array([0.6, 0.7, 0.65, 0.75, 0.7])
    mean, sd, low, high = fold_interval(values, 0.25)
    naive = 2.776 * sd / np.sqrt(5)
    assert mean == pytest.approx(0.68) and high - mean > 1.2 * naive and mean - low == pytest.approx(high - mean)
    assert np.isnan(fold_interval(np.array([0.5]), 0.25)[1])


def test_summary_and_best_layer_reject_unknown_metric_or_source():
    X, y, groups = tracks(layers=2, informative=1)
    res = probe_layers(X, y, groups=groups, probe=RidgeProbe(ALPHAS))
    cols = ["source", "layer", "layer_name", "metric", "mean", "sd", "ci_low", "ci_high", "n_folds"]
    assert list(res.summary().columns) == cols and (res.summary()["n_folds"] == 5).all()
    with pytest.raises(AnalysisError, match="r2.*not reported for multiclass"):
        res.best_layer("r2")
    with pytest.raises(AnalysisError, match="no scores for source 'twin'"):
        res.summary(source="twin")
    with pytest.raises(AnalysisError, match="control_task=True"):
        res.selectivity()
    assert "best layer 1 (block_1)" in repr(res)


# --- bad input ------------------------------------------------------------------------------------------

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


@pytest.mark.parametrize("kwargs, message", [
    ({"probe": "logistic", "y": "values"}, "logistic' cannot do regression"),
    ({"probe": "svm"}, "not one of"),
    ({"cv": 2}, "cv=2 leaves one training fold"),
    ({"baselines": {"MFCC": np.zeros((1, 7, 3))}}, r"baselines\['MFCC'\] has 7 samples"),
    ({"task": "multilabel"}, "needs numeric y"),
    ({"device": "cuda:0" if not torch.cuda.is_available() else "nonsense"}, "device="),
])
def test_bad_options_raise_clear_errors(kwargs, message):
    X, y, groups = tracks(layers=2, informative=1)
    y = np.linspace(0, 1, len(y)) if kwargs.pop("y", None) == "values" else np.array(list("abcd"))[y]
    with pytest.raises(AnalysisError, match=message):
        probe_layers(X, y, groups=groups, **kwargs)


def test_clip_spanning_two_groups_is_rejected():
    X, y, groups = tracks(layers=2, informative=1)
    clips = groups.copy()
    clips[3] = 0  # sample 3 belongs to track 1
    y = y.copy()
    y[3] = y[0]
    with pytest.raises(AnalysisError, match="clip 0 spans 2 groups"):
        probe_layers(X, y, groups=groups, clip_ids=clips)


def test_ridge_cv_decomposes_once_per_pair_of_folds(monkeypatch):
    calls = []
    eigh = torch.linalg.eigh
    monkeypatch.setattr(torch.linalg, "eigh", lambda A: calls.append(A.shape) or eigh(A))
    X, y, groups = tracks(layers=3, n_tracks=40, dim=10)
    ridge_cv(X, 2 * np.eye(4)[y] - 1, make_folds(y, groups=groups, cv=5), alphas=np.logspace(-2, 4, 12))
    # every alpha of the inner CV, all 3 layers at once, from cv(cv-1)/2 batched decompositions
    assert len(calls) == 10 and all(shape[0] == 3 for shape in calls)
