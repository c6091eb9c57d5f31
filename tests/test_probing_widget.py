"""ProbeExplorer: every chosen layer probed in one run, its bar advancing as layers × folds are done."""

import numpy as np
import pandas as pd
import pytest

from m2v_lab.errors import FeaturesError, OptionError
from m2v_lab.features import Features
from m2v_lab.probing import probe_layers
from m2v_lab.widgets import ProbeExplorer
from tests.synthetic import tracks

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def feats():
    """Pooled features whose clip table holds a genre and the track group, as extract makes them."""
    X, y, groups = tracks(layers=5, informative=3, n_tracks=24, segments=1)
    n = X.shape[1]
    table = pd.DataFrame({"group": groups, "genre": np.array(["rock", "jazz", "pop", "folk"])[y]})
    return Features(layer_names=["pre_transformer"] + [f"block_{i}" for i in range(1, 5)], layer_indices=range(5),
                    clips=[f"c{i}" for i in range(n)], source_index=range(n),
                    meta={"model": "synthetic", "trained": False, "pool": "mean"}, pooled=X, clip_table=table)


def test_the_chosen_layers_are_probed_in_one_run_while_the_bar_advances(feats, monkeypatch):
    runs = []

    def counted(*args, **kwargs):
        runs.append(kwargs)
        return probe_layers(*args, **kwargs)

    monkeypatch.setattr("m2v_lab.widgets.probing.probe_layers", counted)
    view = ProbeExplorer(feats, label="genre", cv=3)  # labels and groups from feats.clip_table
    view.layers.control.value = (1, 4)
    shown = []
    view.progress.observe(lambda change: shown.append(change["new"]), names="value")
    view.run()
    assert view.last_error is None and len(runs) == 1
    assert shown == sorted(shown) and len(set(shown)) > 2 and shown[-1] == view.progress.max == 4
    alone = probe_layers(feats.select(layers=[1, 2, 3, 4]), "genre", groups="group", cv=3)
    pd.testing.assert_frame_equal(view.result.scores, alone.scores)
    assert "best layer <b>block 3</b>" in view.status.value


def test_an_unknown_probe_is_an_option_error_naming_the_probes(feats):
    with pytest.raises(OptionError, match=r"probe='svm': use one of \('ridge', 'logistic', 'mlp', 'mlp-marble'\)"):
        ProbeExplorer(feats, label="genre", probe="svm")


def test_without_groups_the_clips_are_offered_ungrouped_and_say_so(feats):
    view = ProbeExplorer(feats, label="genre", groups=None, cv=3)
    assert view.scope.options == (("all clips · 24 clips · not grouped", "(all)"),)
    with pytest.raises(FeaturesError, match=r"label='genre' cannot be probed with 7 ungrouped folds: "
                                            r"'\w+' has 6 clips, fewer than 7 folds"):
        ProbeExplorer(feats, label="genre", groups=None, cv=7)
