"""m2v_lab.datasets.mir: the GTZAN, NSynth and MagnaTagATune folder readers."""

import json
import warnings

import pytest

from m2v_lab import datasets
from m2v_lab.datasets import DatasetWarning
from m2v_lab.errors import DatasetError, OptionError
from test_datasets import CORE, MTT_ROWS, nsynth_split, write, write_mtt


@pytest.fixture
def mtt(tmp_path):
    return write_mtt(tmp_path)


# --- GTZAN -------------------------------------------------------------------------------------------

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
        assert [e["path"].rsplit("/", 1)[1] for e in df.attrs["unreadable"]] == [f"jazz.00054{ext}"]


def test_gtzan_explains_the_expected_layout(tmp_path):
    with pytest.raises(DatasetError, match="genre folders"):
        datasets.gtzan(tmp_path)
    with pytest.raises(DatasetError, match="does not exist"):
        datasets.gtzan(tmp_path / "nowhere")
    (tmp_path / "genres" / "rock").mkdir(parents=True)
    with pytest.raises(DatasetError, match="hold no audio files"):
        datasets.gtzan(tmp_path)
    with pytest.raises(OptionError, match="check_audio=None"):
        datasets.gtzan(tmp_path, check_audio=None)


# --- NSynth ------------------------------------------------------------------------------------------

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


def test_nsynth_reads_qualities_from_the_0_1_vector_when_names_are_absent(tmp_path):
    folder = nsynth_split(tmp_path, "test", [("organ_electronic_001-064-080", 64, 80, ["reverb", "bright"])])
    examples = json.loads((folder / "examples.json").read_text())
    for example in examples.values():
        del example["qualities_str"]
    (folder / "examples.json").write_text(json.dumps(examples))
    row = datasets.nsynth(folder).iloc[0]
    assert [q for q in datasets.NSYNTH_QUALITIES if row[f"quality_{q.replace('-', '_')}"]] == ["bright", "reverb"]


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
    folder = tmp_path / "nsynth-test"
    folder.mkdir()
    (folder / "examples.json").write_text("{not json")
    with pytest.raises(DatasetError, match="examples.json is not valid JSON"):
        datasets.nsynth(tmp_path)
    (folder / "examples.json").write_text(json.dumps({"x-060-100": {"pitch": 60}}))
    with pytest.raises(DatasetError, match=r"examples lack field\(s\) \['velocity'"):
        datasets.nsynth(tmp_path)


# --- MagnaTagATune -----------------------------------------------------------------------------------

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
    with pytest.warns(DatasetWarning):
        one = datasets.magnatagatune(mtt, tags="no voice")  # one tag as a string, not its letters
    assert list(one.columns) == CORE + ["split", "tag_no_voice"]


def test_magnatagatune_reports_rows_without_an_mp3_path(tmp_path):
    write_mtt(tmp_path, MTT_ROWS[:2] + [(13, 1, 0, 0, 0, "")], with_audio=2)
    with pytest.warns(DatasetWarning, match=r"<no mp3_path for clip 13>: listed but not on disk"):
        df = datasets.magnatagatune(tmp_path)
    assert list(df["clip_id"]) == ["2", "6"]


def test_magnatagatune_rejects_unknown_tags_and_missing_annotations(mtt, tmp_path):
    with pytest.raises(OptionError, match=r"tags \['banjo'\] are not columns of .*'guitar', 'classical'"):
        datasets.magnatagatune(mtt, tags=["banjo"])
    with pytest.raises(DatasetError, match="annotations_final.csv is missing"):
        datasets.magnatagatune(tmp_path / "mp3")
    (tmp_path / "annotations_final.csv").write_text("clip_id,guitar\n1,0\n")
    with pytest.raises(DatasetError, match=r"no 'clip_id' column \(columns: \['clip_id,guitar'\] …\); is it the tab"):
        datasets.magnatagatune(tmp_path)


@pytest.mark.parametrize("options, message", [
    ({"top_k": 0}, "top_k=0 must be a whole number >= 1"),
    ({"top_k": 2.5}, "top_k=2.5"),
    ({"top_k": True}, "top_k=True"),
    ({"tags": []}, r"tags=\[\]"),
    ({"check_audio": 1}, "check_audio=1: use True or False"),
])
def test_magnatagatune_rejects_option_values_it_cannot_use(mtt, options, message):
    with pytest.raises(OptionError, match=message):
        datasets.magnatagatune(mtt, **options)
