"""m2v_lab.engines.ray_engine on a local Ray instance: the local engine's bytes, failures reported, kills resumed.

Skipped when Ray is not installed (``pip install 'm2v_lab[ray]'``; ``make test`` installs it).
"""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ray = pytest.importorskip("ray")
pytest.importorskip("ray.data")

from m2v_lab.cache import FeatureCache  # noqa: E402
from m2v_lab.cli import main  # noqa: E402
from m2v_lab.engines import ExtractJob, read_sources, run_local, run_ray  # noqa: E402
from m2v_lab.extract import clip_key, resolve_settings  # noqa: E402

pytestmark = pytest.mark.ray
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def local_ray():
    """A local Ray instance with two CPUs: one for a model actor, one for decoding tasks."""
    ray.init(num_cpus=2, include_dashboard=False, ignore_reinit_error=True, log_to_driver=False)
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()


def _files(cache) -> dict:
    cache = Path(cache)
    return {p.relative_to(cache).as_posix(): p.read_bytes() for p in sorted(cache.rglob("*.safetensors"))}


@pytest.fixture
def clips(tmp_path, write_audio):
    """Clips of several lengths (1 s windows: whole windows, kept tails, dropped tails), one non-audio file
    and one clip too short for the model."""
    for i, seconds in enumerate([1.0, 1.6, 2.3, 0.7, 2.3]):
        write_audio(f"audio/c{i}.wav", seconds, seed=i)
    write_audio("audio/deeper/c5.flac", 1.4, seed=5)
    write_audio("audio/tiny.wav", 0.01, seed=6)  # 160 samples: the model needs 400
    (tmp_path / "audio" / "bad.wav").write_text("this is not audio")
    return tmp_path / "audio"


def _job(cache, **kw):
    options = dict(model="tiny-music2vec", cache_dir=str(cache), window=1.0, min_last=0.25, batch_size=2, threads=1,
                   progress=False)
    options.update(kw)
    return ExtractJob(**options)


def test_ray_entries_are_bit_identical_to_the_local_engine_and_failures_are_reported(local_ray, clips, tmp_path):
    sources = read_sources(clips)
    local = run_local(sources, _job(tmp_path / "local"))
    rows = []
    remote = run_ray(sources, _job(tmp_path / "ray"), on_result=rows.append)
    assert remote.computed == local.computed == 6 and remote.cached == 0
    assert set(remote.failed) == set(local.failed) == {"bad.wav", "tiny.wav"}
    assert "Is it really audio" in remote.failed["bad.wav"] and "needs at least 400" in remote.failed["tiny.wav"]
    ours, theirs = _files(tmp_path / "local"), _files(tmp_path / "ray")
    assert len(ours) == 6 and ours == theirs  # same names, same bytes: tensors, digests, metadata
    # decoding ran in CPU tasks, the model in an actor (different processes)
    assert all(r["decode_pid"] != r["actor_pid"] for r in rows if r["status"] == "stored")
    again = run_ray(sources, _job(tmp_path / "ray"))
    assert (again.computed, again.cached, len(again.failed)) == (0, 6, 2)


def test_ray_frames_into_a_pyarrow_uri_equal_the_local_engine_and_the_cli_exits_1_on_failures(
        local_ray, clips, tmp_path, tiny, capsys):
    pytest.importorskip("pyarrow.fs")
    sources = read_sources(clips)
    run_local(sources, _job(tmp_path / "local", pool=None, layers=(2, -1)))
    uri = (tmp_path / "viauri").as_uri()
    code = main(["extract", str(clips), "--model", "tiny-music2vec", "--engine", "ray", "--cache-dir", uri,
                 "--pool", "none", "--layers", "2,-1", "--window", "1.0", "--min-last", "0.25", "--batch-size", "2",
                 "--threads", "1", "--no-progress", "--clips-per-call", "2"])
    err = capsys.readouterr().err
    assert code == 1 and "8 clips: 6 computed, 0 already cached, 2 failed" in err and "engine ray" in err
    assert "bad.wav" in err and "tiny.wav" in err
    files = _files(tmp_path / "local")
    assert len(files) == 6 * 3 and files == _files(tmp_path / "viauri")
    import m2v_lab as m2v
    feats = m2v.extract(tiny, sorted(clips.rglob("c*.*")), cache_dir=uri, pool=None, layers=[2, -1], window=1.0,
                        min_last=0.25, progress=False)
    assert feats.meta["cache_hits"] == 6


def test_a_killed_ray_run_resumes_computing_only_what_is_missing(local_ray, write_audio, tmp_path, tiny):
    names = [f"k/{i:02d}.wav" for i in range(40)]
    for i, name in enumerate(names):
        write_audio(name, 3.0 + 0.01 * i, seed=i)
    (tmp_path / "list.txt").write_text("\n".join(names) + "\n")
    cache = tmp_path / "cache"
    env = dict(os.environ, PYTHONPATH=str(ROOT), RAY_ADDRESS=local_ray)  # joins the running instance
    proc = subprocess.Popen([sys.executable, "-m", "m2v_lab.cli", "extract", str(tmp_path / "list.txt"),
                             "--model", "tiny-music2vec", "--engine", "ray", "--cache-dir", str(cache),
                             "--window", "1.0", "--batch-size", "2", "--threads", "1", "--no-progress",
                             "--clips-per-call", "1"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None:
        if cache.exists() and len(FeatureCache(cache).entries()) >= 2:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    _, err = proc.communicate()
    before = _files(cache)
    assert 2 <= len(before) < len(names), f"the run must be killed part-way ({len(before)} entries): {err[-2000:]}"
    time.sleep(2)  # the dead driver's actor releases its CPU
    resumed = run_ray(read_sources(tmp_path / "list.txt"), _job(cache, min_last=1.0))
    assert not resumed.failed
    assert resumed.cached + resumed.computed == len(names)
    assert resumed.cached >= len(before)  # nothing that was there is computed again …
    _, settings = resolve_settings(tiny, window=1.0)
    keys = {s.clip_id: clip_key(tiny.fingerprint, settings, s) for s in read_sources(tmp_path / "list.txt")}
    there = {Path(name).name.split(".")[0] for name in before}
    assert not {keys[c] for c in resumed.stored_ids} & there  # … and what was missing is
    clean = run_local(read_sources(tmp_path / "list.txt"), _job(tmp_path / "clean", min_last=1.0))
    assert clean.computed == len(names)
    assert _files(cache) == _files(tmp_path / "clean")
    assert not list(cache.rglob("*.tmp"))
