"""m2v_lab.projection: 2-D maps of one layer's clips (pure computation), reachable as ``m2v.projection``."""

import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest

from m2v_lab.errors import AnalysisError
from m2v_lab.projection import available_methods, project

ROOT = Path(__file__).resolve().parent.parent


def test_pca_projection_is_the_top_two_components_with_fixed_signs():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((40, 6)) * [5, 3, 1, 1, 1, 1]
    proj = project(X, method="pca", standardize=False, name="block_2")
    centred = X - X.mean(0)
    _, s, Vt = np.linalg.svd(centred, full_matrices=False)
    expected = centred @ Vt[:2].T
    signs = np.sign(expected[0] / proj.coords[0])
    np.testing.assert_allclose(proj.coords * signs, expected, atol=1e-10)
    np.testing.assert_allclose(proj.details["explained_variance_ratio"], s[:2] ** 2 / (s ** 2).sum())
    assert proj.coords.shape == (40, 2) and proj.title == "block_2 · PCA"
    assert proj.axis_labels[0].startswith("PC 1 (")
    # the orientation follows the data, not the SVD routine: mirrored data gives the mirrored map
    np.testing.assert_allclose(project(-X, standardize=False).coords, -proj.coords, atol=1e-10)


def test_standardized_pca_is_not_dominated_by_one_huge_dimension():
    rng = np.random.default_rng(1)
    signal = np.repeat([0.0, 1.0], 20)
    X = np.column_stack([1000 * rng.standard_normal(40), signal + 0.05 * rng.standard_normal(40),
                         signal + 0.05 * rng.standard_normal(40)])
    raw, scaled = project(X, standardize=False), project(X, standardize=True)
    separation = lambda c: abs(c[:20, 0].mean() - c[20:, 0].mean()) / c[:, 0].std()  # noqa: E731
    assert separation(scaled.coords) > 1.5 > 0.5 > separation(raw.coords)


def test_tsne_is_seeded_and_works_on_a_small_set():
    X = np.random.default_rng(2).standard_normal((12, 5))
    a, b = project(X, method="tsne", seed=3), project(X, method="tsne", seed=3)
    np.testing.assert_array_equal(a.coords, b.coords)
    assert a.coords.shape == (12, 2) and a.details["perplexity"] == pytest.approx(11 / 3)


def test_umap_is_offered_only_when_installed_and_then_used(monkeypatch):
    import importlib.util

    real_find_spec = importlib.util.find_spec

    def umap_installed(installed):
        def find_spec(name, *args):
            if name == "umap":
                return object() if installed else None
            return real_find_spec(name, *args)
        monkeypatch.setattr(importlib.util, "find_spec", find_spec)

    umap_installed(False)
    assert available_methods() == ("pca", "tsne")
    with pytest.raises(AnalysisError, match="pip install umap-learn"):
        project(np.zeros((5, 3)) + np.arange(5)[:, None], method="umap")

    calls = {}

    class FakeUMAP:
        def __init__(self, **options):
            calls.update(options)

        def fit_transform(self, X):
            return X[:, :2] * 2

    monkeypatch.setitem(sys.modules, "umap", types.SimpleNamespace(UMAP=FakeUMAP))
    umap_installed(True)
    proj = project(np.random.default_rng(0).standard_normal((8, 3)), method="umap", seed=5)
    assert available_methods() == ("pca", "tsne", "umap")
    assert proj.method == "umap" and calls["random_state"] == 5 and calls["n_neighbors"] == 7
    assert calls["init"].shape == (8, 2)


@pytest.mark.parametrize("X, match", [(np.zeros(5), "must be \\(n, dim\\)"), (np.zeros((2, 4)), "at least 3"),
                                      (np.array([[0.0, 1], [np.nan, 1], [2, 2]]), "NaN")])
def test_project_rejects_bad_input_with_the_reason(X, match):
    with pytest.raises(AnalysisError, match=match):
        project(X)


def test_projection_and_the_shared_modules_are_attributes_of_the_package():
    # a fresh interpreter: in this one, other tests have imported the submodules already
    code = ("import sys, m2v_lab as m2v\n"
            "assert 'm2v_lab.projection' not in sys.modules  # imported on first use, not with the package\n"
            "for name in ('projection', 'layers', 'settings', 'stacks', 'devices'):\n"
            "    assert name in dir(m2v), name\n"
            "    print(getattr(m2v, name).__name__)")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == [f"m2v_lab.{name}" for name in ("projection", "layers", "settings", "stacks",
                                                                   "devices")]


def test_m2v_projection_projects_a_layer():
    import m2v_lab as m2v

    proj = m2v.projection.project(np.random.default_rng(3).standard_normal((10, 4)), name="block_1")
    assert isinstance(proj, m2v.projection.Projection) and proj.coords.shape == (10, 2)
