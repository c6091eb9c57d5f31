"""layer_similarity's dispatch (api.py): which options go with which measure."""

import numpy as np
import pytest

from m2v_lab.errors import OptionError
from m2v_lab.similarity import layer_similarity


@pytest.mark.parametrize(
    "options,match",
    [
        ({"measure": "cca"}, "measure='cca'"),
        ({"measure": "CKA"}, "measure='CKA'"),
        ({"measure": "procrustes", "k": 3}, "do not apply"),
        ({"measure": "cka", "distance": "euclidean"}, "do not apply"),
        ({"measure": "rsa", "debiased": True}, "measure='cka' only"),
        ({"measure": "rsa", "kernel": "rbf"}, "measure='cka' only"),
        ({"measure": "svcca", "method": "gram"}, "measure='cka' only"),
        ({"measure": "mutual_knn", "device": "auto"}, r"\['device'\] apply to measure='cka' only"),
        ({"measure": "rsa", "device": "cpu"}, r"\['device'\] apply to measure='cka' only"),
        ({"measure": "procrustes", "precision": "float64"}, r"\['precision'\] apply to measure='cka' only"),
        ({"measure": "procrustes", "device": "gpu"}, "device='gpu'"),
        ({"measure": "svcca", "keep": 2, "variance": 0.5}, "only the new ones"),
    ],
)
def test_options_are_checked_per_measure(options, match):
    with pytest.raises(OptionError, match=match):
        layer_similarity(np.random.default_rng(1).standard_normal((2, 30, 3)), **options)


@pytest.mark.parametrize("measure", ["procrustes", "svcca", "pwcca"])
def test_svd_measures_take_a_device(measure):
    res = layer_similarity(np.random.default_rng(1).standard_normal((2, 30, 3)), measure=measure, device="cpu")
    assert res.details["backend"] == "torch:cpu"
