"""Confidence intervals over groups and the permutation null."""

import numpy as np
import pytest

from m2v_lab.errors import AnalysisError, FeaturesError, OptionError
from m2v_lab.similarity import layer_similarity, permutation_test, similarity_ci
from m2v_lab.similarity.resampling import _permuted_index, group_blocks, group_subsamples
from tests.test_similarity_inputs import clip_ids, features


def related(rng, n, d=5, noise=1.0):
    """Layer 0: X; layer 1: X + noise (population linear CKA 1/(1+noise²)); layer 2: independent."""
    X = rng.standard_normal((n, d))
    return np.stack([X, X + noise * rng.standard_normal((n, d)), rng.standard_normal((n, d))])


def test_group_subsamples_take_whole_groups_without_replacement():
    codes = np.repeat(np.arange(10), 3)
    rng = np.random.default_rng(0)
    for idx in group_subsamples(codes, 4, 20, rng):
        assert idx.size == 12 and np.unique(idx).size == 12
        taken = np.unique(codes[idx])
        assert taken.size == 4 and np.isin(np.flatnonzero(np.isin(codes, taken)), idx).all()


def test_group_blocks_delete_each_group_exactly_once():
    codes = np.repeat(np.arange(7), 2)
    kept = group_blocks(codes, 3, np.random.default_rng(0))
    deleted = np.concatenate([np.setdiff1d(np.arange(14), idx) for idx in kept])
    np.testing.assert_array_equal(np.sort(deleted), np.arange(14))
    assert all(np.unique(codes[np.setdiff1d(np.arange(14), idx)]).size * 2 == 14 - idx.size for idx in kept)


@pytest.mark.parametrize("scheme", ["subsample", "jackknife"])
def test_interval_brackets_estimate_and_excludes_or_includes_zero(scheme):
    A = related(np.random.default_rng(2), 120)
    res = similarity_ci(A, scheme=scheme, n_resamples=40)
    assert res.ci_low.shape == res.values.shape == (3, 3)
    assert (res.ci_low <= res.values + 1e-12).all() and (res.values <= res.ci_high + 1e-12).all()
    assert res.ci_low[0, 1] > 0.2  # related layers
    assert res.ci_low[0, 2] < 0 < res.ci_high[0, 2]  # independent layers (debiased ≈ 0)
    assert res.replicates.shape[1:] == (3, 3) and "ci" in res.details


def test_subsamples_of_independent_data_are_not_inflated():
    # a bootstrap with replacement would push debiased CKA of independent data far above 0
    A = related(np.random.default_rng(3), 80, d=20)
    res = similarity_ci(A, n_resamples=30)
    assert abs(np.mean(res.replicates[:, 0, 2])) < 0.05


def test_interval_narrows_with_more_samples():
    rng = np.random.default_rng(4)
    small = similarity_ci(related(rng, 60), n_resamples=40)
    large = similarity_ci(related(rng, 480), n_resamples=40)
    assert (large.ci_high - large.ci_low)[0, 1] < 0.6 * (small.ci_high - small.ci_low)[0, 1]


def test_grouping_widens_interval_for_repeated_clips_of_a_track():
    rng = np.random.default_rng(5)
    tracks = related(rng, 60)
    clips = np.repeat(tracks, 4, axis=1) + 0.05 * rng.standard_normal((3, 240, 5))
    groups = np.repeat(np.arange(60), 4)
    naive = similarity_ci(clips, n_resamples=40)
    grouped = similarity_ci(clips, groups=groups, n_resamples=40)
    assert (grouped.ci_high - grouped.ci_low)[0, 1] > 1.5 * (naive.ci_high - naive.ci_low)[0, 1]


def test_subsample_interval_coverage_is_near_nominal():
    rng = np.random.default_rng(6)
    truth = 1 / (1 + 1.0**2)  # population CKA of X and X + noise
    covered = 0
    for _ in range(30):
        res = similarity_ci(related(rng, 100)[:2], n_resamples=40, level=0.9)
        covered += res.ci_low[0, 1] <= truth <= res.ci_high[0, 1]
    assert covered >= 23  # nominal 27 of 30


N_DEPENDENT = [({"debiased": False}), ({"measure": "procrustes"}), ({"measure": "svcca", "n_components": 5}),
               ({"measure": "mutual_knn", "k": 10})]  # fmt: skip


@pytest.mark.parametrize("options", N_DEPENDENT)
def test_subsample_interval_contains_its_estimate_for_measures_whose_value_depends_on_n(options):
    # half-samples of these read systematically higher than the full sample; an interval reflected
    # about the full-sample value then lay wholly below it
    rng = np.random.default_rng(13)
    for _ in range(5):
        res = similarity_ci(related(rng, 100, d=20)[:2], n_resamples=40, **options)
        assert res.ci_low[0, 1] <= res.values[0, 1] <= res.ci_high[0, 1]


@pytest.mark.parametrize("options", [{"debiased": False}, {"measure": "procrustes"}])
def test_subsample_interval_covers_the_value_at_this_n_of_measures_that_depend_on_n(options):
    # the known answer: the measure's mean at this n over many datasets of the same Gaussian model
    # (biased CKA 0.58 and Procrustes 0.74 here, where the population values are 0.5 and 0.71)
    truth_rng, rng = np.random.default_rng(123), np.random.default_rng(7)
    at_n = np.mean([layer_similarity(related(truth_rng, 100, d=20)[:2], **options).values[0, 1] for _ in range(300)])
    covered = 0
    for _ in range(40):
        res = similarity_ci(related(rng, 100, d=20)[:2], n_resamples=40, level=0.9, **options)
        covered += res.ci_low[0, 1] <= at_n <= res.ci_high[0, 1]
    assert covered >= 31  # nominal 36 of 40; the interval reflected about the estimate covered 0


@pytest.mark.parametrize("options,says", [({}, False), ({"debiased": False}, True), ({"measure": "rsa"}, True)])
def test_interval_details_say_when_it_is_for_the_value_at_this_n(options, says):
    res = similarity_ci(related(np.random.default_rng(0), 40), n_resamples=5, **options)
    assert ("for the value at n = 40" in res.details["ci"]) is says


@pytest.mark.parametrize(
    "options,match",
    [
        ({"scheme": "bootstrap"}, "scheme='bootstrap'"),
        ({"fraction": 1.0}, "fraction=1.0"),
        ({"fraction": "half"}, "fraction='half'"),
        ({"level": 95}, "level=95"),
        ({"n_resamples": 1}, "n_resamples=1"),
        ({"n_resamples": 10.0}, "n_resamples=10.0"),
        ({"scheme": "jackknife", "n_blocks": 1}, "n_blocks=1"),
        ({"seed": -1}, "seed=-1"),
        ({"seed": "s"}, "seed='s'"),
        ({"measure": "cca"}, "measure='cca'"),
    ],
)
def test_bad_ci_options_raise_option_errors(options, match):
    A = related(np.random.default_rng(0), 20)
    with pytest.raises(OptionError, match=match):
        similarity_ci(A, **{"n_resamples": 5, **options})


@pytest.mark.parametrize("options,match", [({"n_permutations": 0}, "n_permutations=0"),
                                           ({"n_permutations": True}, "n_permutations=True"),
                                           ({"seed": 1.5}, "seed=1.5"),
                                           ({"correction": "bonferroni"}, "correction='bonferroni'"),
                                           ({"correction": None}, "correction=None")])  # fmt: skip
def test_bad_permutation_options_raise_option_errors(options, match):
    with pytest.raises(OptionError, match=match):
        permutation_test(related(np.random.default_rng(0), 20), **options)


def test_groups_that_do_not_fit_the_samples_raise_analysis_errors():
    A = related(np.random.default_rng(0), 20)
    with pytest.raises(AnalysisError, match="one group label per sample"):
        similarity_ci(A, groups=np.arange(19))
    with pytest.raises(AnalysisError, match="2 samples.*first at sample 3"):
        similarity_ci(A, groups=np.r_[np.zeros(3), np.nan, np.ones(15), np.nan])
    with pytest.raises(AnalysisError, match="of 2 groups keeps 1"):
        similarity_ci(A, groups=np.repeat([0, 1], 10))  # half of 2 groups is 1 group


def test_permutation_test_separates_related_from_independent_layers():
    A = related(np.random.default_rng(0), 80)
    res = permutation_test(A, n_permutations=99)
    assert res.p_values[0, 1] == pytest.approx(1 / 100)
    assert res.replicates.shape == (99, 3, 3)
    assert abs(res.replicates[:, 0, 2].mean()) < 0.02  # the null of debiased CKA is centred on 0


def test_permutation_p_values_of_independent_layers_are_roughly_uniform():
    rng = np.random.default_rng(10)
    p = np.array([permutation_test(related(rng, 40), n_permutations=39).p_values[0, 2] for _ in range(25)])
    assert 0.3 < p.mean() < 0.7 and (p < 0.05).mean() <= 0.15


def test_permutation_across_models_and_with_other_measures():
    rng = np.random.default_rng(8)
    A = related(rng, 60)
    B = A[:2, :, :3] + 0.3 * rng.standard_normal((2, 60, 3))
    res = permutation_test(A, B, n_permutations=49, measure="rsa")
    assert res.p_values.shape == (3, 2) and res.p_values[0, 0] == pytest.approx(1 / 50)


def test_group_permutation_moves_whole_groups_and_needs_equal_sizes():
    codes = np.repeat(np.arange(5), 3)
    idx = _permuted_index(codes, np.random.default_rng(0))
    for g in range(5):
        assert np.unique(codes[idx[codes == g]]).size == 1
    with pytest.raises(AnalysisError, match="equal sizes"):
        permutation_test(related(np.random.default_rng(0), 16), groups=np.r_[np.zeros(6), np.ones(10)])


def test_constant_layer_gives_nan_p_values():
    A = related(np.random.default_rng(9), 30)
    A[2] = 1.0
    with pytest.warns(RuntimeWarning, match="block_2"):
        res = permutation_test(A, n_permutations=9)
    assert np.isnan(res.p_values[2]).all() and np.isfinite(res.p_values[:2, :2]).all()


# --- groups by column name, pairing by clip id ---------------------------------------------------


def tracks(rng, n_tracks=30, clips_per_track=2):
    """Features of clips of tracks, with the track in ``clip_table["group"]``."""
    A = np.repeat(related(rng, n_tracks), clips_per_track, axis=1) + 0.1 * rng.standard_normal(
        (3, n_tracks * clips_per_track, 5))
    group = np.repeat([f"track_{t}" for t in range(n_tracks)], clips_per_track)
    return features(A, clip_ids(A.shape[1]), group=group)


def test_groups_can_name_a_column_of_the_clip_table():
    feats = tracks(np.random.default_rng(11))
    by_name = similarity_ci(feats, groups="group", n_resamples=10)
    by_value = similarity_ci(feats, groups=feats.clip_table["group"].to_numpy(), n_resamples=10)
    np.testing.assert_array_equal(by_name.ci_low, by_value.ci_low)
    p_by_name = permutation_test(feats, groups="group", n_permutations=9).p_values
    p_by_value = permutation_test(feats, groups=feats.labels("group"), n_permutations=9).p_values
    np.testing.assert_array_equal(p_by_name, p_by_value)


def test_a_column_name_for_groups_needs_features():
    with pytest.raises(OptionError, match="groups='group' names a column"):
        similarity_ci(related(np.random.default_rng(0), 20), groups="group")


def test_an_unknown_groups_column_lists_the_columns():
    with pytest.raises(FeaturesError, match="no column 'track'.*'group'"):
        similarity_ci(tracks(np.random.default_rng(0)), groups="track")


def test_resampling_pairs_features_by_clip_id():
    rng = np.random.default_rng(12)
    A = related(rng, 40)
    ids = clip_ids(40)
    order = rng.permutation(40)
    fa, fb = features(A, ids, group=np.arange(40) // 2), features(A[:, order], [ids[i] for i in order])
    ci = similarity_ci(fa, fb, groups="group", n_resamples=10)
    np.testing.assert_allclose(ci.ci_low, similarity_ci(A, A, groups=np.arange(40) // 2, n_resamples=10).ci_low,
                               atol=1e-10)
    assert "reordered" in ci.details["clips"]
    perm = permutation_test(fa, fb, n_permutations=19)
    assert perm.p_values[0, 0] == pytest.approx(1 / 20) and "reordered" in perm.details["clips"]


# --- corrections across the map, and the null from statistics computed once -----------------------


def independent(rng, layers=4, n=30, d=4):
    return rng.standard_normal((layers, n, d))


def test_fwer_p_adjusted_is_the_max_statistic_of_values_standardised_per_cell():
    rng = np.random.default_rng(20)
    A = related(rng, 50)
    B = A[:2, :, :3] + rng.standard_normal((2, 50, 3))
    res = permutation_test(A, B, n_permutations=49)
    null = res.replicates.reshape(49, -1)
    every = np.vstack([null, res.values.ravel()])  # the observed map counts as one more draw
    mu, sd = every.mean(0), every.std(0)
    top = ((null - mu) / sd).max(1)
    want = (1 + (top[:, None] >= ((res.values.ravel() - mu) / sd)[None, :]).sum(0)) / 50
    np.testing.assert_allclose(res.p_adjusted.ravel(), want)
    assert (res.p_adjusted >= res.p_values).all() and res.details["correction"] == "fwer"


def test_fdr_p_adjusted_is_benjamini_hochberg_over_each_pair_of_distinct_layers_once():
    from scipy.stats import false_discovery_control

    A = related(np.random.default_rng(21), 40)
    res = permutation_test(A, n_permutations=39, correction="fdr")
    i, j = np.triu_indices(3, 1)
    np.testing.assert_allclose(res.p_adjusted[i, j], false_discovery_control(res.p_values[i, j], method="bh"))
    assert "Benjamini–Hochberg (FDR) over 3 distinct layer pairs" in res.details["null"]


def test_within_one_model_each_pair_is_tested_once_and_a_layer_with_itself_not_at_all():
    res = permutation_test(related(np.random.default_rng(22), 40), n_permutations=19)
    np.testing.assert_array_equal(res.p_values, res.p_values.T)
    np.testing.assert_array_equal(res.p_adjusted, res.p_adjusted.T)
    np.testing.assert_array_equal(res.replicates, res.replicates.transpose(0, 2, 1))
    assert np.isnan(np.diag(res.p_adjusted)).all() and np.isfinite(np.diag(res.p_values)).all()


def test_max_statistic_holds_the_familywise_error_where_unadjusted_p_values_do_not():
    # all 4 layers independent: any cell with p ≤ 0.1 is a false positive
    rng = np.random.default_rng(23)
    any_raw = any_fwer = 0
    for _ in range(30):
        res = permutation_test(independent(rng), n_permutations=49)
        i, j = np.triu_indices(4, 1)
        any_raw += (res.p_values[i, j] <= 0.1).any()
        any_fwer += (res.p_adjusted[i, j] <= 0.1).any()
    assert any_fwer <= 6 < 9 <= any_raw  # nominal: 3 of 30 for the max statistic; about 14 unadjusted


@pytest.mark.parametrize("options", [{}, {"debiased": False}, {"kernel": "rbf"}, {"method": "feature"}])
def test_permutation_null_from_grams_kept_once_equals_recomputing_every_permutation(monkeypatch, options):
    from m2v_lab.similarity.cka import CkaNull

    rng = np.random.default_rng(24)
    A = related(rng, 40)
    B = A[:2, :, :3] + rng.standard_normal((2, 40, 3))
    kept = permutation_test(A, B, n_permutations=9, **options)
    monkeypatch.setattr(CkaNull, "NULL_MEMORY_BYTES", 1)  # nothing fits: each permutation from the features
    recomputed = permutation_test(A, B, n_permutations=9, **options)
    np.testing.assert_allclose(kept.replicates, recomputed.replicates, rtol=0, atol=1e-7)
    np.testing.assert_array_equal(kept.p_values, recomputed.p_values)


def test_permutation_null_builds_no_gram_per_permutation(monkeypatch):
    import importlib

    cka_module = importlib.import_module("m2v_lab.similarity.cka")  # the package's ``cka`` is the function
    calls = []
    real = cka_module.gram_stats
    monkeypatch.setattr(cka_module, "gram_stats", lambda *a, **k: calls.append(1) or real(*a, **k))
    permutation_test(related(np.random.default_rng(25), 40), n_permutations=19, method="gram")
    assert len(calls) == 1  # the observed map; the 19 permutations reorder the Grams kept
