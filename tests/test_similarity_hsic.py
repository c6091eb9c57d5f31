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
    whole = layer_similarity(A, method="gram").values
    monkeypatch.setattr(hsic, "MEMORY_BYTES", 8 * 41 * 3 * 4)  # 4 rows per block, ragged last block
    np.testing.assert_allclose(layer_similarity(A, method="gram").values, whole, atol=1e-12)


def test_stream_feature_chunks_split_for_memory_give_same_result(rng, monkeypatch):
    import m2v_lab.similarity.hsic as hsic

    A = layered(rng, layers=2, n=50, dim=3)
    want = layer_similarity(A, method="feature").values
    monkeypatch.setattr(hsic, "MEMORY_BYTES", 8 * 6 * 7)  # pieces of 7 rows
    np.testing.assert_allclose(layer_similarity(A, method="feature").values, want, atol=1e-12)
