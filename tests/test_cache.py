"""m2v_lab.cache: hits, keys, atomic writes under kill and concurrency, corrupt entries."""

import os
import signal
import subprocess
import sys
import textwrap
import time
import warnings
from pathlib import Path

import numpy as np
import pytest

import m2v_lab as m2v
from m2v_lab.cache import CacheWarning, FeatureCache

ROOT = Path(__file__).resolve().parents[1]


def _entries(cache_dir):
    return FeatureCache(cache_dir).entries()


def _layer_files(cache_dir):
    return sorted(Path(cache_dir).glob("*/*/*.L[0-9][0-9].safetensors"))


def test_second_run_is_served_from_the_cache_with_identical_numbers(tiny, write_audio, tmp_path):
    paths = [write_audio(f"c{i}.wav", 1.0, seed=i) for i in range(3)]
    first = m2v.extract(tiny, paths, cache_dir=tmp_path / "c", progress=False)
    second = m2v.extract(tiny, paths, cache_dir=tmp_path / "c", progress=False)
    assert first.meta["cache_hits"] == 0 and second.meta["cache_hits"] == 3
    np.testing.assert_array_equal(first.pooled, second.pooled)
    frames = m2v.extract(tiny, paths, pool=None, cache_dir=tmp_path / "c", progress=False)
    again = m2v.extract(tiny, paths, pool=None, cache_dir=tmp_path / "c", progress=False)
    assert again.meta["cache_hits"] == 3
    np.testing.assert_array_equal(frames.frames(2), again.frames(2))


def test_key_changes_with_everything_that_changes_the_numbers(tiny, write_audio, tmp_path):
    path = write_audio("a.wav", 1.0)
    cache = tmp_path / "c"
    m2v.extract(tiny, [path], cache_dir=cache, progress=False)
    variants = [dict(window=0.5), dict(do_normalize=False), dict(pool="max"), dict(normalize_scope="window")]
    for kw in variants:
        assert m2v.extract(tiny, [path], cache_dir=cache, progress=False, **kw).meta["cache_hits"] == 0
    twin = m2v.random_twin(tiny)
    assert m2v.extract(twin, [path], cache_dir=cache, progress=False).meta["cache_hits"] == 0
    write_audio("a.wav", 1.0, seed=9)  # same name, new content
    assert m2v.extract(tiny, [path], cache_dir=cache, progress=False).meta["cache_hits"] == 0
    assert len(_entries(cache)) == 2 + len(variants) + 1


def test_key_ignores_what_does_not_change_the_numbers_and_sees_tails_and_segments(tiny, write_audio, tmp_path):
    cache = tmp_path / "c"
    path = write_audio("a.wav", 2.5)
    m2v.extract(tiny, [path], window=1.0, cache_dir=cache, progress=False)
    same = [dict(batch_size=1), dict(layers=[0, 5])]
    for kw in same:
        assert m2v.extract(tiny, [path], window=1.0, cache_dir=cache, progress=False, **kw).meta["cache_hits"] == 1
    renamed = path.with_name("renamed.wav")
    renamed.write_bytes(path.read_bytes())
    assert m2v.extract(tiny, [renamed], window=1.0, cache_dir=cache, progress=False).meta["cache_hits"] == 1
    assert m2v.extract(tiny, [path], window=1.0, min_last=0.6, cache_dir=cache,
                       progress=False).meta["cache_hits"] == 0  # the tail is dropped now
    segment = m2v.audio.AudioSource("seg", path=path, start=0.5, duration=1.0)
    assert m2v.extract(tiny, [segment], window=1.0, cache_dir=cache, progress=False).meta["cache_hits"] == 0
    no_norm = dict(do_normalize=False, window=1.0, cache_dir=cache, progress=False)
    m2v.extract(tiny, [path], normalize_scope="track", **no_norm)
    assert m2v.extract(tiny, [path], normalize_scope="window", **no_norm).meta["cache_hits"] == 1


def test_in_place_weight_edit_changes_the_fingerprint_so_the_cache_misses(write_audio, tmp_path):
    import torch

    model = m2v.load_model("tiny-music2vec")
    path = write_audio("a.wav", 1.0)
    m2v.extract(model, [path], cache_dir=tmp_path, progress=False)
    with torch.no_grad():
        next(model.module.parameters()).mul_(1.5)
    assert m2v.extract(model, [path], cache_dir=tmp_path, progress=False).meta["cache_hits"] == 0


def test_a_failing_cache_write_warns_and_the_run_completes(tiny, write_audio, tmp_path, monkeypatch):
    def broken(*args, **kwargs):
        raise m2v.CacheError("disk full (simulated).")

    monkeypatch.setattr(FeatureCache, "put", broken)
    paths = [write_audio(f"c{i}.wav", 1.0, seed=i) for i in range(3)]
    with pytest.warns(CacheWarning, match="without the cache"):
        feats = m2v.extract(tiny, paths, cache_dir=tmp_path, progress=False)
    assert len(feats) == 3 and not feats.failed


def test_truncated_entry_is_detected_and_recomputed_with_a_warning(tiny, write_audio, tmp_path):
    path = write_audio("a.wav", 1.0)
    clean = m2v.extract(tiny, [path], cache_dir=tmp_path / "c", progress=False)
    (entry,) = _entries(tmp_path / "c")
    entry.write_bytes(entry.read_bytes()[: entry.stat().st_size // 2])
    with pytest.warns(CacheWarning, match="unusable"):
        again = m2v.extract(tiny, [path], cache_dir=tmp_path / "c", progress=False)
    assert again.meta["cache_hits"] == 0
    np.testing.assert_array_equal(clean.pooled, again.pooled)
    assert len(_entries(tmp_path / "c")) == 1


def test_entry_filed_under_the_wrong_key_is_rejected(tmp_path):
    cache = FeatureCache(tmp_path)
    written = cache.put("f" * 64, "a" * 64, {"pooled": np.ones((2, 3), np.float32)}, {})
    misfiled = cache.path("f" * 64, "b" * 64)
    misfiled.parent.mkdir(parents=True, exist_ok=True)
    os.replace(written, misfiled)
    with pytest.warns(CacheWarning):
        assert cache.get("f" * 64, "b" * 64) is None


def test_cache_info_and_clear(tiny, write_audio, tmp_path):
    paths = [write_audio(f"c{i}.wav", 1.0, seed=i) for i in range(2)]
    m2v.extract(tiny, paths, cache_dir=tmp_path / "c", progress=False)
    info = m2v.cache_info(tmp_path / "c")
    assert info["entries"].tolist() == [2] and info["model_name"].tolist() == ["tiny-music2vec"]
    assert info["bytes"].iloc[0] > 0
    with pytest.raises(m2v.CacheError, match="tiny-music2vec"):
        m2v.clear_cache(tmp_path / "c", model="no-such-model")
    assert m2v.clear_cache(tmp_path / "c", model="tiny-music2vec") == 2
    assert _entries(tmp_path / "c") == []


def test_cache_dir_none_uses_the_environment_variable(tiny, write_audio, tmp_path, monkeypatch):
    monkeypatch.setenv("M2V_LAB_CACHE", str(tmp_path / "env"))
    m2v.extract(tiny, [write_audio("a.wav", 1.0)], progress=False)
    assert len(_entries(tmp_path / "env")) == 1
    m2v.extract(tiny, [write_audio("b.wav", 1.0, seed=1)], cache_dir=False, progress=False)
    assert len(_entries(tmp_path / "env")) == 1


def test_unwritable_cache_folder_raises_with_the_fix(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(m2v.CacheError, match="M2V_LAB_CACHE"):
        FeatureCache(blocker / "cache")


WORKER = textwrap.dedent("""
    import os, sys
    os.environ["HF_HUB_OFFLINE"] = "1"
    import numpy as np, m2v_lab as m2v
    paths = sys.argv[2:]
    feats = m2v.extract(m2v.load_model("tiny-music2vec"), paths, cache_dir=sys.argv[1], batch_size=1,
                        progress=False)
    np.save(sys.argv[1] + f"/result_{os.getpid()}.npy", feats.pooled)
    print("hits", feats.meta["cache_hits"], "failed", len(feats.failed))
""")


def _worker(cache, paths):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.Popen([sys.executable, "-c", WORKER, str(cache), *map(str, paths)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.fixture
def many_clips(write_audio):
    return [write_audio(f"k{i:02d}.wav", 1.0 + 0.01 * i, seed=i) for i in range(24)]


def test_kill_during_extraction_leaves_only_complete_entries_and_a_rerun_resumes(tiny, many_clips, tmp_path):
    cache = tmp_path / "cache"
    proc = _worker(cache, many_clips)
    deadline = time.time() + 120
    while len(_entries(cache)) < 4 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    finished = _entries(cache)
    assert 4 <= len(finished) < len(many_clips), "the worker must be killed part-way"
    store = FeatureCache(cache)
    with warnings.catch_warnings():
        warnings.simplefilter("error", CacheWarning)
        for entry in finished:  # every entry that exists is whole
            assert store.get(tiny.fingerprint, entry.stem) is not None
    rerun = _worker(cache, many_clips)
    out, err = rerun.communicate(timeout=300)
    assert rerun.returncode == 0, err
    hits = int(out.split()[1])
    assert hits >= len(finished) and "failed 0" in out
    assert len(_entries(cache)) == len(many_clips)


def test_two_processes_extracting_into_one_cache_agree(many_clips, tmp_path):
    cache = tmp_path / "cache"
    clips = many_clips[:10]
    procs = [_worker(cache, clips), _worker(cache, clips)]
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
        assert "failed 0" in out
    results = [np.load(f) for f in sorted(cache.glob("result_*.npy"))]
    assert len(results) == 2
    np.testing.assert_array_equal(results[0], results[1])
    assert len(_entries(cache)) == len(clips)
    assert not list(cache.glob("*/*/*.tmp"))
    tiny = m2v.load_model("tiny-music2vec")
    np.testing.assert_array_equal(m2v.extract(tiny, clips, cache_dir=cache, progress=False).pooled, results[0])


def _flip_one_data_byte(path: Path):
    """Change one byte in a safetensors file's tensor data (after its JSON header), keeping the size."""
    raw = bytearray(path.read_bytes())
    header = 8 + int.from_bytes(raw[:8], "little")
    raw[header + (len(raw) - header) // 2] ^= 0x40
    path.write_bytes(bytes(raw))


def test_a_flipped_byte_in_a_pooled_entry_is_caught_by_its_digest_and_recomputed(tiny, write_audio, tmp_path):
    path = write_audio("a.wav", 1.0)
    clean = m2v.extract(tiny, [path], cache_dir=tmp_path, progress=False)
    (entry,) = _entries(tmp_path)
    _flip_one_data_byte(entry)
    with pytest.warns(CacheWarning, match="sha256"):
        again = m2v.extract(tiny, [path], cache_dir=tmp_path, progress=False)
    assert again.meta["cache_hits"] == 0
    np.testing.assert_array_equal(clean.pooled, again.pooled)
    assert m2v.extract(tiny, [path], cache_dir=tmp_path, progress=False).meta["cache_hits"] == 1


def test_a_flipped_byte_in_a_frames_layer_file_is_recomputed_when_read(tiny, write_audio, tmp_path):
    path = write_audio("a.wav", 1.0)
    clean = m2v.extract(tiny, [path], pool=None, layers=[2, 5], cache_dir=tmp_path, progress=False).frames(0)
    _flip_one_data_byte(_layer_files(tmp_path)[1])
    feats = m2v.extract(tiny, [path], pool=None, layers=[2, 5], cache_dir=tmp_path, progress=False)
    assert feats.meta["cache_hits"] == 1  # files present; the digest is checked when the frames are read
    with pytest.warns(CacheWarning, match="sha256"):
        np.testing.assert_array_equal(feats.frames(0), clean)
    with warnings.catch_warnings():
        warnings.simplefilter("error", CacheWarning)  # repaired on disk
        np.testing.assert_array_equal(feats.frames(0), clean)


def test_frames_of_a_layer_subset_write_only_those_layers_and_later_requests_add_only_whats_missing(
        tiny, write_audio, tmp_path, monkeypatch):
    path = write_audio("a.wav", 2.0)
    full = m2v.extract(tiny, [path], pool=None, progress=False).frames(0)
    m2v.extract(tiny, [path], pool=None, layers=[6], cache_dir=tmp_path, progress=False)
    (six,) = _layer_files(tmp_path)
    assert six.name.endswith(".L06.safetensors")
    frames_bytes = six.stat().st_size
    assert frames_bytes >= full[6].nbytes and frames_bytes < 1.1 * full[6].nbytes  # one layer, not 13
    stamp = six.stat().st_mtime_ns, six.stat().st_ino

    forwards = []
    original = type(tiny).layer_states
    monkeypatch.setattr(type(tiny), "layer_states", lambda self, x: forwards.append(1) or original(self, x))
    both = m2v.extract(tiny, [path], pool=None, layers=[6, 7], cache_dir=tmp_path, progress=False)
    assert len(forwards) == 1 and both.meta["cache_hits"] == 0
    assert [p.name.split(".")[1] for p in _layer_files(tmp_path)] == ["L06", "L07"]
    assert (six.stat().st_mtime_ns, six.stat().st_ino) == stamp, "the stored layer is not rewritten"
    np.testing.assert_array_equal(both.frames(0), full[[6, 7]])
    again = m2v.extract(tiny, [path], pool=None, layers=["block_7", 6], cache_dir=tmp_path, progress=False)
    assert len(forwards) == 1 and again.meta["cache_hits"] == 1
    np.testing.assert_array_equal(again.frames(0), full[[7, 6]])


def test_pooled_entries_hold_every_layer_so_any_subset_is_a_hit(tiny, write_audio, tmp_path):
    path = write_audio("a.wav", 1.0)
    first = m2v.extract(tiny, [path], layers=[3], cache_dir=tmp_path, progress=False)
    rest = m2v.extract(tiny, [path], layers=[0, -1], cache_dir=tmp_path, progress=False)
    assert first.meta["cache_hits"] == 0 and rest.meta["cache_hits"] == 1
    full = m2v.extract(tiny, [path], progress=False)
    np.testing.assert_array_equal(rest.pooled, full.pooled[[0, 12]])


def test_float16_frame_storage_is_its_own_cache_entry_at_half_the_bytes(tiny, write_audio, tmp_path):
    path = write_audio("a.wav", 1.0)
    exact = m2v.extract(tiny, [path], pool=None, layers=[4], cache_dir=tmp_path, progress=False)
    half = m2v.extract(tiny, [path], pool=None, layers=[4], frames_dtype="float16", cache_dir=tmp_path,
                       progress=False)
    assert half.meta["cache_hits"] == 0 and half.meta["frames_dtype"] == "float16"
    assert half.frames(0).dtype == np.float16 and exact.frames(0).dtype == np.float32
    np.testing.assert_array_equal(half.frames(0), exact.frames(0).astype(np.float16))
    sizes = sorted(p.stat().st_size for p in _layer_files(tmp_path))
    assert sizes[0] < 0.6 * sizes[1]
    uncached = m2v.extract(tiny, [path], pool=None, layers=[4], frames_dtype="float16", progress=False)
    np.testing.assert_array_equal(uncached.frames(0), half.frames(0))


def test_frames_whose_layer_files_were_cleared_are_recomputed_not_lost(tiny, write_audio, tmp_path):
    path = write_audio("a.wav", 1.0)
    feats = m2v.extract(tiny, [path], pool=None, layers=[1], cache_dir=tmp_path, progress=False)
    expected = m2v.extract(tiny, [path], pool=None, layers=[1], progress=False).frames(0)
    for f in _layer_files(tmp_path):
        f.unlink()
    with pytest.warns(CacheWarning, match="recomputing"):
        np.testing.assert_array_equal(feats.frames(0), expected)


def test_the_model_fingerprint_is_computed_once_per_call_not_per_clip(tiny, write_audio, tmp_path, monkeypatch):
    paths = [write_audio(f"c{i}.wav", 1.0, seed=i) for i in range(4)]
    m2v.extract(tiny, paths, cache_dir=tmp_path, progress=False)
    reads = []
    original = type(tiny).fingerprint
    monkeypatch.setattr(type(tiny), "fingerprint", property(lambda self: reads.append(1) or original.fget(self)))
    hit = m2v.extract(tiny, paths, cache_dir=tmp_path, progress=False)
    assert hit.meta["cache_hits"] == 4
    assert len(reads) <= 2  # the run's key, and the result's description
