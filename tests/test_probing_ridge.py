"""Ridge probes: the whole alpha path from one decomposition, exactly scikit-learn's numbers, in float64."""

import numpy as np
import pytest
import torch
from sklearn.linear_model import Ridge
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from m2v_lab.errors import OptionError
from m2v_lab.probing import RidgeProbe, make_folds, probe_layers, ridge_path
from m2v_lab.probing.ridge import ridge_cv
from tests.synthetic import tracks

ALPHAS = (0.1, 10.0, 1000.0)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


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


def test_ridge_cv_decomposes_once_per_pair_of_folds(monkeypatch):
    calls = []
    eigh = torch.linalg.eigh
    monkeypatch.setattr(torch.linalg, "eigh", lambda A: calls.append(A.shape) or eigh(A))
    X, y, groups = tracks(layers=3, n_tracks=40, dim=10)
    ridge_cv(X, 2 * np.eye(4)[y] - 1, make_folds(y, groups=groups, cv=5), alphas=np.logspace(-2, 4, 12))
    # every alpha of the inner CV, all 3 layers at once, from cv(cv-1)/2 batched decompositions
    assert len(calls) == 10 and all(shape[0] == 3 for shape in calls)


def test_ridge_refuses_apples_mps_saying_it_has_no_float64(monkeypatch):
    # a machine whose best device is MPS: "auto" picks it, and ridge must say why it cannot run there
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    X, y, groups = tracks(layers=2, informative=1)
    with pytest.raises(OptionError, match=r"device='auto' runs on Apple's MPS, which has no float64.*device='cpu'"):
        probe_layers(X, y, groups=groups, device="auto")
    with pytest.raises(OptionError, match=r"device='mps' runs on Apple's MPS, which has no float64"):
        ridge_path(X[:, :60], y[:60], X[:, 60:], device="mps")


@pytest.mark.parametrize("alphas", [(), (0.0, 1.0), (-1.0,), ("big",)])
def test_alphas_that_are_not_positive_numbers_are_refused_when_the_probe_is_made(alphas):
    with pytest.raises(OptionError, match="alphas must be a non-empty list of positive numbers"):
        RidgeProbe(alphas)
