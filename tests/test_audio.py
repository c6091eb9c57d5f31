"""m2v_lab.audio: decoding, mono mix, resampling, windowing policy, normalisation, bad files."""

import numpy as np
import pytest
import soundfile as sf
import soxr

from m2v_lab import AudioError
from m2v_lab.audio import AudioSource, as_sources, blocks, load, normalize, windows
from tests.conftest import tone


@pytest.mark.parametrize("fmt,ext,tol", [("WAV", "wav", 1e-4), ("FLAC", "flac", 1e-4), ("OGG", "ogg", 0.1),
                                         ("MP3", "mp3", 0.1)])
def test_reads_common_formats_to_the_same_signal(tmp_path, fmt, ext, tol):
    x = tone(1.0, 16000)
    path = tmp_path / f"clip.{ext}"
    sf.write(path, x, 16000, format=fmt)
    y = load(path, sample_rate=16000)
    n = min(x.size, y.size)
    assert abs(y.size - x.size) < 0.1 * 16000  # lossy codecs pad a little
    if fmt in ("WAV", "FLAC"):
        np.testing.assert_allclose(y, x, atol=tol)
    else:
        # lossy codecs: compare spectra (both have their energy at 440 Hz)
        peak = np.argmax(np.abs(np.fft.rfft(y[:n] * np.hanning(n))))
        assert abs(peak * 16000 / n - 440) < 5


def test_multichannel_audio_is_mixed_to_mono_by_averaging(write_audio):
    path = write_audio("eight.wav", 0.5, rate=16000, channels=8)
    x = sf.read(path, dtype="float32")[0]
    np.testing.assert_allclose(load(path, sample_rate=16000), x.mean(axis=1), atol=1e-6)


def test_192khz_audio_is_resampled_to_the_model_rate(write_audio):
    path = write_audio("hi.wav", 1.0, rate=192000, freq=1000)
    y = load(path, sample_rate=16000)
    assert y.size == 16000
    peak = np.argmax(np.abs(np.fft.rfft(y * np.hanning(y.size))))
    assert abs(peak - 1000) <= 1


def test_streaming_resampler_equals_one_shot_soxr(write_audio):
    path = write_audio("long.wav", 25.0, rate=44100)
    x = sf.read(path, dtype="float32")[0]
    streamed = np.concatenate(list(blocks(AudioSource("c", path=path), sample_rate=16000, block_seconds=3)))
    np.testing.assert_array_equal(streamed, soxr.resample(x, 44100, 16000, quality="HQ"))


def test_nan_samples_raise_naming_the_file_and_fix(tmp_path):
    x = tone(0.5, 16000)
    x[100] = np.nan
    path = tmp_path / "nan.wav"
    sf.write(path, x, 16000, subtype="FLOAT")
    with pytest.raises(AudioError, match=r"nan\.wav.*NaN/inf.*nan_to_num"):
        load(path, sample_rate=16000)
    x[100] = np.inf
    with pytest.raises(AudioError, match="NaN/inf"):
        load((x, 16000), sample_rate=16000)


def test_text_file_named_wav_raises_naming_the_file(tmp_path):
    path = tmp_path / "notes.wav"
    path.write_text("this is not audio")
    with pytest.raises(AudioError, match=r"cannot decode .*notes\.wav.*ffmpeg"):
        load(path, sample_rate=16000)


def test_empty_file_raises_naming_the_file(tmp_path):
    path = tmp_path / "empty.flac"
    path.write_bytes(b"")
    with pytest.raises(AudioError, match=r"empty\.flac is empty"):
        load(path, sample_rate=16000)


def test_missing_file_raises_naming_the_path(tmp_path):
    with pytest.raises(AudioError, match=r"not found: .*ghost\.wav"):
        load(tmp_path / "ghost.wav", sample_rate=16000)


def _windows(seconds, *, window=30.0, min_last=1.0, rate=16000):
    source = AudioSource("x", array=np.zeros(int(seconds * rate), np.float32), sample_rate=rate)
    return [(s, w.size) for s, w in windows(source, sample_rate=rate, window=int(window * rate),
                                            min_last=int(min_last * rate), min_samples=400,
                                            do_normalize=False)]


def test_windows_cut_long_audio_into_context_length_pieces_keeping_a_long_tail():
    assert _windows(70) == [(0, 480000), (480000, 480000), (960000, 160000)]


def test_windows_drop_a_tail_shorter_than_min_last():
    assert _windows(60.5) == [(0, 480000), (480000, 480000)]
    assert _windows(60.5, min_last=0.25)[-1] == (960000, 8000)


def test_a_clip_shorter_than_the_window_is_one_window():
    assert _windows(0.5) == [(0, 8000)]


def test_a_clip_shorter_than_the_receptive_field_raises_with_its_length():
    with pytest.raises(AudioError, match=r"399 samples .* at least 400 samples"):
        _windows(399 / 16000)


def test_normalize_matches_the_model_card_processor():
    from transformers import Wav2Vec2FeatureExtractor

    x = tone(1.3, 16000) * 0.7 + 0.05
    fe = Wav2Vec2FeatureExtractor(feature_size=1, sampling_rate=16000, padding_value=0.0, do_normalize=True,
                                  return_attention_mask=True)
    ref = fe(x, sampling_rate=16000, return_tensors="np")["input_values"][0]
    np.testing.assert_array_equal(normalize(x), ref)


def test_track_statistics_stay_exact_over_many_blocks_with_a_large_offset():
    from m2v_lab.audio import track_stats

    x = (tone(40, 16000) + 100.0).astype(np.float32)  # 4 blocks of 10 s, DC offset 100
    mean, std, n = track_stats(AudioSource("x", array=x, sample_rate=16000), sample_rate=16000)
    x64 = x.astype(np.float64)
    assert n == x.size
    assert mean == pytest.approx(x64.mean(), rel=1e-12)
    assert std == pytest.approx(np.sqrt(x64.var() + 1e-7), rel=1e-9)


def test_track_scope_normalises_every_window_with_whole_track_statistics():
    rate = 16000
    x = np.concatenate([tone(2, rate), 3 * tone(2, rate, seed=1)])
    source = AudioSource("x", array=x, sample_rate=rate)
    kw = dict(sample_rate=rate, window=2 * rate, min_last=rate, min_samples=400, do_normalize=True)
    track = np.concatenate([w for _, w in windows(source, scope="track", **kw)])
    np.testing.assert_allclose(track, normalize(x), atol=1e-6)
    per_window = [w for _, w in windows(source, scope="window", **kw)]
    assert all(abs(w.std() - 1) < 1e-3 for w in per_window)


def test_as_sources_gives_unique_ids_and_reads_dataframes(tmp_path):
    import pandas as pd

    srcs = as_sources(["a.wav", "a.wav", (np.zeros(10), 8000)])
    assert [s.clip_id for s in srcs] == ["a.wav", "a.wav#1", "array_2"]
    ids = [s.clip_id for s in as_sources(["a.wav", "a.wav", "a.wav#1"])]
    assert len(set(ids)) == 3
    frame = pd.DataFrame({"path": ["x.wav", "x.wav"], "start": [0.0, 2.0], "duration": [2.0, np.nan]})
    srcs = as_sources(frame)
    assert [(s.start, s.duration) for s in srcs] == [(0.0, 2.0), (2.0, None)]
    assert srcs[0].clip_id != srcs[1].clip_id
    with pytest.raises(AudioError, match="sample_rate"):
        as_sources([np.zeros(10)])
    with pytest.raises(AudioError, match="swap"):
        as_sources([(np.zeros(10), 0.5)])


def test_channels_first_arrays_get_a_hint_to_transpose():
    with pytest.raises(AudioError, match=r"array\.T"):
        load((np.zeros((2, 16000), np.float32), 16000), sample_rate=16000)


def test_segments_of_a_file_read_only_their_span(write_audio):
    path = write_audio("seg.wav", 3.0)
    whole = load(path, sample_rate=16000)
    part = load(AudioSource("p", path=path, start=1.0, duration=0.5), sample_rate=16000)
    np.testing.assert_array_equal(part, whole[16000:24000])
