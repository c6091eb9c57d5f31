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


def test_handcrafted_features_are_cached_by_content_and_verified_on_read(tmp_path, monkeypatch):
    import warnings

    import m2v_lab.baselines as baselines
    from m2v_lab.cache import CacheWarning

    rng = np.random.default_rng(3)
    clips = [rng.standard_normal(SR).astype(np.float32) for _ in range(3)]
    first = handcrafted_features(clips, SR, cache_dir=tmp_path)
    (entry,) = (tmp_path / "baselines").glob("*.safetensors")
    calls = []
    monkeypatch.setattr(baselines, "_handcrafted", lambda *a: calls.append(a) or first)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        np.testing.assert_array_equal(handcrafted_features(clips, SR, cache_dir=tmp_path), first)
    assert calls == []  # served from disk
    handcrafted_features(clips, SR, n_mfcc=13, cache_dir=tmp_path)  # another option: another entry
    changed = [c.copy() for c in clips]
    changed[1][0] += 1e-3
    handcrafted_features(changed, SR, cache_dir=tmp_path)  # other samples: another entry
    assert len(calls) == 2 and len(list((tmp_path / "baselines").glob("*.safetensors"))) == 3
    data = bytearray(entry.read_bytes())
    data[-1] ^= 0xFF  # flip a byte of the stored features
    entry.write_bytes(bytes(data))
    with pytest.warns(CacheWarning, match="digest"):
        handcrafted_features(clips, SR, cache_dir=tmp_path)
    assert len(calls) == 3
