"""CKA (cka.py): agreement with the paper's formulas, the computation paths, and the properties CKA must have."""

import warnings

import numpy as np
import pytest

from m2v_lab.errors import OptionError
from m2v_lab.similarity import choose_method, cka, layer_similarity

# --- reference formulas, written from the definitions (not from the module) --------------


def ref_gram(x, kernel="linear", threshold=0.5):
    dot = x @ x.T
    if kernel == "linear":
        return dot
    sq = np.diag(dot)
    sq_dist = sq[:, None] + sq[None, :] - 2 * dot
    return np.exp(-sq_dist / (2 * threshold**2 * np.median(sq_dist)))


def ref_hsic_biased(K, L):
    n = K.shape[0]
    H = np.eye(n) - np.ones((n, n)) / n
    return np.trace(K @ H @ L @ H) / (n - 1) ** 2


def ref_hsic_unbiased(K, L):
    """Song et al. (2012), eq. 5."""
    n = K.shape[0]
    Kt, Lt = K - np.diag(np.diag(K)), L - np.diag(np.diag(L))
    one = np.ones(n)
    return (
        np.trace(Kt @ Lt)
        + (one @ Kt @ one) * (one @ Lt @ one) / ((n - 1) * (n - 2))
        - 2 / (n - 2) * (one @ Kt @ Lt @ one)
    ) / (n * (n - 3))


def ref_cka(x, y, *, kernel="linear", debiased=False, threshold=0.5):
    K, L = ref_gram(x, kernel, threshold), ref_gram(y, kernel, threshold)
    h = ref_hsic_unbiased if debiased else ref_hsic_biased
    return h(K, L) / np.sqrt(h(K, K) * h(L, L))


def ref_matrix(A, B, **kw):
    return np.array([[ref_cka(a, b, **kw) for b in B] for a in A])


# --- data -----------------------------------------------------------------------------------


def layered(rng, layers=4, n=60, dim=8, offset=0.0, dtype=np.float64):
    """Layers that drift from one another, like a residual stream."""
    x = rng.standard_normal((n, dim))
    out = []
    for _ in range(layers):
        x = x + 0.7 * rng.standard_normal((n, dim))
        out.append(x.copy())
    return (np.stack(out) + offset).astype(dtype)


def chunks_of(A, sizes):
    edges = np.cumsum([0, *sizes])
    assert edges[-1] == A.shape[1]
    return [A[:, a:b] for a, b in zip(edges[:-1], edges[1:])]


@pytest.fixture
def rng():
    return np.random.default_rng(0)


@pytest.fixture
def demo_xy():
    np.random.seed(1337)
    X = np.random.randn(100, 10)
    Y = np.random.randn(100, 10) + X
    return X, Y


# --- agreement with Kornblith et al. --------------------------------------------------------


def test_reference_formulas_reproduce_kornblith_demo(demo_xy):
    X, Y = demo_xy
    assert ref_cka(X, Y) == pytest.approx(0.55761, abs=1e-5)
    assert ref_cka(X, Y, debiased=True) == pytest.approx(0.51346, abs=1e-5)
    assert ref_cka(X, Y, kernel="rbf") == pytest.approx(0.65483, abs=1e-5)


def test_cka_reproduces_kornblith_demo_values(demo_xy):
    X, Y = demo_xy
    assert cka(X, Y) == pytest.approx(0.55761, abs=1e-5)
    assert cka(X, Y, debiased=True) == pytest.approx(0.51346, abs=1e-5)
    assert cka(X, Y, kernel="rbf", sigma=0.5) == pytest.approx(0.65483, abs=1e-5)


@pytest.mark.parametrize("kernel,threshold", [("linear", 0.5), ("rbf", 0.2), ("rbf", 0.8)])
@pytest.mark.parametrize("debiased", [False, True])
def test_pair_cka_matches_reference_formulas(rng, kernel, threshold, debiased):
    X = rng.standard_normal((40, 7))
    Y = np.tanh(X @ rng.standard_normal((7, 5))) + 0.5 * rng.standard_normal((40, 5))
    got = cka(X, Y, kernel=kernel, debiased=debiased, sigma=threshold)
    assert got == pytest.approx(ref_cka(X, Y, kernel=kernel, debiased=debiased, threshold=threshold), abs=1e-10)


@pytest.mark.parametrize("method,precision,tol", [("gram", "float64", 1e-12), ("gram", "mixed", 1e-7),
                                                  ("feature", "mixed", 1e-12)])  # fmt: skip
@pytest.mark.parametrize("debiased", [False, True])
def test_all_pairs_match_reference_per_pair_across_models(rng, method, precision, tol, debiased):
    # feature space is float64 whatever precision says; mixed Gram space is within its error
    A = layered(rng, layers=3, n=50, dim=6)
    B = layered(rng, layers=4, n=50, dim=9) + A[0, :, :1]  # related, other shape
    res = layer_similarity(A, B, method=method, debiased=debiased, precision=precision)
    np.testing.assert_allclose(res.values, ref_matrix(A, B, debiased=debiased), rtol=0, atol=tol)


def transformer_like(rng, layers=4, n=300, dim=64):
    """A residual stream with a large common offset and three loud dimensions, plus one unrelated layer."""
    x = rng.standard_normal((n, dim))
    out = []
    for _ in range(layers - 1):
        x = x + 0.5 * rng.standard_normal((n, dim))
        out.append(x + 50.0 * rng.standard_normal(dim) ** 2)
    out.append(rng.standard_normal((n, dim)))
    data = np.stack(out).astype(np.float32)
    data[:, :, :3] *= 60.0
    return data


@pytest.mark.parametrize("debiased", [False, True])
def test_mixed_precision_default_stays_within_1e7_of_float64(rng, debiased):
    A = transformer_like(rng)
    mixed = layer_similarity(A, method="gram", debiased=debiased)
    exact = layer_similarity(A, method="gram", debiased=debiased, precision="float64")
    assert mixed.details["precision"] == "mixed" and exact.details["precision"] == "float64"
    np.testing.assert_allclose(mixed.values, exact.values, rtol=0, atol=1e-7)  # 1e-9 to 3e-9 measured
    assert abs(mixed.values[0, -1]) < 0.05  # near-zero debiased values keep their sign and size


def test_all_pairs_rbf_matches_reference(rng):
    A = layered(rng, layers=3, n=30, dim=5)
    res = layer_similarity(A, kernel="rbf", sigma=0.4, debiased=True)
    np.testing.assert_allclose(res.values, ref_matrix(A, A, kernel="rbf", debiased=True, threshold=0.4), atol=1e-10)
    assert res.method == "gram" and res.details["sigma"] == 0.4


@pytest.mark.parametrize("debiased", [False, True])
def test_streaming_equals_in_memory(rng, debiased):
    A = layered(rng, layers=3, n=90, dim=7, offset=1e3, dtype=np.float32)
    B = layered(rng, layers=2, n=90, dim=4, offset=-50.0, dtype=np.float32)
    sizes = [13, 1, 30, 7, 39]  # clips of different lengths, one of a single frame
    want = layer_similarity(A, debiased=debiased, method="gram").values
    got = layer_similarity(iter(chunks_of(A, sizes)), debiased=debiased)
    assert got.method == "feature" and got.n == 90
    np.testing.assert_allclose(got.values, want, atol=1e-8)
    want_ab = layer_similarity(A, B, debiased=debiased, method="gram").values
    got_ab = layer_similarity(chunks_of(A, sizes), (c for c in chunks_of(B, sizes)), debiased=debiased)
    np.testing.assert_allclose(got_ab.values, want_ab, atol=1e-8)


def naive_minibatch_cka(A, B, batches):
    """Per batch and per pair: Grams, unbiased HSIC; average weighted by batch size."""
    hab = np.zeros((len(A), len(B)))
    haa, hbb = np.zeros(len(A)), np.zeros(len(B))
    for sl in batches:
        m = sl.stop - sl.start
        Ks = [ref_gram(a[sl]) for a in A]
        Ls = [ref_gram(b[sl]) for b in B]
        hab += m * np.array([[ref_hsic_unbiased(K, L) for L in Ls] for K in Ks])
        haa += m * np.array([ref_hsic_unbiased(K, K) for K in Ks])
        hbb += m * np.array([ref_hsic_unbiased(L, L) for L in Ls])
    return hab / np.sqrt(np.outer(haa, hbb))


@pytest.mark.parametrize(
    "n,batch_size,batches",
    [
        (110, 25, [slice(0, 25), slice(25, 50), slice(50, 75), slice(75, 100), slice(100, 110)]),
        (102, 25, [slice(0, 25), slice(25, 50), slice(50, 75), slice(75, 102)]),  # tail of 2 joins
    ],
)
def test_minibatch_matches_naive_per_batch_reference(rng, n, batch_size, batches):
    A = layered(rng, layers=3, n=n, dim=6)
    B = layered(rng, layers=2, n=n, dim=5) + A[1, :, :1]
    res = layer_similarity(A, B, method="minibatch", batch_size=batch_size)
    np.testing.assert_allclose(res.values, naive_minibatch_cka(A, B, batches), atol=1e-10)
    assert res.details["batches"] == len(batches) and res.estimator == "debiased"


def test_minibatch_stream_uses_each_chunk_as_a_batch(rng):
    A = layered(rng, layers=2, n=60, dim=5)
    sizes = [20, 9, 31]
    res = layer_similarity(iter(chunks_of(A, sizes)), method="minibatch")
    batches = [slice(0, 20), slice(20, 29), slice(29, 60)]
    np.testing.assert_allclose(res.values, naive_minibatch_cka(A, A, batches), atol=1e-10)


@pytest.mark.parametrize(
    "sizes,edges",
    [([30, 25], [0, 16, 32, 48, 55]), ([30, 21], [0, 16, 32, 51])],  # remainder 7 stays, 3 joins
)
def test_minibatch_stream_rebatches_to_batch_size(rng, sizes, edges):
    A = layered(rng, layers=2, n=sum(sizes), dim=4)
    res = layer_similarity((c for c in chunks_of(A, sizes)), method="minibatch", batch_size=16)
    batches = [slice(a, b) for a, b in zip(edges[:-1], edges[1:])]
    np.testing.assert_allclose(res.values, naive_minibatch_cka(A, A, batches), atol=1e-10)


# --- properties -------------------------------------------------------------------------------


@pytest.mark.parametrize("kernel,debiased", [("linear", False), ("linear", True), ("rbf", False), ("rbf", True)])
def test_cka_of_a_representation_with_itself_is_one(rng, kernel, debiased):
    X = rng.standard_normal((30, 6))
    assert cka(X, X, kernel=kernel, debiased=debiased) == pytest.approx(1.0, abs=1e-12)
    res = layer_similarity(layered(rng, n=30), kernel=kernel, debiased=debiased)
    np.testing.assert_allclose(np.diag(res.values), 1.0, atol=1e-12)


@pytest.mark.parametrize("method", ["gram", "feature"])
def test_symmetry(rng, method):
    A = layered(rng, layers=4, n=40, dim=6)
    B = layered(rng, layers=3, n=40, dim=4)
    within = layer_similarity(A, method=method).values
    np.testing.assert_allclose(within, within.T, atol=1e-12)
    np.testing.assert_allclose(
        layer_similarity(A, B, method=method).values, layer_similarity(B, A, method=method).values.T, atol=1e-12
    )
    X, Y = A[0], B[1]
    assert cka(X, Y, debiased=True) == pytest.approx(cka(Y, X, debiased=True), abs=1e-12)


@pytest.mark.parametrize("kernel,debiased", [("linear", False), ("linear", True), ("rbf", True)])
@pytest.mark.parametrize("scale", [1e-3, 1.0, 1e3])
def test_invariance_to_orthogonal_transform_isotropic_scaling_and_translation(rng, kernel, debiased, scale):
    X = rng.standard_normal((50, 6))
    Y = X @ rng.standard_normal((6, 4)) + rng.standard_normal((50, 4))
    Q, _ = np.linalg.qr(rng.standard_normal((6, 6)))
    moved = scale * X @ Q + rng.standard_normal(6) * 100
    assert cka(moved, Y, kernel=kernel, debiased=debiased) == pytest.approx(
        cka(X, Y, kernel=kernel, debiased=debiased), abs=1e-9
    )


def test_not_invariant_to_anisotropic_scaling(rng):
    # the invariance tests above could pass for a constant function; this one cannot
    X = rng.standard_normal((50, 6))
    Y = X + rng.standard_normal((50, 6))
    assert abs(cka(X * [1, 1, 1, 1, 1, 50], Y) - cka(X, Y)) > 0.05


def test_debiased_is_near_zero_for_independent_data_where_biased_is_not(rng):
    X, Y = rng.standard_normal((80, 200)), rng.standard_normal((80, 200))
    assert abs(cka(X, Y, debiased=True)) < 0.03
    assert cka(X, Y) > 0.5


def test_float32_with_large_common_offset_matches_float64(rng):
    A64 = layered(rng, layers=3, n=200, dim=16) * 0.1 + 2e3
    A32 = A64.astype(np.float32)
    want = {d: layer_similarity(A32.astype(np.float64), debiased=d, method="gram").values for d in (False, True)}
    for method in ("gram", "feature"):
        for debiased in (False, True):
            got = layer_similarity(A32, debiased=debiased, method=method).values
            np.testing.assert_allclose(got, want[debiased], atol=1e-9)
    # what this protects against: float32 Grams of the uncentred features
    K = [a @ a.T for a in A32]
    naive = ref_hsic_unbiased(K[0].astype(np.float64), K[1].astype(np.float64)) / np.sqrt(
        ref_hsic_unbiased(K[0].astype(np.float64), K[0].astype(np.float64))
        * ref_hsic_unbiased(K[1].astype(np.float64), K[1].astype(np.float64))
    )
    assert abs(naive - want[True][0, 1]) > 1e-3


@pytest.mark.parametrize("method", ["gram", "feature", "minibatch"])
def test_zero_variance_layer_gives_nan_and_warning_naming_it(rng, method):
    A = layered(rng, layers=3, n=40, dim=5, dtype=np.float32)
    A[1] = np.float32(0.1)  # a constant layer; its float64 mean is not exactly 0.1
    kw = {"batch_size": 20} if method == "minibatch" else {}
    with pytest.warns(RuntimeWarning, match="'block_1'"):
        res = layer_similarity(A, method=method, **kw)
    assert np.isnan(res.values[1]).all() and np.isnan(res.values[:, 1]).all()
    keep = [0, 2]
    np.testing.assert_allclose(
        res.values[np.ix_(keep, keep)], layer_similarity(A[keep], method=method, **kw).values, atol=1e-10
    )


def test_zero_variance_layer_rbf_and_stream(rng):
    A = layered(rng, layers=2, n=30, dim=4)
    A[0] = 3.0
    with pytest.warns(RuntimeWarning, match="pre_transformer"):
        assert np.isnan(layer_similarity(A, kernel="rbf").values[0]).all()
    with pytest.warns(RuntimeWarning, match="pre_transformer"):
        assert np.isnan(layer_similarity(chunks_of(A, [10, 20])).values[0]).all()
    with pytest.warns(RuntimeWarning):
        assert np.isnan(cka(A[0], A[1]))


# --- choosing the method, options ---------------------------------------------------------------


def test_auto_picks_gram_below_and_feature_above_the_crossover(rng):
    # crossover n* = L·d²/(2d+L): 13 × 768 → about 5,000
    assert choose_method(4000, 13, 768) == "gram"
    assert choose_method(6000, 13, 768) == "feature"
    assert layer_similarity(layered(rng, layers=2, n=60, dim=3)).method == "feature"  # n* = 2·9/8
    assert layer_similarity(layered(rng, layers=2, n=20, dim=30)).method == "gram"


def test_no_warning_for_ordinary_data(rng):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        layer_similarity(layered(rng))


@pytest.mark.parametrize(
    "options,match",
    [
        ({"kernel": "poly"}, "kernel='poly'"),
        ({"method": "fast"}, "method='fast'"),
        ({"debiased": "yes"}, "debiased='yes'"),
        ({"kernel": "rbf", "sigma": 0}, "sigma=0"),
        ({"kernel": "rbf", "sigma": "wide"}, "sigma='wide'"),
        ({"kernel": "rbf", "method": "feature"}, "Gram space only"),
        ({"method": "minibatch"}, "needs batch_size"),
        ({"method": "minibatch", "batch_size": 3}, "batch_size=3"),
        ({"method": "minibatch", "batch_size": 25.0}, "batch_size=25.0"),
        ({"method": "minibatch", "batch_size": 20, "debiased": False}, "debiased"),
        ({"batch_size": 10}, "batch_size is for"),
        ({"precision": "float32"}, "precision='float32'"),
        ({"precision": None}, "precision=None"),
    ],
)
def test_bad_cka_options_raise_option_errors(rng, options, match):
    with pytest.raises(OptionError, match=match):
        layer_similarity(layered(rng), **options)


def test_streams_refuse_gram_space_with_an_option_error(rng):
    with pytest.raises(OptionError, match="'feature' or 'minibatch'"):
        layer_similarity(chunks_of(layered(rng, n=20), [10, 10]), method="gram")


def test_pair_cka_checks_its_options(rng):
    X = rng.standard_normal((20, 3))
    with pytest.raises(OptionError, match="kernel='poly'"):
        cka(X, X, kernel="poly")
