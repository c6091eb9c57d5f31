"""m2v_lab.datasets as a whole: its public names, one frame shape for every loader, the teaching-set loader.

Also the builders the other dataset tests share (audio files, NSynth and MagnaTagATune folders):
test_datasets_frame.py, test_datasets_folder.py and test_datasets_mir.py import them from here.
"""

import json
import warnings

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

import m2v_lab as m2v
from m2v_lab import datasets
from m2v_lab.datasets import DatasetWarning
from m2v_lab.errors import DatasetError, OptionError

CORE = ["path", "clip_id", "group", "subset"]


def write(path, seconds=0.2, rate=16000, fmt=None, freq=440.0):
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(seconds * rate)) / rate
    sf.write(path, (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32), rate, format=fmt)
    return path


def write_clips(tmp_path):
    """A folder of five clips in five formats, nested, next to a text file and a hidden file."""
    root = tmp_path / "my_clips"
    write(root / "a.wav")
    write(root / "sub" / "b.flac")
    write(root / "sub" / "deeper" / "c.OGG", fmt="OGG")
    write(root / "d.mp3", fmt="MP3")
    write(root / "e.AIFF", fmt="AIFF")
    (root / "notes.txt").write_text("not audio, not reported")
    (root / ".DS_Store").write_bytes(b"\0\1")
    return root


@pytest.fixture
def clips(tmp_path):
    return write_clips(tmp_path)


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


MTT_ROWS = [  # clip_id, guitar, classical, slow, no voice, mp3_path
    (2, 0, 1, 1, 0, "f/american_bach_soloists-j_s__bach_solo_cantatas-01-bwv54__i_aria-30-59.mp3"),
    (6, 1, 1, 0, 1, "f/american_bach_soloists-j_s__bach_solo_cantatas-01-bwv54__i_aria-88-117.mp3"),
    (10, 1, 0, 1, 0, "0/tim_rayborn-the_path_beyond-14-taqsim_ud-0-29.mp3"),
    (11, 0, 1, 0, 0, "c/jacob_heringman-josquin_des_prez_lute_settings-19-gintzler__pater_noster-204-233.mp3"),
    (12, 1, 0, 0, 0, "d/missing_artist-missing_album-01-gone-0-29.mp3"),
]


def write_mtt(root, rows=MTT_ROWS, with_audio=4):
    header = '"clip_id"\t"guitar"\t"classical"\t"slow"\t"no voice"\t"mp3_path"'
    lines = [header] + ["\t".join(f'"{v}"' for v in row) for row in rows]
    (root / "annotations_final.csv").write_text("\n".join(lines) + "\n")
    for row in rows[:with_audio]:
        write(root / "mp3" / row[-1], rate=16000, fmt="MP3")
    return root


@pytest.fixture
def mtt(tmp_path):
    return write_mtt(tmp_path)


# --- the public names ---------------------------------------------------------------------------------

def test_every_public_name_is_at_the_package_and_in_its_module():
    from m2v_lab.datasets import folder, frame, mir, teaching

    homes = {frame: ["CORE_COLUMNS", "OPTIONAL_COLUMNS", "DatasetWarning", "validate_frame", "label_columns"],
             teaching: ["TEACHING_SUBSETS", "teaching_set"], folder: ["from_folder"],
             mir: ["GTZAN_GENRES", "NSYNTH_QUALITIES", "gtzan", "nsynth", "magnatagatune"]}
    exported = []
    for module, names in homes.items():
        assert module.__doc__ and sorted(module.__all__) == sorted(names)
        for name in names:
            assert getattr(m2v.datasets, name) is getattr(module, name)
        exported += names
    assert sorted(datasets.__all__) == sorted(exported)
    assert datasets.CORE_COLUMNS == tuple(CORE) and datasets.OPTIONAL_COLUMNS == ("split", "start", "duration")
    assert issubclass(DatasetWarning, UserWarning)


# --- one shape for every loader -----------------------------------------------------------------------

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


def test_loader_warnings_point_at_the_callers_line(clips, mtt):
    (clips / "fake.wav").write_text("this is text")
    (clips / "labels.csv").write_text("path,genre\na.wav,rock\nghost.wav,jazz\n")
    with pytest.warns(DatasetWarning) as record:
        datasets.from_folder(clips, labels=clips / "labels.csv")
        datasets.magnatagatune(mtt)
    assert len(record) == 4  # folder: missing, unlabelled, unreadable; MTT: missing
    assert {r.filename for r in record} == {__file__}


# --- teaching_set loader ------------------------------------------------------------------------------

def test_teaching_set_filters_subsets_and_drops_their_empty_label_columns():
    notes = datasets.teaching_set("notes")
    assert len(notes) == 384 and set(notes["subset"]) == {"notes"}
    assert datasets.label_columns(notes) == ["instrument", "gm_program", "instrument_family", "midi_pitch",
                                            "pitch_class", "octave", "velocity"]
    assert notes["midi_pitch"].dtype == "Int64"
    both = datasets.teaching_set(["rhythm", "music"])
    assert set(both["subset"]) == {"rhythm", "music"} and "chord_root" not in both
    everything = datasets.teaching_set()
    assert len(everything) >= 400 and everything["chord_root"].isna().sum() == 708 - 180
    assert tuple(everything["subset"].unique()) == datasets.TEACHING_SUBSETS


def test_teaching_set_errors_say_how_to_get_the_data(tmp_path):
    with pytest.raises(OptionError, match=r"unknown subset\(s\) \['drums'\]"):
        datasets.teaching_set("drums")
    for empty in ([], "", [None]):
        with pytest.raises(OptionError, match="subset="):
            datasets.teaching_set(empty)
    with pytest.raises(DatasetError, match="make_teaching_set.py"):
        datasets.teaching_set(root=tmp_path)
    (tmp_path / "labels.csv").write_text("clip_id,path,subset,group\nnotes/x,audio/notes/x.flac,notes,g\n")
    with pytest.raises(DatasetError, match=r"incomplete: 1 audio file"):
        datasets.teaching_set(root=tmp_path)
