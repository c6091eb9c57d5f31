"""m2v_lab.extract: fidelity to the model card, batching without padding, pooling, failures."""

import numpy as np
import pytest
import soundfile as sf
import torch

import m2v_lab as m2v
from m2v_lab.extract import ExtractWarning
from tests.conftest import tone


def test_fidelity_to_the_model_card_on_music2vec_architecture(music2vec_dir, tmp_path):
    """The model card's usage (processor with do_normalize + attention mask, output_hidden_states)
    and m2v_lab give the same frames to 1e-5, 13 layers, floor((N-400)/320)+1 frames."""
    import json

    from transformers import Data2VecAudioConfig, Data2VecAudioModel, Wav2Vec2FeatureExtractor

    n = 37_123  # an odd length: 2.32 s at 16 kHz
    x = tone(n / 16000, 16000, freq=330.0)
    path = tmp_path / "clip.wav"
    sf.write(path, x, 16000, subtype="FLOAT")

    processor = Wav2Vec2FeatureExtractor(feature_size=1, sampling_rate=16000, padding_value=0.0,
                                         do_normalize=True, return_attention_mask=True)
    raw = json.loads((music2vec_dir / "config.json").read_text())  # the card's path, float vocab_size fixed by hand
    raw["vocab_size"] = int(raw["vocab_size"])
    card_model = Data2VecAudioModel.from_pretrained(music2vec_dir, config=Data2VecAudioConfig(**raw)).eval()
    inputs = processor(x, sampling_rate=16000, return_tensors="pt")
    with torch.no_grad():
        outputs = card_model(**inputs, output_hidden_states=True)
    card = torch.stack(outputs.hidden_states).squeeze().numpy()  # [13 layer, frames, 768]

    model = m2v.load_model(music2vec_dir)
    feats = m2v.extract(model, [path], pool=None, progress=False)
    ours = feats.frames(0)
    assert card.shape == ours.shape == (13, (n - 400) // 320 + 1, 768)
    np.testing.assert_allclose(ours, card, rtol=0, atol=1e-5)
    pooled = m2v.extract(model, [path], pool="mean", progress=False).pooled[:, 0]
    np.testing.assert_allclose(pooled, card.mean(-2), rtol=0, atol=1e-5)


def test_clips_of_different_lengths_in_one_call_get_exactly_their_solo_numbers(tiny, write_audio):
    paths = [write_audio(f"c{i}.wav", s, seed=i) for i, s in enumerate([1.0, 1.7, 0.6, 2.0])]
    together = m2v.extract(tiny, paths, pool=None, progress=False, batch_size=4)
    for i, p in enumerate(paths):
        alone = m2v.extract(tiny, [p], pool=None, progress=False)
        np.testing.assert_array_equal(together.frames(i), alone.frames(0))


def test_equal_length_clips_batch_together_and_match_their_solo_numbers(tiny, write_audio, monkeypatch):
    paths = [write_audio(f"e{i}.wav", 1.0, seed=i, freq=200 + 50 * i) for i in range(5)]
    batches = []
    original = type(tiny).layer_states

    def spy(self, x):
        batches.append(tuple(np.shape(x)))
        return original(self, x)

    monkeypatch.setattr(type(tiny), "layer_states", spy)
    together = m2v.extract(tiny, paths + [write_audio("odd.wav", 1.3)], progress=False, batch_size=5)
    assert sorted(batches) == [(1, 20800), (5, 16000)]
    monkeypatch.undo()
    for i, p in enumerate(paths):
        alone = m2v.extract(tiny, [p], progress=False)
        np.testing.assert_allclose(together.pooled[:, i], alone.pooled[:, 0], rtol=0, atol=1e-5)


def test_pooled_shape_is_layers_clips_dim_and_mean_is_the_frame_mean(tiny, write_audio):
    paths = [write_audio("a.wav", 1.2), write_audio("b.wav", 0.8, seed=1)]
    feats = m2v.extract(tiny, paths, progress=False)
    assert feats.pooled.shape == (13, 2, 96) and feats.pooled.dtype == np.float32
    assert feats.layer_names == tiny.layer_names
    frames = m2v.extract(tiny, paths, pool=None, progress=False)
    np.testing.assert_allclose(feats.pooled[:, 1], frames.frames(1).mean(axis=1), atol=1e-6)
    maxed = m2v.extract(tiny, paths, pool="max", progress=False)
    np.testing.assert_allclose(maxed.pooled[:, 0], frames.frames(0).max(axis=1), atol=1e-6)


def test_long_clip_is_windowed_and_pooled_over_all_windows(tiny, write_audio):
    path = write_audio("long.wav", 7.5)
    feats = m2v.extract(tiny, [path], pool=None, window=2.0, progress=False)
    starts = feats.windows[0][:, 0].tolist()
    assert starts == [0, 32000, 64000, 96000]  # 3 full windows and a 1.5 s tail
    per_window = [tiny.num_frames(n) for n in feats.windows[0][:, 1]]
    assert feats.frames(0).shape[1] == sum(per_window)
    times = feats.frame_times(0)
    assert times.shape == (sum(per_window),) and np.all(np.diff(times) > 0)
    pooled = m2v.extract(tiny, [path], window=2.0, progress=False).pooled[:, 0]
    np.testing.assert_allclose(pooled, feats.frames(0).mean(axis=1), atol=1e-5)


def test_ten_minute_track_extracts_pooled_without_holding_its_audio_or_frames(tiny, tmp_path):
    import tracemalloc

    rate = 16000
    path = tmp_path / "ten_minutes.flac"
    with sf.SoundFile(path, "w", rate, 1, subtype="PCM_16") as f:
        for minute in range(10):
            f.write(tone(60, rate, freq=220 + 20 * minute, seed=minute))
    tracemalloc.start()
    feats = m2v.extract(tiny, [path], batch_size=2, progress=False)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert feats.pooled.shape == (13, 1, 96)
    assert len(feats.windows[0]) == 20 and not feats.failed  # 20 windows of 30 s
    whole_track = 600 * rate * 4  # 38 MB as float32; its frames would be 13 x 29999 x 96 x 4 = 150 MB
    assert peak < 0.6 * whole_track, f"numpy peak {peak / 2**20:.0f} MB: the track is being held"


def test_bad_clips_are_collected_with_reasons_while_the_rest_completes(tiny, tmp_path, write_audio):
    good = [write_audio("good1.wav", 1.0), write_audio("good2.wav", 1.0, seed=3)]
    text = tmp_path / "text.wav"
    text.write_text("not audio")
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    nan = tone(1.0, 16000)
    nan[5] = np.nan
    short = write_audio("short.wav", 0.01)
    clips = {"good1": good[0], "text": text, "empty": empty, "missing": tmp_path / "nope.wav",
             "nan": (nan, 16000), "short": short, "good2": good[1]}
    feats = m2v.extract(tiny, clips, progress=False)
    assert feats.clips == ["good1", "good2"] and feats.source_index.tolist() == [0, 6]
    assert set(feats.failed) == {"text", "empty", "missing", "nan", "short"}
    assert "cannot decode" in feats.failed["text"] and "empty" in feats.failed["empty"]
    assert "not found" in feats.failed["missing"] and "NaN" in feats.failed["nan"]
    assert "at least 400 samples" in feats.failed["short"]
    with pytest.raises(m2v.AudioError, match="text.wav"):
        m2v.extract(tiny, [good[0], text], on_error="raise", progress=False)


def test_pool_none_with_a_layer_subset_keeps_only_those_layers(tiny, write_audio, tmp_path):
    path = write_audio("a.wav", 1.0)
    full = m2v.extract(tiny, [path], pool=None, progress=False)
    for cache in (False, tmp_path / "c", tmp_path / "c"):
        one = m2v.extract(tiny, [path], pool=None, layers=[3], cache_dir=cache, progress=False)
        np.testing.assert_array_equal(one.frames(0), full.frames(0)[[3]])


def test_invalid_options_raise_option_errors_naming_the_values(tiny, write_audio):
    path = write_audio("a.wav", 1.0)
    with pytest.raises(m2v.OptionError, match="'track' or 'window'"):
        m2v.extract(tiny, [path], normalize_scope="Track", progress=False)
    with pytest.raises(m2v.OptionError, match="pool"):
        m2v.extract(tiny, [path], pool="median", progress=False)


def test_layer_subset_by_index_and_name(tiny, write_audio):
    path = write_audio("a.wav", 1.0)
    full = m2v.extract(tiny, [path], progress=False)
    some = m2v.extract(tiny, [path], layers=[0, "block_6", 12], progress=False)
    assert some.layer_names == ("pre_transformer", "block_6", "block_12")
    np.testing.assert_array_equal(some.pooled, full.pooled[[0, 6, 12]])
    np.testing.assert_array_equal(full.select(layers=["block_6"]).pooled, full.pooled[[6]])
    with pytest.raises(m2v.OptionError, match="0 = pre_transformer"):
        m2v.extract(tiny, [path], layers=[13], progress=False)
    np.testing.assert_array_equal(m2v.extract(tiny, [path], layers=-1, progress=False).pooled, full.pooled[[12]])
    assert m2v.extract(tiny, [path], layers=[-13], progress=False).layer_names == ("pre_transformer",)


def test_window_given_in_samples_is_caught(tiny, write_audio):
    with pytest.raises(m2v.OptionError, match="samples instead of seconds"):
        m2v.extract(tiny, [write_audio("a.wav", 1.0)], window=480000, progress=False)


def test_mert_style_model_at_24khz_resamples_and_uses_its_context(tiny_mert, write_audio):
    path = write_audio("a.wav", 6.0, rate=44100)
    feats = m2v.extract(tiny_mert, [path], pool=None, progress=False)
    assert feats.meta["window_seconds"] == 5.0 and feats.meta["sample_rate"] == 24000
    assert [n for _, n, _ in feats.windows[0]] == [120000, 24000]
    assert feats.frames(0).shape == (7, tiny_mert.num_frames(120000) + tiny_mert.num_frames(24000), 64)


@pytest.mark.parametrize("options, match", [
    (dict(layers=[13]), "out of range"), (dict(layers=["block_99"]), "no layer"), (dict(layers=[True]), "neither"),
    (dict(layers=[]), "empty"), (dict(batch_size=0), "batch_size"), (dict(batch_size=2.0), "batch_size"),
    (dict(decode_workers=-1), "decode_workers"), (dict(frames_dtype="float64"), "frames_dtype"),
    (dict(frames_dtype="float16"), "applies to frames"), (dict(do_normalize="yes"), "do_normalize"),
    (dict(window="5"), "window"), (dict(min_last=None), "min_last"), (dict(progress="yes"), "progress"),
    (dict(on_error="skip"), "on_error"),
])
def test_every_bad_option_raises_an_option_error_naming_it(tiny, write_audio, options, match):
    with pytest.raises(m2v.OptionError, match=match):
        m2v.extract(tiny, [write_audio("a.wav", 1.0)], **{"progress": False, **options})


def test_a_model_that_is_not_a_loaded_model_is_an_option_error(write_audio):
    with pytest.raises(m2v.OptionError, match="load_model"):
        m2v.extract(object(), [write_audio("a.wav", 1.0)], progress=False)


def test_failed_clips_raise_one_warning_with_the_count_and_first_reasons(tiny, tmp_path, write_audio):
    clips = [write_audio("good.wav", 1.0), tmp_path / "gone.wav", write_audio("short.wav", 0.01)]
    with pytest.warns(ExtractWarning, match=r"2 of 3 clips failed.*gone\.wav.*not found") as record:
        feats = m2v.extract(tiny, clips, progress=False)
    assert len([w for w in record if w.category is ExtractWarning]) == 1
    assert len(feats) == 1 and len(feats.failed) == 2


def test_out_of_device_memory_stops_the_run_with_advice_instead_of_retrying_clip_by_clip(tiny, write_audio,
                                                                                          monkeypatch):
    calls = []

    def out_of_memory(self, x):
        calls.append(np.shape(x))
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(type(tiny), "layer_states", out_of_memory)
    paths = [write_audio(f"c{i}.wav", 1.0, seed=i) for i in range(3)]
    with pytest.raises(m2v.ModelError, match=r"smaller batch_size \(now 4\).*bfloat16"):
        m2v.extract(tiny, paths, batch_size=4, progress=False)
    assert calls == [(3, 16000)], "a device error must not be retried window by window"


def test_a_device_error_message_from_a_runtime_error_is_fatal_too(tiny, write_audio, monkeypatch):
    def broken(self, x):
        raise RuntimeError("CUDA error: an illegal memory access was encountered")

    monkeypatch.setattr(type(tiny), "layer_states", broken)
    with pytest.raises(m2v.ModelError, match="Device memory was freed"):
        m2v.extract(tiny, [write_audio("a.wav", 1.0)], progress=False)


def test_torch_tensor_input_gives_the_numbers_of_the_equal_array(tiny):
    x = tone(1.0, 16000)
    from_array = m2v.extract(tiny, [(x, 16000)], progress=False)
    from_tensor = m2v.extract(tiny, [(torch.from_numpy(x), 16000.0)], progress=False)
    np.testing.assert_array_equal(from_array.pooled, from_tensor.pooled)


@pytest.mark.parametrize("workers", [0, 2])
def test_background_decoding_gives_the_numbers_of_decoding_in_series(tiny, write_audio, workers):
    paths = [write_audio(f"w{i}.wav", s, rate=22050, seed=i) for i, s in enumerate([1.0, 2.6, 0.7, 1.0])]
    reference = m2v.extract(tiny, paths, pool=None, window=1.0, decode_workers=0, progress=False)
    feats = m2v.extract(tiny, paths, pool=None, window=1.0, decode_workers=workers, progress=False)
    for i in range(len(paths)):
        np.testing.assert_array_equal(feats.frames(i), reference.frames(i))


def test_progress_counts_seconds_of_audio_so_a_long_track_moves_the_bar(tiny, write_audio, monkeypatch):
    import tqdm.auto

    bars = []

    class Recorder(tqdm.auto.tqdm):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.updates = []
            bars.append(self)

        def update(self, n=1):
            self.updates.append(n)
            return super().update(n)

    monkeypatch.setattr(tqdm.auto, "tqdm", Recorder)
    paths = [write_audio("long.wav", 6.0), write_audio("short.wav", 1.0, seed=1)]
    m2v.extract(tiny, paths, window=1.0, progress=True)
    (bar,) = bars
    assert bar.total == 7 and bar.n == 7
    assert len([u for u in bar.updates if u > 0]) >= 6, "each window of the long track moves the bar"


def test_like_reuses_every_setting_of_earlier_features_and_explicit_options_win(tiny, write_audio):
    from m2v_lab.settings import ExtractSettings

    paths = [write_audio("a.wav", 2.5), write_audio("b.wav", 1.5, seed=1)]
    first = m2v.extract(tiny, paths[:1], pool="max", layers=[2, -1], window=1.0, min_last=0.2,
                        normalize_scope="window", progress=False)
    more = m2v.extract(tiny, paths[1:], like=first, progress=False)
    assert more.settings == first.settings == ExtractSettings.from_meta(first.meta)
    assert more.layer_names == first.layer_names == ("block_2", "block_12")
    by_hand = m2v.extract(tiny, paths[1:], pool="max", layers=[2, 12], window=1.0, min_last=0.2,
                          normalize_scope="window", progress=False)
    np.testing.assert_array_equal(more.pooled, by_hand.pooled)
    frames = m2v.extract(tiny, paths[:1], like=first, pool=None, progress=False)
    assert frames.meta["pool"] is None and frames.meta["window_samples"] == 16000
    np.testing.assert_allclose(frames.frames(0).max(axis=1), first.pooled[:, 0], rtol=0, atol=1e-6)


def test_like_refuses_what_is_not_features_and_features_without_settings(tiny, write_audio):
    path = write_audio("a.wav", 1.0)
    with pytest.raises(m2v.OptionError, match="like= takes Features"):
        m2v.extract(tiny, [path], like={"pool": "mean"}, progress=False)
    handmade = m2v.Features(layer_names=["a"], layer_indices=[0], clips=["x"], source_index=[0],
                            meta={"hidden_size": 2}, pooled=np.zeros((1, 1, 2), np.float32))
    with pytest.raises(m2v.OptionError, match="not made by m2v_lab.extract"):
        m2v.extract(tiny, [path], like=handmade, progress=False)


def test_clip_table_of_paths_and_arrays_says_where_each_extracted_clip_came_from(tiny, tmp_path, write_audio):
    clips = [write_audio("a.wav", 1.0), tmp_path / "gone.wav", (tone(1.0, 16000), 16000)]
    with pytest.warns(ExtractWarning):
        feats = m2v.extract(tiny, clips, progress=False)
    table = feats.clip_table
    assert table["source_index"].tolist() == [0, 2] and table["clip_id"].tolist() == feats.clips
    assert table["path"].tolist() == [str(clips[0]), "array (16000 samples at 16000 Hz)"]


def test_decoding_runs_in_series_on_the_cpu_by_default_and_in_a_thread_when_asked(tiny, write_audio, monkeypatch):
    asked = []
    original = m2v.audio.prefetch_windows

    def spy(sources, **kw):
        asked.append(kw["workers"])
        return original(sources, **kw)

    monkeypatch.setattr(m2v.audio, "prefetch_windows", spy)
    path = write_audio("a.wav", 1.0)
    m2v.extract(tiny, [path], progress=False)
    m2v.extract(tiny, [path], decode_workers=2, progress=False)
    assert asked == [0, 2]
