"""The Probe protocol: what any probe implements to be cross-validated per layer by probe_layers."""

import numpy as np
import pytest
import torch

from m2v_lab.devices import resolve_device
from m2v_lab.errors import OptionError
from m2v_lab.probing import LogisticProbe, MLPProbe, Probe, ProbeResult, RidgeProbe, make_folds, probe_layers
from m2v_lab.probing.protocol import no_tick
from tests.synthetic import tracks

pytestmark = pytest.mark.usefixtures("one_torch_thread")


class NearestCentroid(Probe):
    """A probe of the test's own: class centroids of the training rows, no hyper-parameters."""

    name = "centroid"
    tasks = frozenset({"multiclass"})

    def __init__(self):
        self.devices = []

    def inner_description(self) -> str:
        return "nothing to choose"

    def cross_validate(self, X, targets, folds, *, task, seed, groups, device, tick):
        self.devices.append(device)
        out = []
        for T in targets:
            decision = np.empty(X.shape[:2] + (T.shape[1],))
            for k in range(int(folds.max()) + 1):
                train, test = folds != k, folds == k
                centroids = np.einsum("lnd,nk->lkd", X[:, train], T[train]) / T[train].sum(0)[None, :, None]
                decision[:, test] = -((X[:, test, None] - centroids[:, None]) ** 2).sum(-1)
                tick(X.shape[0])
            out.append((decision, {}))
        return out


def test_a_probe_of_your_own_runs_through_probe_layers_like_the_built_in_ones():
    X, y, groups = tracks(layers=3, informative=1, signal=3.0)
    probe = NearestCentroid()
    ticks = []
    res = probe_layers(X, y, groups=groups, probe=probe, control_task=True, baselines={"MFCC": X[0]},
                       progress=lambda done, total: ticks.append(done))
    assert res.probe == "centroid" and res.cv.endswith("nothing to choose") and res.best_layer() == 1
    assert res.sources == ["model", "control", "MFCC"] and ticks[-1] == 5 * (3 * 2 + 1)
    parts = [probe_layers(X[[i]], y, groups=groups, probe=probe, control_task=True) for i in range(3)]
    joined = ProbeResult.concat(parts, layer_names=res.layer_names)
    assert joined.params.empty and joined.best_layer() == 1


def test_a_task_the_probe_does_not_declare_is_refused_before_any_fit():
    X, y, groups = tracks(layers=2, informative=1)
    probe = NearestCentroid()
    with pytest.raises(OptionError, match="probe='centroid' cannot do multilabel: it does multiclass"):
        probe_layers(X, np.eye(4, dtype=int)[y], groups=groups, probe=probe)
    assert probe.devices == []


def test_probes_get_the_cpu_by_default_and_the_best_device_for_none_or_auto():
    X, y, groups = tracks(layers=2, informative=1)
    probe = NearestCentroid()
    for device in ("cpu", None, "auto"):
        probe_layers(X, y, groups=groups, probe=probe, **({} if device == "cpu" else {"device": device}))
    assert probe.devices[0] == torch.device("cpu")
    assert probe.devices[-1] == resolve_device(None) == resolve_device("auto")


def test_objects_that_are_not_probes_are_refused():
    class DuckTyped:
        name = "duck"

        def cross_validate(self, *args, **kwargs):
            raise AssertionError("never called")

    X, y, groups = tracks(layers=2, informative=1)
    with pytest.raises(OptionError, match="neither a probe name .* nor a Probe instance"):
        probe_layers(X, y, groups=groups, probe=DuckTyped())


@pytest.mark.parametrize("probe", [RidgeProbe((0.1, 10.0, 1000.0)), LogisticProbe(Cs=(0.1, 10.0)),
                                   MLPProbe(hidden=8, max_epochs=5, patience=2)], ids=["ridge", "logistic", "mlp"])
def test_every_probe_predicts_a_fold_without_seeing_its_labels(probe):
    # scrambling fold 0's labels may change every other fold's predictions (fold 0 trains them), never fold 0's
    # (but for rounding: ridge subtracts fold 0's sums from the totals)
    X, y, groups = tracks(layers=2, informative=1, n_tracks=24, dim=6)
    folds = make_folds(y, groups=groups, cv=3)
    T = np.eye(4)[y]
    scrambled = T.copy()
    scrambled[folds == 0] = np.eye(4)[np.random.default_rng(1).integers(0, 4, (folds == 0).sum())]
    decisions = [probe.cross_validate(X, [targets], folds, task="multiclass", seed=0, groups=groups,
                                      device=torch.device("cpu"), tick=no_tick)[0][0] for targets in (T, scrambled)]
    np.testing.assert_allclose(decisions[0][:, folds == 0], decisions[1][:, folds == 0], rtol=0, atol=1e-12)
    assert np.abs(decisions[0][:, folds != 0] - decisions[1][:, folds != 0]).max() > 1e-3
