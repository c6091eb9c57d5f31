"""HSIC statistics (hsic.py): Gram space equals feature space, and memory limits do not change the numbers."""

import numpy as np
import pytest

from m2v_lab.similarity import layer_similarity
from tests.test_similarity_cka import layered


@pytest.fixture
def rng():
    return np.random.default_rng(0)


@pytest.mark.parametrize("debiased", [False, True])
def test_gram_space_equals_feature_space(rng, debiased):
    A = layered(rng, layers=5, n=70, dim=6, offset=30.0)
    B = layered(rng, layers=2, n=70, dim=11)
    for other in (None, B):
        gram = layer_similarity(A, other, method="gram", debiased=debiased)
        feat = layer_similarity(A, other, method="feature", debiased=debiased)
        np.testing.assert_allclose(gram.values, feat.values, atol=1e-10)


def test_gram_blocks_do_not_change_the_result(rng, monkeypatch):
    import m2v_lab.similarity.hsic as hsic

    A = layered(rng, layers=3, n=41, dim=5)
    for precision, bytes_per_entry in (("mixed", 12), ("float64", 8)):  # float32 slab + its float64 copy
        whole = layer_similarity(A, method="gram", precision=precision).values
        monkeypatch.setattr(hsic, "MEMORY_BYTES", bytes_per_entry * 41 * 3 * 4)  # 4 rows per block, ragged last
        np.testing.assert_allclose(layer_similarity(A, method="gram", precision=precision).values, whole, atol=1e-12)
        monkeypatch.undo()


def test_stream_feature_chunks_split_for_memory_give_same_result(rng, monkeypatch):
    import m2v_lab.similarity.hsic as hsic

    A = layered(rng, layers=2, n=50, dim=3)
    want = layer_similarity(A, method="feature").values
    monkeypatch.setattr(hsic, "MEMORY_BYTES", 8 * 6 * 7)  # pieces of 7 rows
    np.testing.assert_allclose(layer_similarity(A, method="feature").values, want, atol=1e-12)


@pytest.mark.parametrize("debiased,n", [(False, 400), (True, 401)])  # the median of n² entries: two middles, or one
def test_rbf_cka_works_in_blocks_of_bounded_memory(rng, monkeypatch, debiased, n):
    import tracemalloc

    import m2v_lab.similarity.hsic as hsic
    from tests.test_similarity_cka import ref_matrix

    L = 6  # all layers' n × n Grams: 7.3 MiB, which the old code held (per side)
    A = layered(rng, layers=L, n=n, dim=8)
    monkeypatch.setattr(hsic, "MEMORY_BYTES", 2**20)
    tracemalloc.start()
    try:
        res = layer_similarity(A, kernel="rbf", debiased=debiased, sigma=0.7)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 3 * 2**20  # one block (1 MiB), one layer's n(n-1)/2 distances (0.6 MiB) and small change
    few = [0, 3, 5]
    want = ref_matrix(A[few], A[few], kernel="rbf", debiased=debiased, threshold=0.7)
    np.testing.assert_allclose(res.values[np.ix_(few, few)], want, rtol=0, atol=1e-10)

