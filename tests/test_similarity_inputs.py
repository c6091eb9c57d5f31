"""What layer_similarity accepts (_inputs.py): arrays, Features, streams; names; pairing of A and B."""

import numpy as np
import pandas as pd
import pytest

from m2v_lab import Features
from m2v_lab.errors import AnalysisError, OptionError
from m2v_lab.similarity import MEASURES, SimilarityResult, layer_similarity, similarity_ci
from tests.test_similarity_cka import chunks_of, layered


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def features(data, clips, *, frames=None, **columns):
    """Features of ``data`` (layers, n, dim) for ``clips``, pooled, or with these per-clip ``frames``."""
    return Features(layer_names=[f"layer_{i}" for i in range(data.shape[0])], layer_indices=range(data.shape[0]),
                    clips=clips, source_index=range(len(clips)), meta={"hidden_size": data.shape[2]},
                    pooled=None if frames else data, frames=frames,
                    clip_table=pd.DataFrame(columns) if columns else None)


def clip_ids(n):
    return [f"clip_{i:02d}" for i in range(n)]


def test_stream_names_and_shape_errors(rng):
    A = layered(rng, layers=3, n=20, dim=4)
    res = layer_similarity(chunks_of(A, [10, 10]), rows=["x", "y", "z"])
    assert res.rows == ("x", "y", "z") and res.cols == ("x", "y", "z")
    bad = [A[:, :10], A[:2, 10:]]
    with pytest.raises(AnalysisError, match="chunk 1"):
        layer_similarity(bad)
    with pytest.raises(AnalysisError, match="same samples"):
        layer_similarity(chunks_of(A, [10, 10]), chunks_of(A, [12, 8]))


def test_mismatched_n_names_both_shapes(rng):
    with pytest.raises(AnalysisError, match=r"\(3, 40, 8\).*\(3, 41, 8\)"):
        layer_similarity(layered(rng, layers=3, n=40), layered(rng, layers=3, n=41))


def test_features_object_supplies_layer_names(rng):
    class Feats:
        pooled = layered(rng, layers=3, n=20, dim=4)
        layer_names = ("pre_transformer", "block_1", "block_2")

    res = layer_similarity(Feats())
    frame = res.to_frame()
    assert list(frame.index) == ["pre_transformer", "block_1", "block_2"] and frame.attrs["n"] == 20
    assert isinstance(res, SimilarityResult) and res.estimator == "debiased"
    assert "CKA (linear, debiased), n = 20" in repr(res)


def test_frame_level_features_are_streamed_clip_by_clip(rng):
    from m2v_lab.errors import FeaturesError

    A = layered(rng, layers=3, n=45, dim=4)
    sizes = [20, 5, 20]

    class FrameFeats:
        layer_names = ("pre_transformer", "block_1", "block_2")
        clips = ["a", "b", "c"]

        @property
        def pooled(self):
            raise FeaturesError("frames only")

        def frames(self, i):
            return chunks_of(A, sizes)[i]

        def __len__(self):
            return 3

    res = layer_similarity(FrameFeats())
    assert res.method == "feature" and res.n == 45 and res.rows == FrameFeats.layer_names
    np.testing.assert_allclose(res.values, layer_similarity(A, method="gram").values, atol=1e-10)


def test_default_names_and_name_count_check(rng):
    res = layer_similarity(layered(rng, layers=3))
    assert res.rows == ("pre_transformer", "block_1", "block_2")
    with pytest.raises(AnalysisError, match="3 layers but 2"):
        layer_similarity(layered(rng, layers=3), rows=["a", "b"])


def test_bad_inputs_raise_analysis_errors(rng):
    A = layered(rng, layers=2, n=20, dim=3)
    with pytest.raises(AnalysisError, match="X\\[None\\]"):
        layer_similarity(A[0])
    A_nan = A.copy()
    A_nan[1, 3, 0] = np.nan
    with pytest.raises(AnalysisError, match="layer 1"):
        layer_similarity(A_nan)
    with pytest.raises(AnalysisError, match="at least 4"):
        layer_similarity(A[:, :3])


# --- pairing A and B by clip id -----------------------------------------------------------------


@pytest.mark.parametrize("measure", list(MEASURES))
def test_features_in_another_clip_order_are_paired_by_id(rng, measure):
    A = layered(rng, layers=3, n=40, dim=6)
    order = rng.permutation(40)
    ids = clip_ids(40)
    shuffled = features(A[:, order], [ids[i] for i in order])
    res = layer_similarity(features(A, ids), shuffled, measure=measure)
    np.testing.assert_allclose(res.values, layer_similarity(A, A, measure=measure).values, atol=1e-10)
    assert "reordered" in res.details["clips"]


def test_identical_features_in_another_order_give_a_diagonal_of_one(rng):
    A = layered(rng, layers=3, n=40, dim=6)
    order = rng.permutation(40)
    ids = clip_ids(40)
    res = layer_similarity(features(A, ids), features(A[:, order], [ids[i] for i in order]))
    np.testing.assert_allclose(np.diag(res.values), 1.0, atol=1e-12)
    # what pairing by position gives for the same two inputs
    assert np.diag(layer_similarity(A, A[:, order]).values).max() < 0.5


def test_different_clip_sets_are_refused_naming_the_ids_in_only_one(rng):
    A = layered(rng, layers=2, n=30, dim=4)
    ids = clip_ids(30)
    other = ["extra_a", "extra_b"] + ids[2:]
    named = r"2 only in A \['clip_00', 'clip_01'\], 2 only in B \['extra_a', 'extra_b'\]"
    with pytest.raises(AnalysisError, match=named):
        layer_similarity(features(A, ids), features(A, other))
    with pytest.raises(AnalysisError, match=r"1 only in A \['clip_29'\], 0 only in B"):  # not a shape error
        layer_similarity(features(A, ids), features(A[:, :29], ids[:29]), measure="rsa")
    with pytest.raises(AnalysisError, match="only in A"):
        similarity_ci(features(A, ids), features(A, other))


def test_bare_arrays_are_paired_by_position(rng):
    A = layered(rng, layers=2, n=30, dim=4)
    order = rng.permutation(30)
    ids = clip_ids(30)
    res = layer_similarity(features(A, ids), A[:, order])  # one side without ids: by position
    np.testing.assert_allclose(res.values, layer_similarity(A, A[:, order]).values, atol=1e-12)
    assert "clips" not in res.details


def test_frame_level_features_are_paired_by_clip_id(rng):
    A = layered(rng, layers=3, n=45, dim=4)
    chunks = chunks_of(A, [20, 5, 20])
    ids = ["a", "b", "c"]
    res = layer_similarity(features(A, ids, frames=chunks), features(A, ids[::-1], frames=chunks[::-1]))
    assert res.method == "feature" and res.n == 45 and "reordered" in res.details["clips"]
    np.testing.assert_allclose(res.values, layer_similarity(A, A, method="gram").values, atol=1e-10)
    with pytest.raises(AnalysisError, match=r"only in B \['d'\]"):
        layer_similarity(features(A, ids, frames=chunks), features(A, ["a", "b", "d"], frames=chunks))


def test_clip_ids_must_fit_the_samples(rng):
    A = layered(rng, layers=2, n=6, dim=3)

    class Feats:
        pooled = A
        layer_names = ("x", "y")

    Feats.clips = ["a", "b", "c"]
    with pytest.raises(AnalysisError, match="3 clip ids"):
        layer_similarity(Feats(), A)
    Feats.clips = ["a", "b", "c", "a", "e", "f"]
    with pytest.raises(AnalysisError, match=r"repeats clip ids \['a'\]"):
        layer_similarity(Feats(), A)


def test_frame_level_features_in_a_pooled_analysis_ask_for_pooling(rng):
    A = layered(rng, layers=2, n=30, dim=4)
    frames = features(A, ["a", "b"], frames=chunks_of(A, [15, 15]))
    with pytest.raises(AnalysisError, match=r"frames only.*pool\('mean'\)"):
        layer_similarity(frames, measure="rsa")
    with pytest.raises(AnalysisError, match="frames only"):
        similarity_ci(frames)


# --- standardize and clip ---------------------------------------------------------------------------


def zscored(x):
    return (x - x.mean(0)) / x.std(0)


def test_standardize_stops_a_few_loud_unrelated_dimensions_from_hiding_the_shared_ones(rng):
    X = rng.standard_normal((200, 10))
    Y = X + 0.5 * rng.standard_normal((200, 10))
    loud = np.c_[X, 60 * rng.standard_normal((200, 3))]  # three unrelated dimensions, 60 times louder
    assert layer_similarity(X[None], Y[None]).values[0, 0] > 0.75
    assert abs(layer_similarity(loud[None], Y[None]).values[0, 0]) < 0.01
    res = layer_similarity(loud[None], Y[None], standardize=True, precision="float64")
    assert res.values[0, 0] > 0.6 and res.details["standardize"] is True
    assert "z-scored" in res.title
    want = layer_similarity(zscored(loud)[None], zscored(Y)[None], precision="float64").values
    np.testing.assert_allclose(res.values, want, rtol=0, atol=1e-12)


@pytest.mark.parametrize("measure", ["rsa", "procrustes", "mutual_knn"])
def test_standardize_applies_to_every_measure(rng, measure):
    A = layered(rng, layers=2, n=40, dim=5) * np.r_[1.0, 1.0, 1.0, 1.0, 40.0]
    got = layer_similarity(A, measure=measure, standardize=True).values
    want = layer_similarity(np.stack([zscored(a) for a in A]), measure=measure).values
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)


def test_a_dimension_without_variance_standardizes_to_zero(rng):
    A = layered(rng, layers=2, n=30, dim=4)
    A[:, :, 1] = 3.0
    got = layer_similarity(A, standardize=True, precision="float64").values
    want = layer_similarity(np.stack([zscored(a[:, [0, 2, 3]]) for a in A]), precision="float64").values
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)


def test_clip_winsorises_each_layer_around_its_dimension_means(rng):
    A = layered(rng, layers=2, n=80, dim=6, offset=500.0)
    clipped = []
    for x in A:
        dev = x - x.mean(0)
        limit = np.quantile(np.abs(dev), 0.9)  # one threshold per layer, over all its values
        clipped.append(x.mean(0) + np.clip(dev, -limit, limit))
    res = layer_similarity(A, clip=0.9, precision="float64")
    want = layer_similarity(np.stack(clipped), precision="float64").values
    np.testing.assert_allclose(res.values, want, rtol=0, atol=1e-12)
    assert res.details["clip"] == 0.9 and "clipped at q=0.9" in res.title


def test_clip_keeps_one_shared_outlier_sample_from_deciding_the_similarity(rng):
    X, Y = rng.standard_normal((100, 8)), rng.standard_normal((100, 8))
    X[0], Y[0] = 200.0, 200.0  # one extreme sample in both unrelated layers
    A = np.stack([X, Y])
    assert layer_similarity(A, debiased=False).values[0, 1] > 0.99
    assert layer_similarity(A, debiased=False, clip=0.95).values[0, 1] < 0.5


@pytest.mark.parametrize("options,match", [({"standardize": "yes"}, "standardize='yes'"),
                                           ({"standardize": 1}, "standardize=1"),
                                           ({"clip": 0.3}, "clip=0.3"), ({"clip": 1.0}, "clip=1.0"),
                                           ({"clip": "0.95"}, "clip='0.95'")])  # fmt: skip
def test_bad_standardize_and_clip_raise_option_errors(rng, options, match):
    with pytest.raises(OptionError, match=match):
        layer_similarity(layered(rng), **options)


@pytest.mark.parametrize("options", [{"standardize": True}, {"clip": 0.95}])
def test_standardize_and_clip_refuse_streams(rng, options):
    with pytest.raises(OptionError, match="pass arrays"):
        layer_similarity(chunks_of(layered(rng, n=20), [10, 10]), **options)
