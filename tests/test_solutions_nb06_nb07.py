"""Reference solutions of notebooks 06 (tied_with_best) and 07 (missing_rows)."""

import pandas as pd
import pytest

from m2v_lab.solutions import nb06, nb07


def summary(means, highs, metric="accuracy"):
    names = ["pre_transformer"] + [f"block_{i}" for i in range(1, len(means))]
    rows = [{"layer": i, "layer_name": n, "metric": metric, "mean": m, "ci_low": m - 0.1, "ci_high": h}
            for i, (n, m, h) in enumerate(zip(names, means, highs))]
    other = [{**r, "metric": "f1_macro", "mean": 1.0, "ci_high": 1.0} for r in rows]   # ignored: another metric
    return pd.DataFrame(other + rows[::-1])                                            # any row order


def test_tied_with_best_keeps_the_best_and_every_layer_whose_interval_reaches_its_mean_in_layer_order():
    table = summary(means=[0.40, 0.55, 0.60, 0.30], highs=[0.59, 0.70, 0.75, 0.60])
    assert nb06.tied_with_best(table) == ["block_1", "block_2", "block_3"]


def test_tied_with_best_counts_an_interval_ending_exactly_at_the_best_mean_and_can_single_out_one_layer():
    assert nb06.tied_with_best(summary(means=[0.5, 0.8], highs=[0.8, 0.9])) == ["pre_transformer", "block_1"]
    assert nb06.tied_with_best(summary(means=[0.5, 0.8], highs=[0.79, 0.9])) == ["block_1"]


def test_tied_with_best_reads_the_metric_asked_for_and_refuses_one_the_summary_lacks():
    table = summary(means=[0.5, 0.8], highs=[0.6, 0.9])
    assert nb06.tied_with_best(table, metric="f1_macro") == ["pre_transformer", "block_1"]
    with pytest.raises(ValueError, match="no rows for metric 'r2'"):
        nb06.tied_with_best(table, metric="r2")


def test_tied_with_best_agrees_with_a_real_probe_summary():
    import numpy as np

    from m2v_lab.probing import probe_layers

    rng = np.random.default_rng(0)
    y = np.repeat(["a", "b"], 30)
    X = rng.normal(size=(3, 60, 8))
    X[2, :, 0] += np.where(y == "a", 3.0, -3.0)            # only the last layer knows the label
    result = probe_layers(X, y, groups=np.arange(60) // 3)
    tied = nb06.tied_with_best(result.summary())
    assert result.layer_names[result.best_layer()] in tied and len(tied) == 1


def test_missing_rows_lists_the_paths_as_written_in_row_order(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "a.wav").write_bytes(b"")
    (tmp_path / "sub" / "b.flac").write_bytes(b"")
    labels = pd.DataFrame({"path": ["sub/b.flac", "typo.wav", " a.wav ", None, "", "sub", "sub/c.flac"]})
    assert nb07.missing_rows(tmp_path, labels) == ["typo.wav", "", "", "sub", "sub/c.flac"]
    assert nb07.missing_rows(tmp_path, labels.iloc[[0, 2]]) == []


def test_missing_rows_takes_absolute_paths_as_they_are(tmp_path):
    (tmp_path / "a.wav").write_bytes(b"")
    labels = pd.DataFrame({"path": [str(tmp_path / "a.wav"), str(tmp_path / "gone.wav")]})
    assert nb07.missing_rows(tmp_path / "elsewhere", labels) == [str(tmp_path / "gone.wav")]
