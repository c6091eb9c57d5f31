"""RSA, Procrustes, SVCCA, PWCCA and mutual kNN: reference agreement, invariances, requirements."""

import numpy as np
import pytest
from scipy.linalg import orthogonal_procrustes
from scipy.spatial.distance import pdist
from scipy.stats import pearsonr, spearmanr

from m2v_lab.errors import AnalysisError, OptionError
from m2v_lab.similarity import layer_similarity


@pytest.fixture
def rng():
    return np.random.default_rng(1)


def pair(rng, n=80, dx=6, dy=5, noise=1.0):
    X = rng.standard_normal((n, dx))
    Y = np.tanh(X @ rng.standard_normal((dx, dy))) + noise * rng.standard_normal((n, dy))
    return X, Y


def one(measure, X, Y, **kw):
    return layer_similarity(X[None], Y[None], measure=measure, **kw).values[0, 0]


def moved(rng, X, scale):
    Q, _ = np.linalg.qr(rng.standard_normal((X.shape[1], X.shape[1])))
    return scale * X @ Q + 50 * rng.standard_normal(X.shape[1])


# --- RSA ------------------------------------------------------------------------------------


@pytest.mark.parametrize("distance", ["correlation", "euclidean"])
@pytest.mark.parametrize("compare", ["spearman", "pearson"])
def test_rsa_matches_scipy_reference(rng, distance, compare):
    X, Y = pair(rng, n=40)
    corr = spearmanr if compare == "spearman" else pearsonr
    want = corr(pdist(X, distance), pdist(Y, distance))[0]
    assert one("rsa", X, Y, distance=distance, compare=compare) == pytest.approx(want, abs=1e-10)


def test_rsa_spearman_handles_tied_distances_like_scipy(rng):
    X = rng.integers(0, 3, size=(30, 2)).astype(float)  # many equal distances
    Y = X + rng.integers(0, 2, size=(30, 2))
    want = spearmanr(pdist(X, "euclidean"), pdist(Y, "euclidean"))[0]
    assert one("rsa", X, Y, distance="euclidean") == pytest.approx(want, abs=1e-10)


@pytest.mark.parametrize("scale", [1e-3, 1e3])
def test_rsa_euclidean_invariant_to_rotation_scaling_translation(rng, scale):
    X, Y = pair(rng)
    assert one("rsa", moved(rng, X, scale), Y, distance="euclidean") == pytest.approx(
        one("rsa", X, Y, distance="euclidean"), abs=1e-9
    )


def test_rsa_self_similarity_is_one_and_matrix_symmetric(rng):
    A = np.stack(pair(rng, dy=6))
    res = layer_similarity(A, measure="rsa")
    np.testing.assert_allclose(np.diag(res.values), 1.0)
    np.testing.assert_allclose(res.values, res.values.T)
    assert res.estimator == "spearman" and res.details["distance"] == "correlation"


# --- Procrustes -----------------------------------------------------------------------------


def test_procrustes_matches_scipy_residual_and_nuclear_norm(rng):
    X, Y = pair(rng, dy=6)
    Xn, Yn = [(Z - Z.mean(0)) / np.linalg.norm(Z - Z.mean(0)) for Z in (X, Y)]
    R, _ = orthogonal_procrustes(Xn, Yn)
    residual = np.linalg.norm(Xn @ R - Yn) ** 2
    value = one("procrustes", X, Y)
    assert 2 - 2 * value == pytest.approx(residual, abs=1e-10)
    assert value == pytest.approx(np.linalg.norm(Xn.T @ Yn, "nuc"), abs=1e-10)


@pytest.mark.parametrize("scale", [1e-3, 1e3])
def test_procrustes_invariances_and_range(rng, scale):
    X, Y = pair(rng)
    base = one("procrustes", X, Y)
    assert 0 < base < 1
    assert one("procrustes", moved(rng, X, scale), Y) == pytest.approx(base, abs=1e-9)
    assert one("procrustes", X, moved(rng, X, scale)) == pytest.approx(1.0, abs=1e-9)
    # not invariant to a general linear map
    assert abs(one("procrustes", X * np.r_[np.ones(5), 30.0], Y) - base) > 0.05


# --- CCA family -----------------------------------------------------------------------------


def inv_sqrt(C):
    w, V = np.linalg.eigh(C)
    return V @ np.diag(w**-0.5) @ V.T


def ref_cca(X, Y):
    """Canonical correlations and the X-side canonical variates, from covariances."""
    Xc, Yc = X - X.mean(0), Y - Y.mean(0)
    Wx, Wy = inv_sqrt(Xc.T @ Xc), inv_sqrt(Yc.T @ Yc)
    U, rho, _ = np.linalg.svd(Wx @ Xc.T @ Yc @ Wy)
    return rho, Xc @ Wx @ U


def ref_svcca(X, Y, k):
    reduce = lambda Z: (lambda U, s: U[:, :k] * s[:k])(*np.linalg.svd(Z - Z.mean(0), full_matrices=False)[:2])
    return ref_cca(reduce(X), reduce(Y))[0].mean()


def ref_pwcca(X, Y):
    rho, H = ref_cca(X, Y)
    H = H[:, : rho.size] / np.linalg.norm(H[:, : rho.size], axis=0)
    alpha = np.abs(H.T @ (X - X.mean(0))).sum(1)
    return np.sum(alpha / alpha.sum() * rho)


def test_svcca_matches_reference_cca_of_top_directions(rng):
    X, Y = pair(rng, n=120, dx=8, dy=7, noise=0.5)
    assert one("svcca", X, Y, n_components=4) == pytest.approx(ref_svcca(X, Y, 4), abs=1e-10)
    full = one("svcca", X, Y, variance=1.0)
    assert full == pytest.approx(ref_cca(X, Y)[0].mean(), abs=1e-10)


def test_svcca_variance_counts_directions_by_variance(rng):
    X = rng.standard_normal((100, 4)) * [10.0, 5.0, 0.1, 0.1]
    Y = np.c_[X[:, :2] + 0.1 * rng.standard_normal((100, 2)), 0.1 * rng.standard_normal((100, 2))]
    # 99 % of the variance lies in 2 directions: dropping the small ones leaves the shared part
    assert one("svcca", X, Y, variance=0.99) > 0.99
    assert one("svcca", X, Y) == one("svcca", X, Y, variance=0.99)  # the default, as in the paper
    assert one("svcca", X, Y, variance=1.0) < 0.8
    res = layer_similarity(X[None], Y[None], measure="svcca", n_components=1)
    assert res.details == {"n_components": 1, "backend": "numpy"}


@pytest.mark.parametrize("keep,new", [(1, {"n_components": 1}), (3, {"n_components": 3}), (1.0, {"variance": 1.0}),
                                      (0.9, {"variance": 0.9})])  # fmt: skip
def test_svcca_keep_still_works_but_warns_with_the_new_name(rng, keep, new):
    X, Y = pair(rng, n=120, dx=8, dy=7, noise=0.5)
    with pytest.warns(DeprecationWarning, match=f"keep={keep!r} is deprecated: it means {next(iter(new))}"):
        old = one("svcca", X, Y, keep=keep)
    assert old == one("svcca", X, Y, **new)


def test_pwcca_matches_reference_weighting(rng):
    X, Y = pair(rng, n=150, dx=5, dy=7, noise=0.7)
    assert one("pwcca", X, Y) == pytest.approx(ref_pwcca(X, Y), abs=1e-10)


@pytest.mark.parametrize("measure", ["svcca", "pwcca"])
def test_cca_measures_invariances(rng, measure):
    X, Y = pair(rng, n=100)
    base = one(measure, X, Y)
    assert 0 < base < 1
    assert one(measure, 1e3 * X + 7.0, Y) == pytest.approx(base, abs=1e-9)
    perm = rng.permutation(X.shape[1])
    assert one(measure, -X[:, perm], Y) == pytest.approx(base, abs=1e-9)


def test_svcca_is_rotation_invariant_and_pwcca_is_not(rng):
    X, Y = pair(rng, n=100)
    Q, _ = np.linalg.qr(rng.standard_normal((6, 6)))
    assert one("svcca", X @ Q, Y) == pytest.approx(one("svcca", X, Y), abs=1e-9)
    # the weights come from Y, which has fewer neurons (5 < 6)
    assert one("pwcca", X @ Q, Y) == pytest.approx(one("pwcca", X, Y), abs=1e-9)
    R, _ = np.linalg.qr(rng.standard_normal((5, 5)))
    assert abs(one("pwcca", X, Y @ R) - one("pwcca", X, Y)) > 1e-4


@pytest.mark.parametrize("measure", ["svcca", "pwcca"])
def test_cca_measures_refuse_too_few_samples(rng, measure):
    X, Y = pair(rng, n=12, dx=8, dy=8)
    kw = {"variance": 1.0} if measure == "svcca" else {}
    with pytest.raises(AnalysisError, match="n - 1"):
        one(measure, X, Y, **kw)


# --- mutual kNN -----------------------------------------------------------------------------


def ref_mutual_knn(X, Y, k, metric):
    def nbrs(Z):
        if metric == "euclidean":
            Zc = Z - Z.mean(0)
            D = ((Zc[:, None] - Zc[None]) ** 2).sum(-1)
        else:  # Huh et al.: unit-length samples, nearest by inner product
            Zn = Z / np.linalg.norm(Z, axis=1, keepdims=True)
            D = -Zn @ Zn.T
        np.fill_diagonal(D, np.inf)
        return [set(np.argsort(row, kind="stable")[:k]) for row in D]

    return np.mean([len(a & b) / k for a, b in zip(nbrs(X), nbrs(Y))])


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
def test_mutual_knn_matches_brute_force(rng, metric):
    X, Y = pair(rng, n=60, noise=0.3)
    assert one("mutual_knn", X + 2.0, Y, k=5, metric=metric) == pytest.approx(ref_mutual_knn(X + 2.0, Y, 5, metric))


def test_mutual_knn_default_metric_is_cosine_as_huh_et_al(rng):
    X, Y = pair(rng, n=60, noise=0.3)
    X = X + 2.0  # an offset: cosine and centred Euclidean neighbours differ
    res = layer_similarity(X[None], Y[None], measure="mutual_knn", k=5)
    assert res.details["metric"] == "cosine"
    assert res.values[0, 0] == pytest.approx(ref_mutual_knn(X, Y, 5, "cosine"))
    assert res.values[0, 0] != pytest.approx(ref_mutual_knn(X, Y, 5, "euclidean"))


def test_mutual_knn_invariances_chance_and_self(rng):
    X, Y = pair(rng, n=60, noise=0.3)
    base = one("mutual_knn", X, Y, k=5, metric="euclidean")
    assert one("mutual_knn", moved(rng, X, 1e3), Y, k=5, metric="euclidean") == pytest.approx(base)
    res = layer_similarity(np.stack([X, rng.standard_normal((60, 6))]), measure="mutual_knn", k=5)
    assert res.values[0, 0] == 1.0
    assert abs(res.values[0, 1] - res.details["chance"]) < 0.06 < base


def test_mutual_knn_cosine_is_not_translation_invariant(rng):
    X, Y = pair(rng, n=60, noise=0.3)
    assert one("mutual_knn", X + 3.0, Y, k=5, metric="cosine") != one("mutual_knn", X, Y, k=5, metric="cosine")


# --- shared behaviour -----------------------------------------------------------------------


@pytest.mark.parametrize("measure,kw", [("rsa", {}), ("rsa", {"distance": "euclidean", "compare": "pearson"}),
                                        ("procrustes", {}), ("svcca", {"n_components": 3}), ("pwcca", {}),
                                        ("mutual_knn", {"k": 4, "metric": "euclidean"}), ("mutual_knn", {"k": 4})])
def test_statistics_permuted_equal_statistics_of_permuted_samples(rng, measure, kw):
    # what a permutation null relies on: reordering B's per-layer statistics instead of recomputing them
    from m2v_lab.similarity._inputs import Stack
    from m2v_lab.similarity.measures import make_measure

    A = np.stack(pair(rng, n=40, dy=6))
    B = rng.standard_normal((2, 40, 5)) + A[:1, :, :1]
    order = rng.permutation(40)
    m = make_measure(measure, **kw)
    a = m.prepare(Stack(A, ("a0", "a1"), "A"))
    b = m.prepare(Stack(B, ("b0", "b1"), "B"))
    got = m.compare(a, m.permuted(b, order), symmetric=False)
    np.testing.assert_allclose(got, layer_similarity(A, B[:, order], measure=measure, **kw).values, atol=1e-12)


@pytest.mark.parametrize(
    "measure,kw",
    [("rsa", {}), ("rsa", {"distance": "euclidean"}), ("procrustes", {}), ("svcca", {}), ("pwcca", {}),
     ("mutual_knn", {"k": 3})],
)  # fmt: skip
def test_constant_layer_gives_nan_and_warning(rng, measure, kw):
    A = np.stack([rng.standard_normal((40, 4)), np.full((40, 4), 2.5), rng.standard_normal((40, 4))])
    with pytest.warns(RuntimeWarning, match="'block_1'"):
        res = layer_similarity(A, measure=measure, **kw)
    assert np.isnan(res.values[1]).all() and np.isnan(res.values[:, 1]).all()
    assert np.isfinite(res.values[np.ix_([0, 2], [0, 2])]).all()


def test_across_models_with_different_shapes(rng):
    A = rng.standard_normal((3, 50, 4))
    B = rng.standard_normal((2, 50, 6))
    for measure in ("rsa", "procrustes", "svcca", "pwcca", "mutual_knn"):
        res = layer_similarity(A, B, measure=measure)
        assert res.values.shape == (3, 2) and res.cols == ("pre_transformer", "block_1")


@pytest.mark.parametrize(
    "measure,options,match",
    [
        ("rsa", {"distance": "cosine"}, "distance='cosine'"),
        ("rsa", {"compare": "kendall"}, "compare='kendall'"),
        ("svcca", {"keep": 0}, "keep=0"),
        ("svcca", {"keep": 1.5}, "keep=1.5"),
        ("svcca", {"keep": True}, "keep=True"),
        ("svcca", {"keep": "all"}, "keep='all'"),
        ("svcca", {"keep": 2, "n_components": 2}, "only the new ones"),
        ("svcca", {"n_components": 0}, "n_components=0"),
        ("svcca", {"n_components": 2.0}, "n_components=2.0"),
        ("svcca", {"variance": 0}, "variance=0"),
        ("svcca", {"variance": 1.5}, "variance=1.5"),
        ("svcca", {"n_components": 2, "variance": 0.9}, "give one of them"),
        ("mutual_knn", {"metric": "manhattan"}, "metric='manhattan'"),
        ("mutual_knn", {"k": 0}, "k=0"),
        ("mutual_knn", {"k": 29}, r"k=29.*< 29 \(n - 1 for these n = 30"),
        ("mutual_knn", {"k": 3.0}, "k=3.0"),
    ],
)
def test_bad_measure_options_raise_option_errors(rng, measure, options, match):
    with pytest.raises(OptionError, match=match):
        layer_similarity(rng.standard_normal((2, 30, 3)), measure=measure, **options)
