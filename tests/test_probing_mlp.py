"""MLP probes: one head per layer trained side by side, early-stopped on a grouped validation split."""

import numpy as np
import pandas as pd
import pytest
import torch

from m2v_lab.errors import OptionError
from m2v_lab.probing import MLPProbe, probe_layers
from m2v_lab.probing.mlp import BatchedHead, loss_per_output, train_early_stopping, val_metric
from tests.synthetic import tracks

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_mlp_curve_peaks_with_repeated_seeds():
    X, y, groups = tracks(layers=3, informative=2, dim=8, n_tracks=40, signal=3.0)
    probe = MLPProbe(hidden=16, lr=1e-2, max_epochs=25, patience=5)
    res = probe_layers(X, y, groups=groups, probe=probe, seeds=(0, 1), cv=4)
    assert res.best_layer() == 2
    assert res.summary().query("metric == 'accuracy' and layer == 2")["mean"].item() > 0.6
    assert sorted(res.scores["seed"].unique()) == [0, 1]
    assert (res.params[res.params["param"] == "best_epoch"]["value"] >= 1).all()


def test_mlp_with_dropout_gives_the_same_scores_for_the_same_seed():
    # dropout masks come from the probe's seeded generator, not torch's global one
    X, y, groups = tracks(layers=2, informative=1, dim=6, n_tracks=24)
    probe = MLPProbe(hidden=8, dropout=0.5, max_epochs=4, patience=2)
    a, b = (probe_layers(X, y, groups=groups, probe=probe, seeds=3, cv=3) for _ in range(2))
    pd.testing.assert_frame_equal(a.scores, b.scores)
    pd.testing.assert_frame_equal(a.params, b.params)


@pytest.mark.parametrize("kwargs, message", [
    ({"hidden": -1}, r"hidden=-1: give a whole number ≥ 0"),
    ({"batch_size": 0}, r"batch_size=0: give a whole number ≥ 1"),
    ({"patience": 2.5}, r"patience=2.5: give a whole number ≥ 1"),
    ({"dropout": 1.0}, r"dropout=1.0: give a number in \[0, 1\)"),
    ({"lr": 0}, r"lr=0: give a number in \(0, inf\)"),
    ({"val_fraction": 1}, r"val_fraction=1: give a number in \(0, 1\)"),
    ({"monitor": "accuracy"}, r"monitor='accuracy': use one of \('loss', 'metric'\)"),
    ({"lr_patience": -1}, r"lr_patience=-1: give a whole number ≥ 0"),
    ({"lr_factor": 1.0}, r"lr_factor=1.0: give a number in \(0, 1\)"),
])
def test_settings_out_of_range_are_refused_when_the_probe_is_made(kwargs, message):
    with pytest.raises(OptionError, match=message):
        MLPProbe(**kwargs)


def test_a_seeds_run_is_bit_identical_whatever_the_global_torch_rng_or_earlier_seeds_did():
    # initialisation, batch order and dropout masks come from a generator seeded per (seed, fold), the early-stopping
    # split from one seeded per (seed, fold) too: nothing reads torch's or numpy's global state
    X, y, groups = tracks(layers=2, informative=1, dim=6, n_tracks=24)
    probe = MLPProbe(hidden=8, dropout=0.5, max_epochs=4, patience=2)
    torch.manual_seed(1)
    alone = probe_layers(X, y, groups=groups, probe=probe, seeds=3, cv=3)
    torch.manual_seed(2)
    torch.rand(1000)
    np.random.seed(5)
    after = probe_layers(X, y, groups=groups, probe=probe, seeds=(0, 3), cv=3)
    for attr in ("scores", "params"):
        later = getattr(after, attr)
        pd.testing.assert_frame_equal(getattr(alone, attr), later[later["seed"] == 3].reset_index(drop=True))


def test_marble_preset_is_marble_v1s_probe_and_training():
    probe = MLPProbe.marble()
    assert (probe.hidden, probe.dropout, probe.lr, probe.batch_size, probe.max_epochs, probe.weight_decay) == (
        512, 0.2, 1e-3, 64, 100, 0.0)
    assert (probe.monitor, probe.patience, probe.lr_patience, probe.lr_factor) == ("metric", 20, 6, 0.5)
    assert MLPProbe.marble(max_epochs=50).max_epochs == 50 and MLPProbe().monitor == "loss"
    X, y, groups = tracks(layers=2, informative=1, dim=6, n_tracks=24)
    res = probe_layers(X, y, groups=groups, probe="mlp-marble", seeds=0, cv=3)
    assert res.probe == "mlp" and "validation metric" in res.cv and "learning rate × 0.5 after 6 epochs" in res.cv
    assert set(res.params["param"]) == {"best_epoch", "val_loss", "val_accuracy"}
    assert res.params.query("param == 'val_accuracy'")["value"].between(0, 1).all()


def _adam_with_reduce_lr_on_plateau(head, gen, task, X_fit, t_fit, X_val, t_val, *, lr, epochs, lr_patience,
                                    monitor):
    """torch's own Adam + ReduceLROnPlateau loop, keeping the best-validation state: what lr_patience must equal."""
    optimiser = torch.optim.Adam(head.parameters(), lr=lr)
    plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(optimiser, mode="min" if monitor == "loss" else "max",
                                                         factor=0.5, patience=lr_patience, threshold=0.0)
    best, state, cuts = None, None, 0
    for _ in range(epochs):
        for batch in torch.randperm(X_fit.shape[1], generator=gen).split(16):
            optimiser.zero_grad()
            loss_per_output(task, head(X_fit[:, batch]), t_fit[batch]).sum().backward()
            optimiser.step()
        with torch.no_grad():
            out = head(X_val)
            score = (loss_per_output(task, out, t_val) if monitor == "loss" else val_metric(task, out, t_val)).item()
        plateau.step(score)
        cuts += optimiser.param_groups[0]["lr"] < lr * 0.5 ** cuts
        if best is None or (score < best if monitor == "loss" else score > best):
            best, state = score, [p.detach().clone() for p in head.parameters()]
    return state, cuts


@pytest.mark.parametrize("monitor", ["loss", "metric"])
def test_lr_patience_is_torchs_reduce_lr_on_plateau_for_each_head_on_its_own(monitor):
    # two heads trained side by side with a learning rate high enough to bounce: each must end where torch's own
    # Adam + ReduceLROnPlateau loop takes it alone, learning-rate cuts included
    rng = np.random.default_rng(0)
    X = torch.as_tensor(rng.standard_normal((2, 80, 5)), dtype=torch.float32)
    t = torch.as_tensor(X[0, :, :1].numpy() - 0.5 * X[1, :, 1:2].numpy() + 0.3 * rng.standard_normal((80, 1)),
                        dtype=torch.float32)
    fit, val = slice(0, 60), slice(60, 80)
    gen = torch.Generator().manual_seed(0)
    heads = BatchedHead(2, 5, 1, hidden=0, dropout=0.0, generator=gen)
    start, order = [p.detach().clone() for p in heads.parameters()], gen.get_state()
    train_early_stopping(heads, 2, "regression", X[:, fit], t[fit], X[:, val], t[val],
                         param_groups=[{"params": heads.parameters(), "lr": 0.3}], batch_size=16, max_epochs=30,
                         patience=30, generator=gen, monitor=monitor, lr_patience=1, lr_factor=0.5)
    for j in range(2):
        alone = BatchedHead(1, 5, 1, hidden=0, dropout=0.0)
        with torch.no_grad():
            for p, p0 in zip(alone.parameters(), start):
                p.copy_(p0[j:j + 1])
        state, cuts = _adam_with_reduce_lr_on_plateau(
            alone, torch.Generator().set_state(order), "regression", X[j:j + 1, fit], t[fit], X[j:j + 1, val],
            t[val], lr=0.3, epochs=30, lr_patience=1, monitor=monitor)
        assert cuts >= 2
        for p, expected in zip(heads.parameters(), state):
            torch.testing.assert_close(p[j:j + 1].detach(), expected, rtol=1e-4, atol=1e-5)


def test_a_metric_the_validation_rows_leave_undefined_hands_early_stopping_to_the_loss():
    # every validation row has every label: no ROC-AUC there, so "metric" must stop exactly as "loss" does
    rng = np.random.default_rng(1)
    X = torch.as_tensor(rng.standard_normal((2, 50, 4)), dtype=torch.float32)
    t = torch.as_tensor(rng.random((50, 3)) < 0.5, dtype=torch.float32)
    t[40:] = 1
    runs = []
    for monitor in ("loss", "metric"):
        gen = torch.Generator().manual_seed(0)
        heads = BatchedHead(2, 4, 3, hidden=0, dropout=0.0, generator=gen)
        found = train_early_stopping(heads, 2, "multilabel", X[:, :40], t[:40], X[:, 40:], t[40:],
                                     param_groups=[{"params": heads.parameters(), "lr": 0.05}], batch_size=16,
                                     max_epochs=15, patience=3, generator=gen, monitor=monitor)
        runs.append((found, [p.detach().clone() for p in heads.parameters()]))
    (loss_run, loss_params), (metric_run, metric_params) = runs
    assert np.isnan(metric_run[1]).all() and loss_run[1] is None
    np.testing.assert_array_equal(loss_run[2], metric_run[2])
    for a, b in zip(loss_params, metric_params):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
