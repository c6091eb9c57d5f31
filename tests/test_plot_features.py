"""plot/features.py: feature_image, one layer of one clip as a (dim × time) image placed at its frame times."""

import numpy as np
import pytest
from matplotlib.figure import Figure

from m2v_lab.errors import AnalysisError, FeaturesError, OptionError
from m2v_lab.features import Features
from m2v_lab.layers import layer_names
from m2v_lab.plot import feature_image, frame_features, spectrogram, waveform

RATE, STRIDE, FIELD, DIM = 16000, 320, 400, 6
# clip "one": 3 s in one window (149 frames); clip "two": two 1 s windows of 49 frames each
WINDOWS = [np.array([[0, 48000, 149]]), np.array([[0, 16000, 49], [16000, 16000, 49]])]


@pytest.fixture(scope="module")
def feats():
    rng = np.random.default_rng(0)
    frames = [rng.standard_normal((13, int(w[:, 2].sum()), DIM)).astype(np.float32) for w in WINDOWS]
    meta = dict(model="synthetic", trained=False, sample_rate=RATE, hidden_size=DIM, pool=None, frame_stride=STRIDE,
                receptive_field=FIELD, num_layers=12)
    return Features(layer_names=layer_names(12), layer_indices=range(13), clips=["one", "two"], source_index=[0, 1],
                    meta=meta, frames=frames, windows=WINDOWS)


def image_of(ax):
    """The image drawn, its frame times (x) and its values (dim, frames)."""
    image = ax.images[0]
    return image._Ax, image.get_array()  # NonUniformImage keeps its x centres only privately


def test_feature_image_draws_the_chosen_layer_standardized_at_each_frames_time(feats):
    fig = Figure()
    ax = feature_image(feats, "one", "block_6", ax=fig.subplots())
    times, values = image_of(ax)
    frames = feats.frames("one")[6].T.astype(np.float64)
    expected = (frames - frames.mean(1, keepdims=True)) / (frames.std(1, keepdims=True) + 1e-8)
    np.testing.assert_allclose(values, expected, rtol=1e-6)
    np.testing.assert_allclose(times, feats.frame_times("one"))
    assert ax.images[0].get_clim() == (-3, 3)
    assert ax.get_ylim() == pytest.approx((DIM - 0.5, -0.5))  # dimension 0 at the top
    assert ax.get_title() == "synthetic · untrained · block 6 · one"
    assert len(fig.axes) == 2  # and a colour bar


def test_feature_image_keeps_the_gap_between_windows_on_the_time_axis(feats):
    ax = feature_image(feats, "two", 1, ax=Figure().subplots())
    times, _ = image_of(ax)
    steps = np.round(np.diff(times) * RATE).astype(int)
    assert set(steps[:48]) == {STRIDE} and steps[48] == 16000 - 48 * STRIDE  # the second window starts at 1 s
    assert times[49] == pytest.approx((16000 + FIELD / 2) / RATE)


@pytest.mark.parametrize("layer, label", [(-1, "block 12"), (0, "pre-transformer"),
                                          ("pre_transformer", "pre-transformer"), (np.int64(3), "block 3")])
def test_layers_are_chosen_as_features_select_chooses_them(feats, layer, label):
    ax = feature_image(feats, 0, layer, ax=Figure().subplots())
    assert ax.get_title() == f"synthetic · untrained · {label} · one"


def test_an_integer_layer_is_the_models_index_even_when_few_layers_are_held(feats):
    some = feats.select(layers=[0, 6, 12])
    ax = feature_image(some, 0, 6, ax=Figure().subplots())
    np.testing.assert_allclose(image_of(ax)[1].shape, (DIM, 149))
    assert "block 6" in ax.get_title()
    with pytest.raises(FeaturesError, match="'block_3' is not held"):
        feature_image(some, 0, 3, ax=Figure().subplots())


@pytest.mark.parametrize("layer, match", [(13, "index 13 is out of range"), (-14, "out of range"),
                                          ("block_13", "no layer 'block_13'"), (1.5, "neither a layer index")])
def test_a_layer_the_model_does_not_have_is_an_option_error(feats, layer, match):
    with pytest.raises(OptionError, match=match):
        feature_image(feats, 0, layer, ax=Figure().subplots())


def test_pooled_features_have_no_image_to_draw(feats):
    with pytest.raises(FeaturesError, match="pool=None"):
        feature_image(feats.pool("mean"), 0, ax=Figure().subplots())


def test_the_image_lines_up_with_the_waveform_on_a_shared_time_axis(feats):
    wave = np.sin(np.linspace(0, 2000, 3 * RATE))
    axes = Figure().subplots(3, 1, sharex=True)
    waveform(wave, RATE, ax=axes[0])
    spectrogram(wave, RATE, ax=axes[1])
    feature_image(feats, "one", -1, ax=axes[2], colorbar=False)
    assert axes[2].get_xlim() == pytest.approx((0, 3.0))  # the waveform's limits stand
    alone = feature_image(feats, "one", -1, ax=Figure().subplots())
    half = STRIDE / RATE / 2
    assert alone.get_xlim() == pytest.approx((feats.frame_times(0)[0] - half, feats.frame_times(0)[-1] + half))


def test_frame_features_is_a_deprecated_name_for_the_same_image(feats):
    expected = image_of(feature_image(feats, "two", 4, ax=Figure().subplots()))
    fig = Figure()
    with pytest.deprecated_call(match="use feature_image"):
        ax = frame_features(feats.frames("two")[4], feats.frame_times("two"), ax=fig.subplots(), title="layer")
    drawn = image_of(ax)
    np.testing.assert_array_equal(drawn[0], expected[0])
    np.testing.assert_array_equal(drawn[1], expected[1])
    assert ax.get_title() == "layer" and len(fig.axes) == 1  # no colour bar by default, as before
    with pytest.raises(AnalysisError, match="one time per frame"), pytest.deprecated_call():
        frame_features(np.zeros((5, 8)), feats.frame_times("two"))


def test_clip_features_puts_the_spectrogram_above_each_layer_on_one_time_axis(feats):
    from m2v_lab.plot.features import clip_features

    fig = Figure()
    wave = np.sin(np.linspace(0, 2000, 3 * RATE))
    axes = clip_features(feats, "one", wave, layers=(0, "block_6", -1), fig=fig)
    assert len(axes) == 4
    assert [ax.get_title() for ax in axes[1:]] == ["pre-transformer", "block 6", "block 12"]
    assert fig.get_suptitle() == "synthetic · untrained · one"
    assert all(ax.get_xlim() == pytest.approx((0, 3.0)) for ax in axes)
    times, values = image_of(axes[2])
    np.testing.assert_allclose(times, feats.frame_times("one"))
    assert values.shape == (DIM, 149)
    assert len(fig.axes) == 8  # every row has its colour bar, so the time axes keep one width
