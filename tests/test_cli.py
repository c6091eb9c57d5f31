"""m2v_lab.cli (the m2v-lab command) and its local engine: SRC forms, resumable runs, failures, cache commands."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import m2v_lab as m2v
from m2v_lab.cache import FeatureCache
from m2v_lab.cli import main
from m2v_lab.engines import ExtractJob, read_sources, run_local
from m2v_lab.errors import DatasetError
from m2v_lab.extract import resolve_settings, store_clips

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--model", "tiny-music2vec", "--no-progress"]


def _files(cache) -> dict:
    """relative path -> bytes of every entry file in a cache folder."""
    cache = Path(cache)
    return {p.relative_to(cache).as_posix(): p.read_bytes() for p in sorted(cache.rglob("*.safetensors"))}


def _heads(cache):
    return FeatureCache(cache).entries()


@pytest.fixture
def folder(tmp_path, write_audio):
    """Four clips (two in a sub-folder, one FLAC) and a file that is not audio."""
    paths = [write_audio(f"music/c{i}.wav", 1.0 + 0.3 * i, seed=i) for i in range(2)]
    paths += [write_audio("music/sub/c2.flac", 1.2, seed=2), write_audio("music/sub/c3.wav", 0.9, seed=3)]
    (tmp_path / "music" / "notes.txt").write_text("not audio, not listed")
    (tmp_path / "music" / "broken.wav").write_text("not audio either")
    return tmp_path / "music", paths


# -- the command line itself -------------------------------------------------------------------------

def test_help_names_every_option_src_form_exit_status_and_examples(capsys):
    with pytest.raises(SystemExit) as stop:
        main(["extract", "--help"])
    assert stop.value.code == 0
    text = capsys.readouterr().out
    for option in ("--model", "--revision", "--pool", "--layers", "--window", "--batch-size", "--device", "--dtype",
                   "--cache-dir", "--engine", "--allow-failures", "--failures", "--threads", "--ray-address",
                   "--actors", "--actor-gpus", "--clips-per-call"):
        assert option in text, option
    for words in ("a folder", "CSV", "one path per line", "Exit status", "Examples:", "RAY_ADDRESS", "s3://",
                  "pip install 'm2v_lab[ray]'", "m2v-lab extract ~/music --model music2vec-v1"):
        assert words in text, words
    with pytest.raises(SystemExit):
        main(["cache", "--help"])
    assert "m2v-lab cache info" in capsys.readouterr().out


def test_the_console_script_is_declared_and_runs_as_a_module():
    tomllib = pytest.importorskip("tomllib")
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["scripts"]["m2v-lab"] == "m2v_lab.cli:main"
    assert any(r.startswith("ray[data]") for r in project["optional-dependencies"]["ray"])
    assert "m2v_lab[ray]" in project["optional-dependencies"]["dev"]  # make test installs the extra
    out = subprocess.run([sys.executable, "-m", "m2v_lab.cli", "--help"], cwd=ROOT, capture_output=True, text=True,
                         env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert out.returncode == 0 and "extract" in out.stdout and "cache" in out.stdout


def test_bad_command_lines_exit_2_with_the_reason(tmp_path, folder, capsys):
    src, _ = folder
    with pytest.raises(SystemExit) as stop:
        main(["extract", str(src), *TINY, "--batch-size", "0"])
    assert stop.value.code == 2
    assert main(["extract", str(tmp_path / "nowhere"), *TINY, "--cache-dir", str(tmp_path / "c")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["extract", str(src), *TINY, "--cache-dir", str(tmp_path / "c"), "--window", "20000"]) == 2
    assert "window" in capsys.readouterr().err
    assert main(["extract", str(src), "--model", "no-such-model", "--no-progress",
                 "--cache-dir", str(tmp_path / "c")]) == 3
    assert "no-such-model" in capsys.readouterr().err


def test_the_ray_engine_without_ray_says_how_to_install_it(folder, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    code = main(["extract", str(folder[0]), *TINY, "--engine", "ray", "--cache-dir", str(tmp_path / "c")])
    assert code == 2 and "pip install 'm2v_lab[ray]'" in capsys.readouterr().err


# -- SRC -----------------------------------------------------------------------------------------------

def test_src_folder_is_recursive_with_relative_clip_ids_and_skips_other_extensions(folder):
    src, paths = folder
    sources = read_sources(src)
    assert [s.clip_id for s in sources] == ["broken.wav", "c0.wav", "c1.wav", "sub/c2.flac", "sub/c3.wav"]
    assert all(s.path.is_absolute() for s in sources)


def test_src_file_list_is_relative_to_its_folder_and_skips_blanks_and_comments(folder, tmp_path, monkeypatch):
    src, paths = folder
    listing = tmp_path / "lists" / "clips.txt"
    listing.parent.mkdir()
    listing.write_text(f"# my clips\n../music/c0.wav\n\n  ../music/sub/c2.flac  \n{paths[1]}\n")
    monkeypatch.chdir(src / "sub")  # the list's folder counts, not the current one
    sources = read_sources(listing)
    assert [s.clip_id for s in sources] == ["../music/c0.wav", "../music/sub/c2.flac", str(paths[1])]
    assert [s.path.resolve() for s in sources] == [paths[0].resolve(), paths[2].resolve(), paths[1].resolve()]
    (tmp_path / "empty.txt").write_text("# nothing\n")
    with pytest.raises(DatasetError, match="names no files"):
        read_sources(tmp_path / "empty.txt")


def test_src_labels_csv_takes_paths_relative_to_the_csv_ids_and_segments_and_ignores_labels(folder):
    src, paths = folder
    (src / "labels.csv").write_text("path,genre,clip_id,start,duration\nc0.wav,rock,first,,\n"
                                    "sub/c2.flac,jazz,,0.2,0.5\n")
    sources = read_sources(src / "labels.csv")
    assert [s.clip_id for s in sources] == ["first", "sub/c2.flac"]
    assert sources[0].path.resolve() == paths[0].resolve() and sources[0].start is None
    assert (sources[1].start, sources[1].duration) == (0.2, 0.5)
    (src / "nopath.csv").write_text("file,genre\nc0.wav,rock\n")
    with pytest.raises(DatasetError, match="no 'path' column"):
        read_sources(src / "nopath.csv")


# -- extraction ------------------------------------------------------------------------------------------

def test_extract_fills_the_cache_reports_failures_and_exits_1_unless_allowed(folder, tmp_path, capsys):
    src, paths = folder
    cache = tmp_path / "cache"
    code = main(["extract", str(src), *TINY, "--cache-dir", str(cache), "--failures", str(tmp_path / "f.csv")])
    err = capsys.readouterr().err
    assert code == 1
    assert "5 clips: 4 computed, 0 already cached, 1 failed" in err
    assert "broken.wav" in err and "Is it really audio" in err
    assert len(_heads(cache)) == 4
    import pandas as pd
    failures = pd.read_csv(tmp_path / "f.csv")
    assert failures["clip_id"].tolist() == ["broken.wav"] and "decode" in failures["reason"][0]
    assert main(["extract", str(src), *TINY, "--cache-dir", str(cache), "--allow-failures"]) == 0
    assert "0 computed, 4 already cached, 1 failed" in capsys.readouterr().err


def test_notebooks_read_what_the_command_line_wrote_as_cache_hits(tiny, folder, tmp_path, capsys):
    src, paths = folder
    cache = tmp_path / "cache"
    good = list(paths)
    assert main(["extract", str(src), *TINY, "--cache-dir", str(cache), "--allow-failures"]) == 0
    feats = m2v.extract(tiny, good, cache_dir=cache, progress=False)
    assert feats.meta["cache_hits"] == 4
    fresh = m2v.extract(tiny, good, progress=False)
    np.testing.assert_allclose(feats.pooled, fresh.pooled, rtol=0, atol=1e-5)
    assert main(["extract", str(src), *TINY, "--cache-dir", str(cache), "--pool", "none", "--layers", "3,-1",
                 "--allow-failures"]) == 0
    frames = m2v.extract(tiny, good, cache_dir=cache, pool=None, layers=[3, -1], progress=False)
    assert frames.meta["cache_hits"] == 4 and frames.layer_names == ("block_3", "block_12")
    assert len(list(cache.rglob("*.L03.safetensors"))) == 4 and not list(cache.rglob("*.L05.safetensors"))


@pytest.fixture
def forward_shapes(tiny, monkeypatch):
    """The input shape of every forward ``tiny`` runs."""
    shapes = []
    original = type(tiny).layer_states

    def spy(self, x):
        shapes.append(tuple(np.shape(x)))
        return original(self, x)

    monkeypatch.setattr(type(tiny), "layer_states", spy)
    return shapes


def test_a_batch_never_mixes_clips_so_entries_do_not_depend_on_the_other_clips(tiny, write_audio, tmp_path,
                                                                                forward_shapes):
    shapes = forward_shapes
    same = [write_audio(f"s{i}.wav", 1.0, seed=i) for i in range(3)]  # equal lengths: extract() batches them
    long = write_audio("long.wav", 2.5, seed=9)  # windows of 1 s: 1 + 1 + 0.5
    positions, settings = resolve_settings(tiny, window=1.0, min_last=0.25)
    report = store_clips(tiny, same + [long], settings=settings, positions=positions,
                         cache=FeatureCache(tmp_path / "all"), batch_size=2)
    assert report.stored == [0, 1, 2, 3] and not report.failed
    assert sorted(shapes) == sorted([(1, 16000)] * 3 + [(2, 16000), (1, 8000)])
    alone = FeatureCache(tmp_path / "alone")
    for path in same[1:2] + [long]:
        store_clips(tiny, [path], settings=settings, positions=positions, cache=alone, batch_size=2)
    together = _files(tmp_path / "all")
    assert all(together[name] == data for name, data in _files(tmp_path / "alone").items())


def test_duplicate_clips_are_computed_once(write_audio, tmp_path, capsys):
    path = write_audio("a.wav", 1.0)
    (tmp_path / "list.txt").write_text(f"{path}\n{path}\na.wav\n")
    assert main(["extract", str(tmp_path / "list.txt"), *TINY, "--cache-dir", str(tmp_path / "c")]) == 0
    assert "3 clips: 1 computed, 0 already cached, 2 duplicates, 0 failed" in capsys.readouterr().err


def test_a_pyarrow_uri_cache_holds_the_same_files_as_a_folder(folder, tmp_path, capsys, tiny):
    pytest.importorskip("pyarrow.fs")
    src, paths = folder
    assert main(["extract", str(src), *TINY, "--cache-dir", str(tmp_path / "plain"), "--allow-failures"]) == 0
    uri = (tmp_path / "viauri").as_uri()
    assert main(["extract", str(src), *TINY, "--cache-dir", uri, "--allow-failures"]) == 0
    assert _files(tmp_path / "plain") == _files(tmp_path / "viauri") != {}
    assert main(["extract", str(src), *TINY, "--cache-dir", uri, "--allow-failures"]) == 0
    assert "0 computed, 4 already cached" in capsys.readouterr().err
    assert m2v.extract(tiny, paths, cache_dir=uri, progress=False).meta["cache_hits"] == 4
    assert main(["cache", "info", "--cache-dir", uri, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["models"][0]["entries"] == 4


def test_cache_info_and_clear_commands(folder, tmp_path, capsys, monkeypatch):
    src, _ = folder
    cache = tmp_path / "cache"
    main(["extract", str(src), *TINY, "--cache-dir", str(cache), "--allow-failures"])
    capsys.readouterr()
    assert main(["cache", "info", "--cache-dir", str(cache)]) == 0
    out = capsys.readouterr().out
    assert str(cache) in out and "tiny-music2vec" in out and "total: 4 entries" in out
    assert main(["cache", "info", "--cache-dir", str(cache), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["models"][0]["model_name"] == "tiny-music2vec" and info["models"][0]["entries"] == 4
    monkeypatch.setattr(sys, "stdin", open(os.devnull))  # not a terminal: --yes is needed
    assert main(["cache", "clear", "--cache-dir", str(cache)]) == 2
    assert len(_heads(cache)) == 4
    assert main(["cache", "clear", "--cache-dir", str(cache), "--model", "no-such-model", "--yes"]) == 2
    assert "tiny-music2vec" in capsys.readouterr().err and len(_heads(cache)) == 4
    assert main(["cache", "clear", "--cache-dir", str(cache), "--model", "tiny-music2vec", "--yes"]) == 0
    assert "removed 4 entries" in capsys.readouterr().out and _heads(cache) == []
    monkeypatch.setenv("M2V_LAB_CACHE", str(tmp_path / "env"))
    assert main(["cache", "info"]) == 0 and str(tmp_path / "env") in capsys.readouterr().out


def test_a_killed_run_resumes_computing_only_what_is_missing(write_audio, tmp_path):
    paths = [write_audio(f"k/{i:02d}.wav", 1.5 + 0.01 * i, seed=i) for i in range(30)]
    (tmp_path / "list.txt").write_text("\n".join(f"k/{i:02d}.wav" for i in range(30)) + "\n")
    common = [*TINY, "--batch-size", "1", "--threads", "1"]
    cache = tmp_path / "cache"
    proc = subprocess.Popen([sys.executable, "-m", "m2v_lab.cli", "extract", str(tmp_path / "list.txt"), *common,
                             "--cache-dir", str(cache)], env=dict(os.environ, PYTHONPATH=str(ROOT)),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 180
    while len(_heads(cache) if cache.exists() else []) < 3 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    before = _files(cache)
    assert 3 <= len(before) < len(paths), "the run must be killed part-way"
    summary = run_local(read_sources(tmp_path / "list.txt"),
                        ExtractJob(model="tiny-music2vec", cache_dir=str(cache), batch_size=1, threads=1,
                                   progress=False))
    assert summary.cached == len(before) and summary.computed == len(paths) - len(before) and not summary.failed
    computed_now = set(summary.stored_ids)
    assert len(computed_now) == summary.computed
    clean = tmp_path / "clean"
    run_local(read_sources(tmp_path / "list.txt"),
              ExtractJob(model="tiny-music2vec", cache_dir=str(clean), batch_size=1, threads=1, progress=False))
    assert _files(cache) == _files(clean)
    assert not list(cache.rglob("*.tmp"))


def test_mix_clips_batches_windows_of_different_clips_and_agrees_to_rounding(tiny, write_audio, tmp_path,
                                                                             forward_shapes, capsys):
    shapes = forward_shapes
    for i in range(3):
        write_audio(f"m/s{i}.wav", 1.0, seed=i)
    assert main(["extract", str(tmp_path / "m"), *TINY, "--cache-dir", str(tmp_path / "mixed"), "--mix-clips"]) == 0
    assert shapes == [(3, 16000)]
    assert "3 clips: 3 computed" in capsys.readouterr().err
    paths = sorted((tmp_path / "m").glob("*.wav"))
    mixed = m2v.extract(tiny, paths, cache_dir=tmp_path / "mixed", progress=False)
    assert mixed.meta["cache_hits"] == 3
    alone = m2v.extract(tiny, paths[1], progress=False)
    np.testing.assert_allclose(mixed.pooled[:, 1], alone.pooled[:, 0], rtol=0, atol=1e-5)
