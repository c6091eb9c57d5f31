"""m2v_lab.datasets: the clip-frame contract, from_folder, and the GTZAN / NSynth / MagnaTagATune readers."""

import json
import warnings

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from m2v_lab import datasets
from m2v_lab.datasets import DatasetWarning
from m2v_lab.errors import DatasetError

CORE = ["path", "clip_id", "group", "subset"]


def write(path, seconds=0.2, rate=16000, fmt=None, freq=440.0):
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(seconds * rate)) / rate
    sf.write(path, (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32), rate, format=fmt)
    return path


def frame(**overrides):
    base = {"path": ["/a/x.wav", "/a/y.wav"], "clip_id": ["x", "y"], "group": ["g", "g"],
            "subset": ["s", "s"], "label": [1, 2]}
    base.update(overrides)
    return pd.DataFrame(base)


# --- contract ----------------------------------------------------------------

def test_validate_puts_core_then_optional_columns_first_and_keeps_attrs():
    df = frame(split=["train", "test"])[["label", "split", "subset", "group", "clip_id", "path"]]
    df.index = [7, 3]
    df.attrs["unreadable"] = [{"path": "z", "reason": "r"}]
    out = datasets.validate_frame(df)
    assert list(out.columns) == CORE + ["split", "label"]
    assert list(out.index) == [0, 1]
    assert out.attrs["unreadable"] == [{"path": "z", "reason": "r"}]
    assert datasets.label_columns(out) == ["label"]


@pytest.mark.parametrize("change, message", [
    (lambda d: d.drop(columns="group"), "missing column"),
    (lambda d: d.assign(clip_id=["x", "x"]), "repeated: 'x'"),
    (lambda d: d.assign(path=["rel/x.wav", "/a/y.wav"]), "must be absolute; rows 0"),
    (lambda d: d.assign(group=["g", None]), "'group' must hold non-empty strings; rows 1"),
    (lambda d: d.assign(start=[0.0, -1.0]), "'start' must be seconds >= 0"),
    (lambda d: d.assign(duration=[0.0, np.nan]), "'duration' must be seconds > 0"),
    (lambda d: d.iloc[:0], "no clips"),
])
def test_validate_rejects_frames_that_break_the_contract(change, message):
    with pytest.raises(DatasetError, match=message):
        datasets.validate_frame(change(frame()), source="my frame")


def test_validate_accepts_missing_segment_bounds():
    out = datasets.validate_frame(frame(start=[np.nan, 1.5], duration=[None, 2.0]))
    assert list(out.columns[:6]) == CORE + ["start", "duration"]


# --- from_folder -------------------------------------------------------------

@pytest.fixture
def clips(tmp_path):
    root = tmp_path / "my_clips"
    write(root / "a.wav")
    write(root / "sub" / "b.flac")
    write(root / "sub" / "deeper" / "c.OGG", fmt="OGG")
    write(root / "d.mp3", fmt="MP3")
    write(root / "e.AIFF", fmt="AIFF")
    (root / "notes.txt").write_text("not audio, not reported")
    (root / ".DS_Store").write_bytes(b"\0\1")
    return root


def test_from_folder_finds_audio_recursively_in_every_format(clips):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        df = datasets.from_folder(clips)
    assert list(df.columns[:4]) == CORE
    assert sorted(df["clip_id"]) == ["a.wav", "d.mp3", "e.AIFF", "sub/b.flac", "sub/deeper/c.OGG"]
    assert (df["group"] == df["clip_id"]).all() and (df["subset"] == "my_clips").all()
    assert df.set_index("clip_id").loc["sub/deeper/c.OGG", "folder"] == "sub/deeper"
    assert df.set_index("clip_id").loc["a.wav", "folder"] == "."
    assert all(p.startswith(str(clips.resolve())) for p in df["path"])
    assert df.attrs["unreadable"] == []


def test_from_folder_reports_unreadable_files_and_keeps_the_rest(clips):
    (clips / "fake.wav").write_text("this is text")
    (clips / "sub" / "empty.flac").write_bytes(b"")
    with pytest.warns(DatasetWarning, match=r"unreadable audio files .*\(2\)") as record:
        df = datasets.from_folder(clips)
    text = str(record[0].message)
    assert "fake.wav: cannot decode" in text and "empty.flac: empty file (0 bytes)" in text
    assert len(df) == 5
    assert sorted(e["path"].rsplit("/", 1)[1] for e in df.attrs["unreadable"]) == ["empty.flac", "fake.wav"]


def test_from_folder_errors_name_the_folder_and_say_what_is_wrong(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DatasetError, match=r"empty.* is empty"):
        datasets.from_folder(empty)
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "readme.txt").write_text("x")
    (docs / "cover.png").write_bytes(b"\x89PNG")
    with pytest.raises(DatasetError, match=r"no audio files .*2 other file\(s\): 'cover.png', 'readme.txt'"):
        datasets.from_folder(docs)
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "x.wav").write_text("nope")
    with pytest.raises(DatasetError, match=r"none of its 1 audio file\(s\) is readable:\n.*x.wav: cannot decode"):
        datasets.from_folder(broken)
    with pytest.raises(DatasetError, match="does not exist"):
        datasets.from_folder(tmp_path / "nowhere")
    with pytest.raises(DatasetError, match="is a file, not a folder"):
        datasets.from_folder(write(tmp_path / "one.wav"))


def test_from_folder_merges_labels_by_relative_or_absolute_path(clips):
    labels = pd.DataFrame({
        "path": ["a.wav", "sub/b.flac", str(clips / "d.mp3"), "sub/deeper/c.OGG", "e.AIFF"],
        "genre": ["rock", "jazz", "rock", "pop", "pop"],
        "group": ["song1", "song1", "song2", "song3", "song3"],
    })
    labels.to_csv(clips / "labels.csv", index=False)
    df = datasets.from_folder(clips, labels=clips / "labels.csv")
    assert df.set_index("clip_id")["genre"].to_dict() == {
        "a.wav": "rock", "sub/b.flac": "jazz", "d.mp3": "rock", "sub/deeper/c.OGG": "pop", "e.AIFF": "pop"}
    assert df.set_index("clip_id").loc["sub/b.flac", "group"] == "song1"
    assert datasets.label_columns(df) == ["genre", "folder"]
    assert list(df["clip_id"]) == ["a.wav", "sub/b.flac", "d.mp3", "sub/deeper/c.OGG", "e.AIFF"]  # table order


def test_labels_naming_missing_files_are_dropped_with_their_line_numbers(clips):
    (clips / "labels.csv").write_text("path,genre\na.wav,rock\nghost.wav,jazz\nnotes.txt,pop\nsub/b.flac,pop\n")
    with pytest.warns(DatasetWarning) as record:
        df = datasets.from_folder(clips, labels=clips / "labels.csv")
    messages = "\n".join(str(r.message) for r in record)
    assert "line 3:" in messages and "ghost.wav: no such audio file" in messages
    assert "line 4:" in messages and "notes.txt: not an audio file" in messages
    assert "does not list" in messages and "sub/deeper/c.OGG" in messages
    assert sorted(df["clip_id"]) == ["a.wav", "sub/b.flac"]
    assert [e["reason"] for e in df.attrs["missing"]] == ["no such audio file in the folder", "not an audio file"]
    assert sorted(e["path"].rsplit("/", 1)[1] for e in df.attrs["unlabelled"]) == ["c.OGG", "d.mp3", "e.AIFF"]


def test_labels_with_duplicate_paths_are_an_error_listing_the_rows(clips):
    (clips / "labels.csv").write_text("path,genre\na.wav,rock\nsub/b.flac,jazz\n./a.wav,pop\n")
    with pytest.raises(DatasetError, match=r"more than once \(2 rows\):\n  line 2: .*a.wav\n  line 4: .*a.wav"):
        datasets.from_folder(clips, labels=clips / "labels.csv")


def test_labels_may_list_segments_of_one_file(clips):
    table = pd.DataFrame({"path": ["a.wav", "a.wav"], "start": [0.0, 0.1], "duration": [0.1, 0.1],
                          "part": ["intro", "verse"]})
    with pytest.warns(DatasetWarning, match="does not list"):
        df = datasets.from_folder(clips, labels=table)
    assert list(df["clip_id"]) == ["a.wav@0", "a.wav@0.1"]
    assert list(df.columns[:6]) == CORE + ["start", "duration"]


def test_labels_without_a_path_column_are_rejected(clips):
    with pytest.raises(DatasetError, match=r"no 'path' column \(columns: \['file', 'genre'\]\)"):
        datasets.from_folder(clips, labels=pd.DataFrame({"file": ["a.wav"], "genre": ["rock"]}))


# --- GTZAN -------------------------------------------------------------------

@pytest.mark.parametrize("layout, ext", [("genres", ".au"), ("Data/genres_original", ".wav")])
def test_gtzan_reads_genre_folders_and_reports_the_broken_file(tmp_path, layout, ext):
    genre_root = tmp_path / layout
    for genre in ("blues", "jazz"):
        for i in range(2):
            write(genre_root / genre / f"{genre}.{i:05d}{ext}", fmt="AU" if ext == ".au" else None)
    (genre_root / "jazz" / f"jazz.00054{ext}").write_bytes(b"")  # as in the Kaggle copy
    for root in (tmp_path, genre_root):
        with pytest.warns(DatasetWarning, match="jazz.00054"):
            df = datasets.gtzan(root)
        assert list(df["clip_id"]) == ["blues.00000", "blues.00001", "jazz.00000", "jazz.00001"]
        assert list(df["genre"]) == ["blues", "blues", "jazz", "jazz"]
        assert (df["group"] == df["clip_id"]).all() and (df["subset"] == "gtzan").all()


def test_gtzan_explains_the_expected_layout(tmp_path):
    with pytest.raises(DatasetError, match="genre folders"):
        datasets.gtzan(tmp_path)


# --- NSynth ------------------------------------------------------------------

def nsynth_split(root, split, notes):
    folder = root / f"nsynth-{split}"
    examples = {}
    for note_str, pitch, velocity, qualities in notes:
        instrument = note_str.rsplit("-", 2)[0]
        family, source = instrument.split("_")[:2]
        examples[note_str] = {
            "note_str": note_str, "pitch": pitch, "velocity": velocity, "sample_rate": 16000,
            "instrument_str": instrument, "instrument_family_str": family, "instrument_source_str": source,
            "qualities_str": qualities, "qualities": [int(q in qualities) for q in datasets.NSYNTH_QUALITIES],
        }
        write(folder / "audio" / f"{note_str}.wav", freq=440 * 2 ** ((pitch - 69) / 12))
    (folder / "examples.json").write_text(json.dumps(examples))
    return folder


def test_nsynth_reads_examples_json_with_splits_and_groups_by_instrument(tmp_path):
    nsynth_split(tmp_path, "valid", [("guitar_acoustic_010-060-100", 60, 100, ["bright"]),
                                     ("guitar_acoustic_010-061-050", 61, 50, [])])
    test = nsynth_split(tmp_path, "test", [("bass_synthetic_033-033-127", 33, 127, ["tempo-synced", "dark"])])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        df = datasets.nsynth(tmp_path)
    assert list(df.columns[:5]) == CORE + ["split"]
    row = df.set_index("clip_id").loc["bass_synthetic_033-033-127"]
    assert (row["split"], row["group"], row["midi_pitch"], row["pitch_class"], row["octave"]) == \
           ("test", "bass_synthetic_033", 33, "A", 1)
    assert (row["instrument_family"], row["instrument_source"], row["velocity"]) == ("bass", "synthetic", 127)
    assert row["quality_tempo_synced"] and row["quality_dark"] and not row["quality_bright"]
    assert df.groupby("group").size().to_dict() == {"bass_synthetic_033": 1, "guitar_acoustic_010": 2}
    one = datasets.nsynth(test)  # a single split folder works too
    assert list(one["clip_id"]) == ["bass_synthetic_033-033-127"]


def test_nsynth_reports_listed_notes_without_audio(tmp_path):
    folder = nsynth_split(tmp_path, "valid", [("keyboard_electronic_001-060-100", 60, 100, [])])
    examples = json.loads((folder / "examples.json").read_text())
    examples["keyboard_electronic_001-062-100"] = dict(examples["keyboard_electronic_001-060-100"], pitch=62)
    (folder / "examples.json").write_text(json.dumps(examples))
    with pytest.warns(DatasetWarning, match=r"keyboard_electronic_001-062-100.wav: listed but not on disk"):
        df = datasets.nsynth(folder)
    assert list(df["midi_pitch"]) == [60]


def test_nsynth_explains_the_expected_layout(tmp_path):
    with pytest.raises(DatasetError, match="examples.json"):
        datasets.nsynth(tmp_path)


# --- MagnaTagATune -----------------------------------------------------------

MTT_ROWS = [  # clip_id, guitar, classical, slow, no voice, mp3_path
    (2, 0, 1, 1, 0, "f/american_bach_soloists-j_s__bach_solo_cantatas-01-bwv54__i_aria-30-59.mp3"),
    (6, 1, 1, 0, 1, "f/american_bach_soloists-j_s__bach_solo_cantatas-01-bwv54__i_aria-88-117.mp3"),
    (10, 1, 0, 1, 0, "0/tim_rayborn-the_path_beyond-14-taqsim_ud-0-29.mp3"),
    (11, 0, 1, 0, 0, "c/jacob_heringman-josquin_des_prez_lute_settings-19-gintzler__pater_noster-204-233.mp3"),
    (12, 1, 0, 0, 0, "d/missing_artist-missing_album-01-gone-0-29.mp3"),
]


@pytest.fixture
def mtt(tmp_path):
    header = '"clip_id"\t"guitar"\t"classical"\t"slow"\t"no voice"\t"mp3_path"'
    lines = [header] + ["\t".join(f'"{v}"' for v in row) for row in MTT_ROWS]
    (tmp_path / "annotations_final.csv").write_text("\n".join(lines) + "\n")
    for row in MTT_ROWS[:4]:
        write(tmp_path / "mp3" / row[-1], rate=16000, fmt="MP3")
    return tmp_path


def test_magnatagatune_keeps_top_tags_groups_segments_of_a_song_and_splits_by_folder(mtt):
    with pytest.warns(DatasetWarning, match=r"missing_artist.*listed but not on disk"):
        df = datasets.magnatagatune(mtt, top_k=2)
    assert list(df.columns) == CORE + ["split", "tag_guitar", "tag_classical"]  # 3 each; file order breaks the tie
    assert list(df["clip_id"]) == ["2", "6", "10", "11"]
    assert list(df["split"]) == ["test", "test", "train", "valid"]
    assert df["group"].iloc[0] == df["group"].iloc[1] == \
        "american_bach_soloists-j_s__bach_solo_cantatas-01-bwv54__i_aria"
    assert df["group"].nunique() == 3
    assert df["tag_classical"].dtype == bool and list(df["tag_classical"]) == [True, True, False, True]
    with pytest.warns(DatasetWarning, match="missing_artist"):
        chosen = datasets.magnatagatune(mtt, tags=["no voice"], check_audio=True)
    assert list(chosen.columns[-1:]) == ["tag_no_voice"] and chosen["tag_no_voice"].sum() == 1


def test_magnatagatune_rejects_unknown_tags_and_missing_annotations(mtt, tmp_path):
    with pytest.raises(DatasetError, match=r"tags \['banjo'\]"):
        datasets.magnatagatune(mtt, tags=["banjo"])
    with pytest.raises(DatasetError, match="annotations_final.csv is missing"):
        datasets.magnatagatune(tmp_path / "mp3")


# --- one shape for every loader ----------------------------------------------

def test_every_loader_returns_the_same_tidy_shape(clips, mtt, tmp_path):
    write(tmp_path / "gtzan" / "genres" / "rock" / "rock.00000.wav")
    nsynth_split(tmp_path / "ns", "test", [("flute_acoustic_002-070-075", 70, 75, [])])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DatasetWarning)
        frames = [datasets.from_folder(clips), datasets.gtzan(tmp_path / "gtzan"),
                  datasets.nsynth(tmp_path / "ns"), datasets.magnatagatune(mtt),
                  datasets.teaching_set("chords")]
    for df in frames:
        assert list(df.columns[:4]) == CORE
        pd.testing.assert_frame_equal(datasets.validate_frame(df), df)
        assert df["path"].map(lambda p: sf.info(p).frames > 0).all()


# --- teaching_set loader -----------------------------------------------------

def test_teaching_set_filters_subsets_and_drops_their_empty_label_columns():
    notes = datasets.teaching_set("notes")
    assert len(notes) == 192 and set(notes["subset"]) == {"notes"}
    assert datasets.label_columns(notes) == ["instrument", "gm_program", "instrument_family", "midi_pitch",
                                            "pitch_class", "octave", "velocity"]
    assert notes["midi_pitch"].dtype == "Int64"
    both = datasets.teaching_set(["rhythm", "music"])
    assert set(both["subset"]) == {"rhythm", "music"} and "chord_root" not in both
    everything = datasets.teaching_set()
    assert len(everything) >= 400 and everything["chord_root"].isna().sum() == 456 - 120


def test_teaching_set_errors_say_how_to_get_the_data(tmp_path):
    with pytest.raises(DatasetError, match=r"unknown subset\(s\) \['drums'\]"):
        datasets.teaching_set("drums")
    with pytest.raises(DatasetError, match="make_teaching_set.py"):
        datasets.teaching_set(root=tmp_path)
    (tmp_path / "labels.csv").write_text("clip_id,path,subset,group\nnotes/x,audio/notes/x.flac,notes,g\n")
    with pytest.raises(DatasetError, match=r"incomplete: 1 audio file"):
        datasets.teaching_set(root=tmp_path)
