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


# -- in-memory input ---------------------------------------------------------------------------------------------

def _pcm(dtype, n, *, channels=1, seed=0):
    """Random integer PCM of ``dtype`` with both extremes and zero first, (n,) or (n, channels)."""
    info = np.iinfo(dtype)
    rng = np.random.default_rng(seed)
    x = rng.integers(info.min, info.max, (n, channels), endpoint=True).astype(dtype)
    x[:3] = np.array([info.min, info.max, (info.min + info.max + 1) // 2], dtype)[:, None]
    return x[:, 0] if channels == 1 else x


def _write_pcm(path, x, rate):
    """Write integer PCM ``x`` byte for byte as the file format stores it (no conversion by libsndfile)."""
    if x.dtype == np.uint8:  # soundfile cannot write uint8 arrays; the wave module stores them as they are
        import wave

        with wave.open(str(path), "wb") as f:
            f.setnchannels(1 if x.ndim == 1 else x.shape[1])
            f.setsampwidth(1)
            f.setframerate(rate)
            f.writeframes(x.tobytes())
    elif x.dtype == np.int8:  # int16 with the low byte zero is written to PCM_S8 as its high byte
        sf.write(path, x.astype(np.int16) << 8, rate, subtype="PCM_S8", format="AIFF")
    else:
        sf.write(path, x, rate, subtype={np.int16: "PCM_16", np.int32: "PCM_32"}[x.dtype.type])
    return path


@pytest.mark.parametrize("dtype,ext", [(np.int16, "wav"), (np.int32, "wav"), (np.uint8, "wav"), (np.int8, "aiff")])
def test_integer_pcm_arrays_give_soundfiles_float_decode_of_the_same_pcm_file(tmp_path, dtype, ext):
    rate = 22050
    mono = _pcm(dtype, rate)
    path = _write_pcm(tmp_path / f"mono.{ext}", mono, rate)
    # the file holds exactly these integers (soundfile reads 8-bit PCM as int16, high byte, signed)
    held = {np.uint8: (mono.astype(np.int16) - 128) << 8, np.int8: mono.astype(np.int16) << 8}.get(dtype, mono)
    np.testing.assert_array_equal(sf.read(path, dtype=held.dtype)[0], held)
    np.testing.assert_array_equal(load((mono, rate), sample_rate=rate), sf.read(path, dtype="float32")[0])

    stereo = _pcm(dtype, int(1.2 * rate), channels=2, seed=1)
    path = _write_pcm(tmp_path / f"stereo.{ext}", stereo, rate)
    kw = dict(sample_rate=16000, window=16000, min_last=1000, min_samples=400, do_normalize=True)
    from_array = list(windows(as_sources([(stereo, rate)])[0], **kw))
    from_file = list(windows(AudioSource("f", path=path), **kw))
    assert [s for s, _ in from_array] == [s for s, _ in from_file] == [0, 16000]
    for (_, a), (_, f) in zip(from_array, from_file):
        np.testing.assert_array_equal(a, f)


@pytest.mark.parametrize("array,match", [
    (np.zeros(1000, bool), "bool"), (np.zeros(1000, np.complex64), "complex64"), (np.zeros(1000, object), "object"),
    (np.zeros(1000, np.int64), r"int64 .*int16, int32\)\. .*astype\(np\.int16\)"),
    (np.zeros(1000, np.uint16), "uint16")])
def test_arrays_that_are_not_audio_samples_raise_naming_the_dtype_and_fix(array, match):
    with pytest.raises(AudioError, match=rf"array 'array_0': samples of dtype {match}"):
        load((array, 16000), sample_rate=16000)


def test_torch_tensors_are_read_as_the_equal_numpy_array():
    import torch

    x = tone(0.5, 16000)
    ref = load((x, 16000), sample_rate=16000)
    leaf = torch.tensor(x, requires_grad=True)
    np.testing.assert_array_equal(load((leaf * 1, 16000), sample_rate=16000), ref)  # detached from the graph
    np.testing.assert_array_equal(load((torch.tensor(x).to(torch.bfloat16), 16000), sample_rate=16000),
                                  load((torch.tensor(x).to(torch.bfloat16).float().numpy(), 16000),
                                       sample_rate=16000))
    pcm = _pcm(np.int16, 8000)
    np.testing.assert_array_equal(load((torch.from_numpy(pcm), 16000), sample_rate=16000),
                                  load((pcm, 16000), sample_rate=16000))
    source = as_sources({"t": (torch.tensor(x), 16000.0)})[0]
    assert source.clip_id == "t" and isinstance(source.array, np.ndarray) and source.array.dtype == np.float32
    assert source.content_hash() == as_sources([(x, 16000)])[0].content_hash()
    with pytest.raises(AudioError, match=r"\(channels, samples\).*tensor\.T"):
        load((torch.zeros(2, 16000), 16000), sample_rate=16000)
    with pytest.raises(AudioError, match="bare Tensor"):
        as_sources([torch.tensor(x)])


def test_audio_module_never_imports_torch(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    import m2v_lab

    package = Path(m2v_lab.__file__).parent
    # m2v_lab/__init__ imports torch for the models; load audio.py under a bare package to see its own imports
    code = (f"import sys, types; pkg = types.ModuleType('m2v_lab'); pkg.__path__ = [{str(package)!r}]; "
            "sys.modules['m2v_lab'] = pkg; import numpy as np; from m2v_lab import audio; "
            "assert audio.load((np.zeros(800, np.int16), 16000.0), sample_rate=8000).size == 400; "
            "assert 'torch' not in sys.modules, 'audio imported torch'")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=tmp_path)


@pytest.mark.parametrize("rate", [24000.0, np.float64(16000.0), np.float32(8000), np.int64(22050)])
def test_whole_float_sample_rates_are_stored_as_int(rate):
    source = as_sources([(np.zeros(10, np.float32), rate)])[0]
    assert source.sample_rate == int(rate) and type(source.sample_rate) is int
    assert source.content_hash() == as_sources([(np.zeros(10, np.float32), int(rate))])[0].content_hash()


@pytest.mark.parametrize("rate", [22050.5, 0, -16000, float("nan"), float("inf"), True, "16000", None,
                                  np.zeros(10)])
def test_unusable_sample_rates_raise_suggesting_a_swap(rate):
    with pytest.raises(AudioError, match=r"array 'array_0': sample rate .* positive whole number .* swap"):
        as_sources([(np.zeros(10, np.float32), rate)])


def test_audio_source_takes_str_paths_and_list_arrays_and_needs_one_of_them():
    from pathlib import Path

    source = AudioSource("a", path="~/a.wav")
    assert source.path == Path.home() / "a.wav"
    assert as_sources(["~/a.wav"])[0].path == source.path
    listed = AudioSource("l", array=[0.0, 0.5, -0.5], sample_rate=8000.0)
    assert isinstance(listed.array, np.ndarray) and listed.sample_rate == 8000
    with pytest.raises(AudioError, match="'n' has neither a path nor an array"):
        AudioSource("n")
    with pytest.raises(AudioError, match="'b' has both"):
        AudioSource("b", path="a.wav", array=np.zeros(3))
    with pytest.raises(AudioError, match=r"array 'r': sample rate None"):
        AudioSource("r", array=np.zeros(3))
    with pytest.raises(AudioError, match=r"array 'j': cannot make an array"):
        AudioSource("j", array=[[0.0, 1.0], [0.0]], sample_rate=8000)


def test_content_hash_is_equal_for_equal_inputs_and_follows_samples_and_rate():
    x = tone(0.2, 16000)
    h = as_sources([(x, 16000)])[0].content_hash()
    assert as_sources([(x.copy(), 16000)])[0].content_hash() == h
    assert as_sources([(x[::-1].copy(), 16000)])[0].content_hash() != h
    assert as_sources([(x, 22050)])[0].content_hash() != h


def test_duration_reads_the_header_of_the_selected_segment(write_audio):
    from m2v_lab.audio import duration

    path = write_audio("d.wav", 2.0, rate=8000)
    assert duration(AudioSource("d", path=path)) == 2.0
    assert duration(AudioSource("d", path=path, start=0.5, duration=1.0)) == 1.0
    assert duration(as_sources([(np.zeros(4000), 16000)])[0]) == 0.25
    with pytest.raises(AudioError, match="not found"):
        duration(AudioSource("g", path=path.with_name("ghost.wav")))


# -- decode once -------------------------------------------------------------------------------------------------

def _count_decodes(monkeypatch):
    import m2v_lab.audio as audio_module

    calls = []
    real = audio_module._raw_blocks

    def counting(source, block_frames):
        calls.append(source.clip_id)
        yield from real(source, block_frames)

    monkeypatch.setattr(audio_module, "_raw_blocks", counting)
    return calls


def test_a_clip_that_fits_one_window_is_decoded_once_with_unchanged_numbers(write_audio, monkeypatch):
    path = write_audio("short.wav", 1.3, rate=44100)
    decoded = load(path, sample_rate=16000)
    two_pass = normalize(decoded)  # the processor on the decoded clip, as before
    calls = _count_decodes(monkeypatch)
    kw = dict(sample_rate=16000, min_last=16000, min_samples=400, do_normalize=True, scope="track")
    out = list(windows(AudioSource("c", path=path), window=32000, **kw))
    assert calls == ["c"]
    assert len(out) == 1 and out[0][0] == 0
    np.testing.assert_array_equal(out[0][1], two_pass)
    # a clip of exactly one window too
    exact = AudioSource("e", array=decoded[:16000], sample_rate=16000)
    out = list(windows(exact, window=16000, **kw))
    assert calls == ["c", "e"] and [s for s, _ in out] == [0]
    np.testing.assert_array_equal(out[0][1], normalize(exact.array))


def test_a_clip_longer_than_a_window_streams_twice_instead_of_being_held(write_audio, monkeypatch):
    path = write_audio("long.wav", 2.5, rate=16000)
    calls = _count_decodes(monkeypatch)
    out = list(windows(AudioSource("c", path=path), sample_rate=16000, window=16000, min_last=4000,
                       min_samples=400, do_normalize=True, scope="track"))
    assert calls == ["c", "c"] and [s for s, _ in out] == [0, 16000, 32000]


def test_windows_return_the_clip_length_including_a_dropped_tail():
    source = AudioSource("x", array=np.zeros(16000 + 100, np.float32), sample_rate=16000)
    stream = windows(source, sample_rate=16000, window=8000, min_last=1000, min_samples=400, do_normalize=False)
    with pytest.raises(StopIteration) as end:
        while True:
            next(stream)
    assert end.value.value == 16100


def test_a_clip_with_no_samples_after_resampling_raises_too_short_without_warnings(tmp_path):
    import warnings

    path = tmp_path / "one.wav"
    sf.write(path, np.zeros(1, np.float32), 44100)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(AudioError, match="is 0 samples"):
            list(windows(AudioSource("o", path=path), sample_rate=16000, window=16000, min_last=1000,
                         min_samples=400, do_normalize=True))


# -- prefetching -------------------------------------------------------------------------------------------------

_PREFETCH_KW = dict(sample_rate=16000, window=4000, min_last=1000, min_samples=400, do_normalize=True)


def _mixed_sources(tmp_path, write_audio):
    """Short, multi-window, missing, empty, not-audio and late-NaN clips, files at 22.05 kHz."""
    (tmp_path / "empty.wav").write_bytes(b"")
    (tmp_path / "text.wav").write_text("not audio")
    late_nan = tone(1.0, 16000)
    late_nan[-10] = np.nan
    return as_sources([write_audio("short.wav", 0.2, rate=22050), write_audio("long.wav", 1.1, rate=22050, seed=1),
                       tmp_path / "missing.wav", tmp_path / "empty.wav", (late_nan, 16000),
                       tmp_path / "text.wav", write_audio("stereo.wav", 0.7, rate=22050, channels=2),
                       (tone(0.01, 16000), 16000)])


def _reference_events(sources, **kw):
    """What calling windows() on each source in turn gives, as prefetch_windows' events."""
    from m2v_lab.audio import WindowsDone

    events = []
    for pos, source in enumerate(sources):
        stream, n = windows(source, **kw), 0
        try:
            while True:
                events.append((pos, next(stream)))
                n += 1
        except StopIteration as end:
            events.append((pos, WindowsDone(n, end.value)))
        except AudioError as exc:
            events.append((pos, exc))
    return events


def _assert_same_events(got, want):
    assert [(p, type(e)) for p, e in got] == [(p, type(e)) for p, e in want]
    for (_, g), (_, w) in zip(got, want):
        if isinstance(w, tuple):
            assert g[0] == w[0] and g[1].dtype == w[1].dtype
            np.testing.assert_array_equal(g[1], w[1])
        elif isinstance(w, AudioError):
            assert str(g) == str(w)
        else:
            assert g == w


@pytest.mark.parametrize("scope", ["track", "window"])
@pytest.mark.parametrize("workers", [0, 1, 2, 3])
def test_prefetch_gives_the_events_of_windows_per_source_in_order_errors_included(tmp_path, write_audio,
                                                                                   workers, scope):
    from m2v_lab.audio import prefetch_windows

    sources = _mixed_sources(tmp_path, write_audio)
    want = _reference_events(sources, scope=scope, **_PREFETCH_KW)
    assert sum(isinstance(e, AudioError) for _, e in want) == 5  # missing, empty, NaN, not audio, too short
    got = list(prefetch_windows(sources, workers=workers, max_ahead=3, scope=scope, **_PREFETCH_KW))
    _assert_same_events(got, want)


@pytest.mark.parametrize("workers,max_ahead", [(1, 3), (2, 4), (3, 7), (4, 3)])
def test_prefetch_holds_at_most_max_ahead_windows_not_yet_consumed(write_audio, monkeypatch, workers, max_ahead):
    import threading
    import time

    import m2v_lab.audio as audio_module

    real = audio_module.windows
    lock, state = threading.Lock(), {"out": 0, "peak": 0}

    def counting(source, **kw):
        stream = real(source, **kw)
        while True:
            try:
                item = next(stream)
            except StopIteration as end:
                return end.value
            with lock:
                state["out"] += 1
                state["peak"] = max(state["peak"], state["out"])
            yield item

    monkeypatch.setattr(audio_module, "windows", counting)
    sources = as_sources([write_audio(f"{i}.wav", 1.0, seed=i) for i in range(4)])
    kw = dict(_PREFETCH_KW, window=1600)  # 10 windows a clip
    n = 0
    for _, event in audio_module.prefetch_windows(sources, workers=workers, max_ahead=max_ahead, **kw):
        if isinstance(event, tuple):
            with lock:
                state["out"] -= 1
            n += 1
            time.sleep(0.003)  # a slow consumer: the threads run ahead as far as they may
    assert n == 40
    # a window the consumer holds keeps its slot until the consumer asks for the next event, so the count of
    # windows produced and not yet received stays within max_ahead; at 2 or more, the threads did run ahead
    assert 2 <= state["peak"] <= max_ahead


@pytest.mark.parametrize("how", ["break", "close", "raise"])
def test_closing_prefetch_early_stops_its_threads(write_audio, how):
    import threading

    from m2v_lab.audio import prefetch_windows

    def alive():
        return [t for t in threading.enumerate() if t.name.startswith("m2v_lab-prefetch")]

    sources = as_sources([write_audio(f"{i}.wav", 1.0, seed=i) for i in range(6)])
    kw = dict(_PREFETCH_KW, window=800)
    if how == "close":
        events = prefetch_windows(sources, workers=3, max_ahead=6, **kw)
        next(events)
        assert len(alive()) == 3
        events.close()
    elif how == "break":
        for _ in prefetch_windows(sources, workers=3, max_ahead=6, **kw):
            break
    else:
        with pytest.raises(KeyError):
            for _ in prefetch_windows(sources, workers=3, max_ahead=6, **kw):
                raise KeyError("consumer failed")
    assert alive() == []


def test_closing_prefetch_stops_a_thread_part_way_through_a_long_statistics_pass(monkeypatch):
    import threading
    import time

    import m2v_lab.audio as audio_module

    real = audio_module._raw_blocks
    read = []

    def slow(source, block_frames):
        for block in real(source, block_frames):
            read.append(source.clip_id)
            time.sleep(0.02)
            yield block

    monkeypatch.setattr(audio_module, "_raw_blocks", slow)
    rate = 1000  # 10 s blocks of 10000 samples: a 200 s clip is 20 blocks, all read before its first window
    sources = as_sources({"short": (tone(1, rate), rate), "long": (tone(200, rate), rate)})
    events = audio_module.prefetch_windows(sources, workers=2, sample_rate=rate, window=5 * rate, min_last=rate,
                                           min_samples=400, do_normalize=True)
    assert next(events)[0] == 0
    while "long" not in read:  # the second thread is in the statistics pass of the long clip
        time.sleep(0.005)
    events.close()
    assert read.count("long") < 20
    assert not [t for t in threading.enumerate() if t.name.startswith("m2v_lab-prefetch")]


@pytest.mark.parametrize("workers", [0, 1, 2])
def test_a_bug_while_prefetching_is_raised_in_the_consumer_at_its_source(write_audio, monkeypatch, workers):
    import threading

    import m2v_lab.audio as audio_module

    real = audio_module._raw_blocks

    def buggy(source, block_frames):
        if source.clip_id.endswith("bug.wav"):
            raise ZeroDivisionError("a bug, not an audio problem")
        yield from real(source, block_frames)

    monkeypatch.setattr(audio_module, "_raw_blocks", buggy)
    sources = as_sources([write_audio("a.wav", 0.5), write_audio("b.wav", 0.5), write_audio("bug.wav", 0.5),
                          write_audio("c.wav", 0.5)])
    seen = []
    with pytest.raises(ZeroDivisionError, match="a bug"):
        for pos, event in audio_module.prefetch_windows(sources, workers=workers, **_PREFETCH_KW):
            seen.append(pos)
    assert sorted(set(seen)) == [0, 1]
    assert not [t for t in threading.enumerate() if t.name.startswith("m2v_lab-prefetch")]


def test_prefetch_checks_its_options_when_called():
    from m2v_lab import OptionError
    from m2v_lab.audio import prefetch_windows

    sources = as_sources([(np.zeros(1000), 16000)])
    with pytest.raises(OptionError, match="workers=-1"):
        prefetch_windows(sources, workers=-1, **_PREFETCH_KW)
    with pytest.raises(OptionError, match="max_ahead=0"):
        prefetch_windows(sources, max_ahead=0, **_PREFETCH_KW)
    with pytest.raises(OptionError, match="window options"):
        prefetch_windows(sources, windw=3, **{k: v for k, v in _PREFETCH_KW.items() if k != "window"})
    with pytest.raises(AudioError, match="scope 'clip'"):
        prefetch_windows(sources, scope="clip", **_PREFETCH_KW)
    with pytest.raises(AudioError, match="source 1 is a str, not an AudioSource"):
        prefetch_windows(sources + ["a.wav"], **_PREFETCH_KW)
