"""The teaching set: the render script's pitch, determinism and balance, and the committed data/.

Tests that run the script need its renderer (pretty_midi, tinysoundfont, music21) and skip
without it; the checks of the committed files need only soundfile and pandas."""

import importlib.util
import io
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

import m2v_lab as m2v

DATA = Path(__file__).resolve().parent.parent / "data"


@pytest.fixture(scope="module")
def script():
    # The renderer's own dependencies; tinysoundfont installs with --no-deps (see data/README.md).
    pytest.importorskip("pretty_midi")
    pytest.importorskip("tinysoundfont")
    spec = importlib.util.spec_from_file_location("make_teaching_set", DATA / "make_teaching_set.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses need the module registered
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def committed():
    return pd.read_csv(DATA / "labels.csv")


def f0_midi(x: np.ndarray, sr: int, *, n_harmonics: int = 4) -> float:
    """Fundamental of a steady note as a (fractional) MIDI number: harmonic product spectrum
    over 0.1-1.1 s, 8x zero-padded, searched from 50 Hz. Independent of the synthesiser.

    HPS's known octave-low error is corrected: an estimate with (almost) no energy of its own,
    30 dB or more below its octave, moves up to that octave (near-sine tones like the celesta)."""
    seg = x[int(0.1 * sr):int(1.1 * sr)]
    n = 8 * len(seg)
    log_mag = np.log(np.abs(np.fft.rfft(seg * np.hanning(len(seg)), n)) + 1e-9)
    freqs = np.fft.rfftfreq(n, 1.0 / sr)
    usable = len(log_mag) // n_harmonics
    product = sum(log_mag[::k][:usable] for k in range(1, n_harmonics + 1))
    low = np.searchsorted(freqs, 50.0)
    f0 = freqs[low + int(np.argmax(product[low:usable]))]

    def level(f):  # strongest bin within a quarter tone (natural-log magnitude)
        band = (freqs > f * 2 ** (-1 / 24)) & (freqs < f * 2 ** (1 / 24))
        return log_mag[band].max()

    while 2 * f0 < freqs[-1] / n_harmonics and level(f0) < level(2 * f0) - np.log(10 ** (30 / 20)):
        f0 *= 2
    return 69.0 + 12.0 * np.log2(f0 / 440.0)


def test_f0_estimator_finds_a_synthetic_harmonic_tone():
    sr = 24000
    t = np.arange(3 * sr) / sr
    f = 440.0 * 2 ** ((50 - 69) / 12)
    x = sum(np.sin(2 * np.pi * k * f * t) / k for k in range(1, 6))
    assert round(f0_midi(x, sr)) == 50
    sine = np.sin(2 * np.pi * 2 * f * t) + 1e-3 * np.sin(2 * np.pi * 8 * f * t)  # no harmonics to vote
    assert round(f0_midi(sine, sr)) == 62


def test_rendered_notes_sound_at_their_labelled_pitch(script):
    # One note of each program, pitch classes varied, rendered through the script's own path.
    planned = script.plan_notes(0)
    clips = [planned[12 * i + (5 * i) % 12] for i in range(len(script.NOTE_PROGRAMS))]
    assert len({c.labels["midi_pitch"] for c in clips}) >= 12
    estimates = []
    for clip in clips:
        x = script.render_clip(clip).astype(np.float64) / 32767
        estimates.append(round(f0_midi(x, script.SAMPLE_RATE)))
    labels = np.array([c.labels["midi_pitch"] for c in clips])
    errors = np.array(estimates) - labels
    # Weak fundamentals fool spectral estimators by an octave: allow that, never more.
    assert set(errors) <= {-12, 0, 12}, dict(zip([c.clip_id for c in clips], errors))
    assert np.mean(errors == 0) >= 0.9


def test_committed_notes_match_their_pitch_labels(committed):
    notes = committed[committed["subset"] == "notes"]
    estimates = np.array([round(f0_midi(sf.read(DATA / p)[0], 24000)) for p in notes["path"]])
    errors = estimates - notes["midi_pitch"].to_numpy()
    assert set(errors) <= {-12, 0, 12}
    assert np.mean(errors == 0) >= 0.95  # the misses are octave-high readings of the reed organ's low notes


def test_velocity_is_audible_in_committed_notes(committed):
    notes = committed[committed["subset"] == "notes"]
    rms_db = [10 * np.log10(np.mean(sf.read(DATA / p)[0] ** 2)) for p in notes["path"]]
    by_velocity = pd.Series(rms_db, index=notes.index).groupby(notes["velocity"]).mean()
    assert by_velocity.is_monotonic_increasing
    assert by_velocity.iloc[-1] - by_velocity.iloc[0] > 6  # dB between velocity 40 and 120


def test_rendering_is_deterministic_and_matches_the_committed_audio(script, committed, tmp_path):
    clips = [script.plan_notes(0)[7], script.plan_chords(0)[33], script.plan_rhythm(0)[17]]
    for clip in clips:
        first, second = script.render_clip(clip), script.render_clip(clip)
        assert first.dtype == np.int16 and first.shape == (72000,)
        np.testing.assert_array_equal(first, second)
        script.write_flac(tmp_path / "a.flac", first)
        script.write_flac(tmp_path / "b.flac", second)
        assert (tmp_path / "a.flac").read_bytes() == (tmp_path / "b.flac").read_bytes()
        stored, rate = sf.read(DATA / clip.path, dtype="int16")
        assert rate == 24000
        np.testing.assert_array_equal(stored, first, err_msg=f"{clip.path} is stale: regenerate data/")


def test_drum_loops_depend_on_the_seed_and_nothing_else(script):
    a = script.plan_rhythm(0)[0].midi.instruments[0].notes
    b = script.plan_rhythm(0)[0].midi.instruments[0].notes
    c = script.plan_rhythm(1)[0].midi.instruments[0].notes
    onsets = lambda notes: [(n.start, n.velocity) for n in notes]  # noqa: E731
    assert onsets(a) == onsets(b)
    assert onsets(a) != onsets(c)


def test_render_length_is_bounded_whatever_the_midi(script):
    # A note that never ends and events far past the clip still give exactly n_samples.
    pm = script.single_track(0, [(60, 100, 0.0, 1e6), (64, 100, 50.0, 60.0)])
    assert script.render_midi(pm, n_samples=2400).shape == (2400,)


def test_build_writes_clips_and_labels_the_loader_reads(script, tmp_path):
    frame = script.build(tmp_path, seed=0, subsets=("notes", "rhythm"), limit=3, log=None)
    assert len(frame) == 6
    df = m2v.datasets.teaching_set(root=tmp_path)
    assert list(df.columns[:4]) == ["path", "clip_id", "group", "subset"]
    assert df["subset"].value_counts().to_dict() == {"notes": 3, "rhythm": 3}
    info = sf.info(df["path"].iloc[0])
    assert (info.samplerate, info.channels, info.frames, info.subtype) == (24000, 1, 72000, "PCM_16")
    assert df["midi_pitch"].dtype == "Int64" and df["tempo_bpm"].notna().sum() == 3


def test_opening_of_a_corpus_chorale_becomes_a_three_second_midi_excerpt(script):
    corpus = pytest.importorskip("music21.corpus")

    pm = script._opening_midi(corpus.parse("bach/bwv269"))
    starts = [n.start for n in pm.instruments[0].notes]
    assert min(starts) == 0.0 and max(starts) < script.CLIP_SECONDS
    assert len({n.pitch for n in pm.instruments[0].notes}) >= 6  # four voices sounding
    shifted = script._arranged(pm, 52, 3)
    assert [n.pitch for n in shifted.instruments[0].notes] == [n.pitch + 3 for n in pm.instruments[0].notes]
    assert shifted.instruments[0].program == 52


# --- the committed set -------------------------------------------------------

def test_committed_set_has_the_documented_size_and_format(committed):
    assert committed["subset"].value_counts().to_dict() == {"notes": 384, "chords": 180, "rhythm": 72, "music": 72}
    assert committed["clip_id"].is_unique
    sizes = [(DATA / p).stat().st_size for p in committed["path"]]
    assert sum(sizes) < 28.5e6  # issue: under 30 MB, with margin
    for p in committed["path"][::25]:
        info = sf.info(DATA / p)
        assert (info.samplerate, info.channels, info.frames, info.format) == (24000, 1, 72000, "FLAC")
    on_disk = {p.relative_to(DATA).as_posix() for p in (DATA / "audio").rglob("*.flac")}
    assert on_disk == set(committed["path"])


def test_committed_labels_match_what_the_script_plans(script, committed):
    planned = script.labels_frame(script.plan(0, ("notes", "chords", "rhythm")))
    as_stored = pd.read_csv(io.StringIO(planned.to_csv(index=False)))  # same parsing as the file
    stored = committed[committed["subset"] != "music"].reset_index(drop=True)
    pd.testing.assert_frame_equal(stored.dropna(axis=1, how="all"), as_stored.dropna(axis=1, how="all"))


def test_notes_are_balanced_as_documented(committed):
    notes = committed[committed["subset"] == "notes"]
    assert notes["instrument_family"].nunique() == 8
    assert (notes.groupby("instrument_family")["gm_program"].nunique() == 4).all()
    cells = notes.groupby(["instrument_family", "midi_pitch"]).size()
    assert len(cells) == 8 * 24 and (cells == 2).all()  # every family plays every pitch C3-B4 twice
    assert (notes.groupby("instrument").size() == 12).all()
    assert (notes.groupby(["instrument", "pitch_class"]).size() == 1).all()
    assert (notes.groupby(["instrument", "octave"]).size() == 6).all()
    assert (notes["velocity"].value_counts() == 128).all()
    assert (notes.groupby(["instrument_family", "velocity"]).size() == 16).all()
    assert (notes["group"] == "notes/" + notes["instrument"].str.lower().str.replace(r"[^a-z0-9]+", "_",
                                                                                       regex=True).str.strip("_")).all()


def test_chords_rhythm_and_music_are_balanced_as_documented(committed):
    chords = committed[committed["subset"] == "chords"]
    cells = chords.groupby(["chord_root", "chord_quality"])
    assert len(cells) == 12 * 5 and (cells.size() == 3).all() and (cells["instrument"].nunique() == 3).all()
    assert (chords.groupby(["chord_quality", "instrument"]).size() == 9).all()
    assert set(chords["chord_quality"]) == {"maj", "min", "dim", "aug", "dom7"}
    per_group = chords.groupby("group")
    assert len(per_group) == 12 and (per_group["chord_root"].nunique() == 1).all()  # group = the root
    assert (per_group["chord_quality"].nunique() == 5).all()

    rhythm = committed[committed["subset"] == "rhythm"]
    assert (rhythm.groupby(["drum_pattern", "tempo_bpm", "drum_kit"]).size() == 1).all()
    assert len(rhythm.groupby(["drum_pattern", "tempo_bpm", "drum_kit"])) == 6 * 4 * 3

    music = committed[committed["subset"] == "music"]
    assert (music.groupby(["mode", "tonic"]).size() == 3).all() and len(music.groupby(["mode", "tonic"])) == 24
    assert (music["instrument"].value_counts() == 18).all()
    per_piece = music.groupby("group")
    assert (per_piece.size() == 2).all() and (per_piece["piece"].nunique() == 1).all()
    assert (per_piece["tonic"].nunique() == 2).all()  # a piece's two renders differ in key
    source_tonic = music["source_key"].str.split().str[0].map(PITCH_CLASSES.index)
    rendered_tonic = music["tonic"].map(PITCH_CLASSES.index)
    assert ((source_tonic + music["transpose"]) % 12 == rendered_tonic).all()
    assert (music["source_key"].str.split().str[1] == music["mode"]).all()
    assert music["composer"].nunique() >= 5


def test_groups_never_span_subsets(committed):
    assert (committed.groupby("group")["subset"].nunique() == 1).all()


def test_notes_avoid_the_music2vec_mini_evaluation_programs(script, committed):
    from m2v_lab.pretrain import synth

    assert script.EVALUATION_PROGRAMS == {"validation": synth.VALIDATION_PROGRAMS, "test": synth.TEST_PROGRAMS}
    evaluation = set(synth.VALIDATION_PROGRAMS) | set(synth.TEST_PROGRAMS)
    notes = committed[committed["subset"] == "notes"]
    # The one documented reuse (data/README.md): Organ has only three other programs without a 16-foot sub-octave.
    assert set(notes["gm_program"]) & evaluation == {21}
    assert sorted(set(notes["gm_program"])) == sorted(script.NOTE_PROGRAMS)


# Every (subset, label) task the notebooks and m2v_lab.pretrain.evaluate.teaching_probes probe.
TASKS = (("notes", "pitch_class"), ("notes", "instrument_family"), ("notes", "octave"),
         ("chords", "chord_quality"), ("rhythm", "drum_pattern"), ("rhythm", "tempo_bpm"), ("music", "mode"))


def test_the_probed_tasks_are_all_checked():
    from m2v_lab.pretrain.evaluate import _TEACHING_TASKS

    assert set(_TEACHING_TASKS) <= set(TASKS)


def _fold_makers(y, groups):
    """Test fold per clip, as teaching_probes makes them (labels as strings, sklearn's group order)
    and as probe_layers makes them (m2v_lab.probing.make_folds)."""
    from sklearn.model_selection import StratifiedGroupKFold

    from m2v_lab.probing import make_folds

    as_str = y.astype(str)
    folds = np.full(len(y), -1)
    splitter = StratifiedGroupKFold(n_splits=5, shuffle=True, random_state=0)
    for k, (_, test) in enumerate(splitter.split(np.zeros(len(y)), as_str, groups)):
        folds[test] = k
    return {"teaching_probes": folds, "probe_layers": make_folds(y, groups=groups, cv=5, seed=0)}


@pytest.mark.parametrize("subset,label", TASKS)
def test_every_task_is_well_posed_under_the_default_grouped_folds(committed, subset, label):
    part = committed[committed["subset"] == subset]
    y, groups = part[label].to_numpy(), part["group"].to_numpy()
    classes = set(y.astype(str))
    counts = pd.Series(y).value_counts()
    assert len(classes) >= 2 and counts.max() / len(y) <= 0.5  # chance (the largest class) well below 1
    for maker, folds in _fold_makers(y, groups).items():
        assert sorted(set(folds)) == [0, 1, 2, 3, 4]
        assert (pd.Series(folds).groupby(groups).nunique() == 1).all()  # a group never straddles folds
        majority = []
        for k in range(5):
            train, test = folds != k, folds == k
            y_train, y_test = y[train].astype(str), y[test].astype(str)
            missing = set(y_test) - set(y_train)
            assert not missing, f"{subset}/{label} ({maker}): fold {k} tests {missing} with none in training"
            # every class is learned from at least two groups (instruments, roots, loops, pieces)
            per_class = pd.Series(groups[train]).groupby(y_train).nunique()
            assert per_class.reindex(sorted(classes)).min() >= 2, (maker, k, per_class.to_dict())
            majority.append(np.mean(y_test == pd.Series(y_train).value_counts().index[0]))
        assert np.mean(majority) <= 0.6, (maker, majority)  # the majority baseline stays well below 1


PITCH_CLASSES = ["C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B"]
