"""m2v_lab.solutions.nb00 / nb01: the reference answers of notebooks 00 and 01 agree with what m2v_lab does."""

import numpy as np
import pytest

from m2v_lab import audio
from m2v_lab.models.encoder import num_frames
from m2v_lab.solutions import nb00, nb01


@pytest.mark.parametrize("n", [0, 1, 399, 400, 401, 719, 720, 721, 1039, 1040, 48_000, 72_000, 93_680, 480_000])
def test_expected_frames_is_the_conv_front_ends_count(n):
    assert nb00.expected_frames(n) == num_frames(n)


def test_expected_frames_gives_the_model_cards_292_frames_and_50_a_second():
    assert nb00.expected_frames(93_680) == 292
    assert nb00.expected_frames(16_000 * 10) - nb00.expected_frames(16_000 * 9) == 50


def _cut(n, window, min_last, min_samples=400):
    source = audio.as_sources([(np.linspace(-0.5, 0.5, n, dtype=np.float32), 16000)])[0]
    return [(start, wave.size) for start, wave in audio.windows(source, sample_rate=16000, window=window,
                                                                min_last=min_last, min_samples=min_samples,
                                                                do_normalize=False)]


@pytest.mark.parametrize("n", [400, 1_000, 3_999, 4_000, 4_399, 4_400, 4_999, 5_000, 8_000, 9_999, 12_345])
@pytest.mark.parametrize("min_last", [0, 400, 1_000, 4_000])
def test_window_layout_is_how_audio_windows_cuts_a_clip(n, min_last):
    assert nb01.window_layout(n, 4_000, min_last) == _cut(n, 4_000, min_last)


def test_a_clip_shorter_than_one_receptive_field_has_no_windows():
    assert nb01.window_layout(399, 4_000, 1_000) == []
    with pytest.raises(Exception, match="needs at least 400 samples"):
        _cut(399, 4_000, 1_000)


def test_a_whole_clip_shorter_than_min_last_is_kept():
    assert nb01.window_layout(500, 4_000, 1_000) == [(0, 500)]
