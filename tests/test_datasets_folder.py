"""m2v_lab.datasets.folder: from_folder, with and without a labels table."""

import warnings

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from m2v_lab import datasets
from m2v_lab.datasets import DatasetWarning
from m2v_lab.errors import DatasetError, OptionError
from test_datasets import CORE, write, write_clips


@pytest.fixture
def clips(tmp_path):
    return write_clips(tmp_path)


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


def test_from_folder_takes_extensions_with_or_without_the_dot_in_any_case(clips):
    assert list(datasets.from_folder(clips, extensions="flac")["clip_id"]) == ["sub/b.flac"]
    assert list(datasets.from_folder(clips, extensions=["WAV", ".mp3"])["clip_id"]) == ["a.wav", "d.mp3"]


def test_from_folder_reports_unreadable_files_and_keeps_the_rest(clips):
    (clips / "fake.wav").write_text("this is text")
    (clips / "sub" / "empty.flac").write_bytes(b"")
    sf.write(clips / "silent.wav", np.zeros(0, dtype=np.float32), 16000)  # a header without samples
    with pytest.warns(DatasetWarning, match=r"unreadable audio files .*\(3\)") as record:
        df = datasets.from_folder(clips)
    text = str(record[0].message)
    assert "cannot decode " in text and "fake.wav: " in text and "convert it first" in text
    assert "empty.flac is empty (0 bytes)" in text and "silent.wav holds no audio frames" in text
    assert len(df) == 5
    assert sorted(e["path"].rsplit("/", 1)[1] for e in df.attrs["unreadable"]) == \
        ["empty.flac", "fake.wav", "silent.wav"]
    unchecked = datasets.from_folder(clips, check_audio=False)
    assert len(unchecked) == 8 and unchecked.attrs["unreadable"] == []


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
    with pytest.raises(DatasetError, match=r"none of its 1 audio file\(s\) is readable:\n  cannot decode .*x.wav"):
        datasets.from_folder(broken)
    with pytest.raises(DatasetError, match="does not exist"):
        datasets.from_folder(tmp_path / "nowhere")
    with pytest.raises(DatasetError, match="is a file, not a folder"):
        datasets.from_folder(write(tmp_path / "one.wav"))


@pytest.mark.parametrize("options, message", [
    ({"check_audio": "yes"}, "check_audio='yes': use True or False"),
    ({"extensions": []}, r"extensions=\[\]"),
    ({"extensions": [".wav", 3]}, "extensions="),
    ({"labels": {"a.wav": "rock"}}, "labels is a dict; pass the path of a CSV file or a DataFrame"),
])
def test_from_folder_rejects_option_values_it_cannot_use(clips, options, message):
    with pytest.raises(OptionError, match=message):
        datasets.from_folder(clips, **options)


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


def test_labels_naming_an_unreadable_file_say_why(clips):
    (clips / "fake.wav").write_text("this is text")
    table = pd.DataFrame({"path": ["a.wav", "fake.wav", ""], "genre": ["rock", "jazz", "pop"]})
    with pytest.warns(DatasetWarning):
        df = datasets.from_folder(clips, labels=table)
    assert list(df["clip_id"]) == ["a.wav"]
    (fake, blank) = df.attrs["missing"]
    assert fake["path"].startswith("row 1: ") and fake["reason"].startswith("unreadable audio: cannot decode")
    assert blank == {"path": "row 2", "reason": "empty path"}


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


def test_labels_without_a_path_column_or_matching_rows_are_rejected(clips):
    with pytest.raises(DatasetError, match=r"no 'path' column \(columns: \['file', 'genre'\]\)"):
        datasets.from_folder(clips, labels=pd.DataFrame({"file": ["a.wav"], "genre": ["rock"]}))
    with pytest.raises(DatasetError, match=r"no row of labels DataFrame names an audio file .* 'row 0: "):
        datasets.from_folder(clips, labels=pd.DataFrame({"path": ["ghost.wav"], "genre": ["rock"]}))
    with pytest.raises(DatasetError, match="labels file .*nowhere.csv does not exist"):
        datasets.from_folder(clips, labels=clips / "nowhere.csv")
