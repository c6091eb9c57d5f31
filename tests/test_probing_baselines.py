"""Hand-crafted baselines: MFCC / chroma summaries shaped as one layer."""

import numpy as np
import pytest

from m2v_lab.baselines import chroma_features, handcrafted_features, mfcc_features
from m2v_lab.errors import AudioError

SR = 16000


def tone(freq, seconds=0.5):
    return np.sin(2 * np.pi * freq * np.arange(int(SR * seconds)) / SR).astype(np.float32)


def test_features_are_one_float32_layer_of_mean_and_sd():
    clips = [tone(440), tone(261.63, 0.3), np.random.default_rng(0).standard_normal(SR // 4)]
    mfcc = mfcc_features(clips, SR, n_mfcc=13)
    chroma = chroma_features(clips, SR)
    both = handcrafted_features(clips, SR, n_mfcc=13)
    assert mfcc.shape == (1, 3, 26) and chroma.shape == (1, 3, 24) and both.shape == (1, 3, 50)
    assert mfcc.dtype == chroma.dtype == both.dtype == np.float32
    # chroma means peak at the tone's pitch class: A (9) for 440 Hz, C (0) for 261.63 Hz
    assert chroma[0, 0, :12].argmax() == 9 and chroma[0, 1, :12].argmax() == 0


@pytest.mark.parametrize("clips, message", [
    ([np.zeros((2, 4000))], "mono 1-D"),
    ([np.zeros(100)], "fewer than one 2048-sample frame"),
    ([np.full(4000, np.nan)], "NaN"),
    ([], "empty"),
    (np.zeros(4000), "single 1-D array"),
])
def test_bad_clips_are_named(clips, message):
    with pytest.raises(AudioError, match=message):
        mfcc_features(clips, SR)
