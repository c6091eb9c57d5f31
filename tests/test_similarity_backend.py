"""Where CKA runs (_backend.py): NumPy by default, torch on request, one meaning of device=."""

import numpy as np
import pytest
import torch

import m2v_lab.devices
from m2v_lab.errors import OptionError
from m2v_lab.similarity import _backend, layer_similarity
from tests.test_similarity_cka import layered

#: torch devices this machine has: the CPU always, CUDA where there is a GPU
TORCH_DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.fixture
def rng():
    return np.random.default_rng(0)


@pytest.fixture
def mps_only(monkeypatch):
    """This machine as a Mac: no CUDA, and torch sees Apple's MPS."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(m2v_lab.devices, "_mps_available", lambda: True)


def test_feature_space_symmetrising_in_strips_gives_same_result(rng, monkeypatch):
    A = layered(rng, layers=3, n=40, dim=5)  # 15 feature columns: strips of 4 leave a ragged one
    want = layer_similarity(A, method="gram").values
    monkeypatch.setattr(_backend._NumpyBackend, "_STRIP", 4)
    np.testing.assert_allclose(layer_similarity(A, method="feature").values, want, atol=1e-10)


@pytest.mark.parametrize("device", TORCH_DEVICES)
@pytest.mark.parametrize("method", ["gram", "feature", "minibatch"])
def test_torch_path_equals_numpy(rng, method, device):
    A = layered(rng, layers=3, n=48, dim=5, offset=10.0, dtype=np.float32)
    B = layered(rng, layers=2, n=48, dim=7)
    kw = {"batch_size": 16} if method == "minibatch" else {}
    for other in (None, B):
        np_res = layer_similarity(A, other, method=method, **kw)
        th_res = layer_similarity(A, other, method=method, device=device, **kw)
        np.testing.assert_allclose(th_res.values, np_res.values, atol=1e-10)
        assert th_res.details["backend"] == f"torch:{device}"


@pytest.mark.parametrize("device", TORCH_DEVICES)
def test_torch_rbf_equals_numpy(rng, device):
    A = layered(rng, layers=2, n=30, dim=4)
    np.testing.assert_allclose(
        layer_similarity(A, kernel="rbf", device=device).values, layer_similarity(A, kernel="rbf").values, atol=1e-10
    )


@pytest.mark.parametrize("device", [None, "auto"])
@pytest.mark.parametrize("method,kw", [("gram", {}), ("feature", {}), ("minibatch", {"batch_size": 16}),
                                       ("gram", {"kernel": "rbf"})])  # fmt: skip
def test_auto_device_gives_the_numpy_numbers(rng, device, method, kw):
    A = layered(rng, layers=3, n=48, dim=5, offset=10.0, dtype=np.float32)
    B = layered(rng, layers=2, n=48, dim=7)
    got = layer_similarity(A, B, method=method, device=device, **kw)
    np.testing.assert_allclose(got.values, layer_similarity(A, B, method=method, **kw).values, atol=1e-10)
    assert got.details["backend"] == ("torch:cuda" if torch.cuda.is_available() else "numpy")


def test_auto_device_takes_cuda_when_torch_sees_a_gpu_while_the_default_stays_numpy(rng, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert _backend.get_backend("auto").name == _backend.get_backend(None).name == "torch:cuda"
    assert layer_similarity(layered(rng)).details["backend"] == "numpy"


def test_auto_device_on_a_mac_stays_with_numpy(rng, mps_only):
    A = layered(rng)
    got = layer_similarity(A, device="auto")
    assert got.details["backend"] == "numpy"
    np.testing.assert_allclose(got.values, layer_similarity(A).values, atol=0)


def test_mps_request_is_refused_for_want_of_float64(rng, mps_only):
    with pytest.raises(OptionError, match="float64"):
        layer_similarity(layered(rng), device="mps")


def test_cuda_request_without_cuda_raises_option_error(rng):
    if torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    with pytest.raises(OptionError, match="CUDA"):
        layer_similarity(layered(rng), device="cuda")


@pytest.mark.parametrize("device", ["gpu", "cuda:x", 2.5, "NumPy"])
def test_a_device_that_is_not_one_raises_option_error(rng, device):
    with pytest.raises(OptionError, match="device="):
        layer_similarity(layered(rng), device=device)


@pytest.mark.parametrize("device", TORCH_DEVICES)
@pytest.mark.parametrize("measure,kw", [("procrustes", {}), ("svcca", {}), ("svcca", {"n_components": 2}),
                                        ("pwcca", {})])  # fmt: skip
def test_svd_measures_run_in_torch_linalg_and_equal_numpy(rng, device, measure, kw):
    A = layered(rng, layers=3, n=60, dim=5, offset=10.0, dtype=np.float32)
    B = layered(rng, layers=2, n=60, dim=7) + A[0, :, :1]
    for other in (None, B):
        th = layer_similarity(A, other, measure=measure, device=device, **kw)
        np.testing.assert_allclose(th.values, layer_similarity(A, other, measure=measure, **kw).values, atol=1e-10)
        assert th.details["backend"] == f"torch:{device}"


@pytest.mark.parametrize("device", TORCH_DEVICES)
def test_mixed_precision_grams_in_torch_equal_numpy(rng, device):
    A = layered(rng, layers=3, n=48, dim=5, offset=1e3, dtype=np.float32)
    got = layer_similarity(A, method="gram", device=device)
    assert got.details["precision"] == "mixed"
    np.testing.assert_allclose(got.values, layer_similarity(A, method="gram").values, rtol=0, atol=1e-9)


@pytest.mark.parametrize("device", TORCH_DEVICES)
@pytest.mark.parametrize("measure,kw", [("cka", {}), ("cka", {"kernel": "rbf"}), ("procrustes", {})])
def test_permutation_null_in_torch_equals_numpy(rng, device, measure, kw):
    from m2v_lab.similarity import permutation_test

    A = layered(rng, layers=3, n=40, dim=5)
    B = layered(rng, layers=2, n=40, dim=7) + A[0, :, :1]
    th = permutation_test(A, B, n_permutations=9, measure=measure, device=device, **kw)
    np_ = permutation_test(A, B, n_permutations=9, measure=measure, **kw)
    np.testing.assert_allclose(th.replicates, np_.replicates, rtol=0, atol=1e-10)
