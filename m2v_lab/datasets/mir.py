"""Common MIR datasets, read from folders as their publishers ship them: GTZAN, NSynth, MagnaTagATune.

Nothing is downloaded: each loader reads the layout of the official archive (and the usual
Kaggle copies), documents its ``group`` choice, and reports listed files that are missing or
unreadable instead of stopping.
"""

from __future__ import annotations

import json
import os
import re
from numbers import Integral
from pathlib import Path

import numpy as np
import pandas as pd

from ..audio import AUDIO_EXTENSIONS
from ..errors import DatasetError, OptionError
from ..options import flag, string_list
from ._checks import split_readable
from .frame import is_missing, report, shortlist, validate_frame

__all__ = ["GTZAN_GENRES", "NSYNTH_QUALITIES", "gtzan", "nsynth", "magnatagatune"]

GTZAN_GENRES = ("blues", "classical", "country", "disco", "hiphop", "jazz", "metal", "pop", "reggae", "rock")
# In the order of the 0/1 vector of examples.json's "qualities" field.
NSYNTH_QUALITIES = ("bright", "dark", "distortion", "fast_decay", "long_release", "multiphonic",
                    "nonlinear_env", "percussive", "reverb", "tempo-synced")
_PITCH_CLASSES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")
# The split everyone uses since Dieleman & Schrauwen (2014): mp3 folders 0-b / c / d-f.
_MTT_SPLITS = {**{d: "train" for d in "0123456789ab"}, "c": "valid", **{d: "test" for d in "def"}}


def _folder(root: str | os.PathLike, dataset: str) -> Path:
    """``root`` as a Path, ``~`` expanded, or :class:`DatasetError` when it is not a folder."""
    base = Path(root).expanduser()
    if not base.is_dir():
        raise DatasetError(f"{dataset} folder {base} does not exist.")
    return base


def _existing(frame: pd.DataFrame, check_audio: bool, where: str) -> pd.DataFrame:
    """Drop rows whose file is missing (and, with check_audio, unreadable), reporting both."""
    present = frame["path"].map(os.path.isfile)
    missing = [{"path": p, "reason": "listed but not on disk"} for p in frame.loc[~present, "path"]]
    frame = frame[present]
    readable, unreadable = split_readable(frame["path"], check_audio)
    frame = frame[frame["path"].isin(set(readable))].reset_index(drop=True)
    if frame.empty:
        raise DatasetError(f"{where}: none of the listed audio files is readable "
                           f"({len(missing)} missing, {len(unreadable)} unreadable), e.g. "
                           f"{shortlist([e['path'] for e in (missing + unreadable)[:3]], show=repr)}.")
    report(frame, "missing", missing, f"left out {where} entries whose audio file is missing")
    report(frame, "unreadable", unreadable, f"left out unreadable audio files of {where}")
    return frame


# --- GTZAN -----------------------------------------------------------------------------------------------

def gtzan(root: str | os.PathLike, *, check_audio: bool = True) -> pd.DataFrame:
    """GTZAN genre collection: ``genres/<genre>/<genre>.000NN.(au|wav)``.

    Parameters
    ----------
    root : path
        The ``genres`` (or Kaggle's ``genres_original``) folder itself or a folder above it
        (``Data/genres_original`` also works).
    check_audio : bool
        Open every header and leave out undecodable files (finds the broken
        ``jazz.00054.wav`` of the Kaggle copy).

    Returns
    -------
    DataFrame
        Labels: ``genre``.  ``clip_id`` = file stem (``blues.00000``); ``group`` = ``clip_id``.
        Caveat: GTZAN repeats artists and even excerpts across files (Sturm 2013), so
        per-file folds overestimate accuracy; no official split exists (the
        "fault-filtered" split of Kereliuk et al. 2015 is not bundled).

    Raises
    ------
    DatasetError
        ``root`` is missing, has no genre folders, or no readable audio in them.
    OptionError
        ``check_audio`` is not a bool.
    """
    check_audio = flag("check_audio", check_audio)
    base = _folder(root, "GTZAN")
    candidates = [base, base / "genres", base / "genres_original", base / "Data" / "genres_original"]
    genre_root = next((c for c in candidates if c.is_dir() and any((c / g).is_dir() for g in GTZAN_GENRES)),
                      None)
    if genre_root is None:
        raise DatasetError(f"{base} is not a GTZAN folder: expected genre folders ({', '.join(GTZAN_GENRES)}) "
                           "in it or in its genres/ or genres_original/ sub-folder.")
    exts = {e.lower() for e in AUDIO_EXTENSIONS} | {".au"}  # the original archive's format
    rows = []
    for genre_dir in sorted(d for d in genre_root.iterdir() if d.is_dir() and d.name in GTZAN_GENRES):
        for f in sorted(genre_dir.iterdir()):
            if f.is_file() and f.suffix.lower() in exts and not f.name.startswith("."):
                rows.append({"path": str(f.resolve()), "clip_id": f.stem, "group": f.stem,
                             "subset": "gtzan", "genre": genre_dir.name})
    if not rows:
        raise DatasetError(f"GTZAN folder {genre_root}: the genre folders hold no audio files.")
    where = f"GTZAN at {genre_root}"
    return validate_frame(_existing(pd.DataFrame(rows), check_audio, where), source=where)


# --- NSynth ----------------------------------------------------------------------------------------------

def nsynth(root: str | os.PathLike, *, check_audio: bool = False) -> pd.DataFrame:
    """NSynth: ``nsynth-<split>/examples.json`` + ``nsynth-<split>/audio/<note_str>.wav``.

    Parameters
    ----------
    root : path
        One ``nsynth-<split>`` folder or a folder holding several (their rows are
        concatenated; ``split`` comes from the folder name: train / valid / test).
    check_audio : bool
        Open every header (off by default: the train split has 289,205 files; missing
        files are always reported).

    Returns
    -------
    DataFrame
        Labels: ``midi_pitch``, ``pitch_class``, ``octave``, ``velocity``, ``instrument``
        (``instrument_str``), ``instrument_family``, ``instrument_source`` (NSynth's
        ``*_str`` fields) and one boolean ``quality_<name>`` column per NSynth note quality
        (``tempo-synced`` becomes ``quality_tempo_synced``).  ``clip_id`` = ``note_str``;
        ``group`` = the instrument, so a grouped split holds out whole instruments as
        NSynth's own splits do.

    Raises
    ------
    DatasetError
        ``root`` is missing or holds no ``examples.json``; an ``examples.json`` is not valid
        JSON or lacks fields; no listed file is there.
    OptionError
        ``check_audio`` is not a bool.
    """
    check_audio = flag("check_audio", check_audio)
    base = _folder(root, "NSynth")
    split_dirs = _nsynth_dirs(base)
    if not split_dirs:
        raise DatasetError(f"{base} is not an NSynth folder: expected examples.json and audio/ in it or in "
                           "its nsynth-train / nsynth-valid / nsynth-test sub-folders.")
    frame = pd.concat([_nsynth_split(d) for d in split_dirs], ignore_index=True)
    where = f"NSynth at {base}"
    return validate_frame(_existing(frame, check_audio, where), source=where)


def _nsynth_dirs(base: Path) -> list[Path]:
    """``base`` when it is a split folder, else its sub-folders that are."""
    if (base / "examples.json").is_file():
        return [base]
    return sorted(d for d in base.iterdir() if d.is_dir() and (d / "examples.json").is_file())


def _nsynth_split(folder: Path) -> pd.DataFrame:
    """The rows of one ``nsynth-<split>`` folder, from its ``examples.json``."""
    listing = folder / "examples.json"
    try:
        examples = json.loads(listing.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{listing} is not valid JSON: {exc}") from exc
    if not isinstance(examples, dict) or not examples:
        raise DatasetError(f"{listing} holds no examples (expected {{note_str: {{...}}}}).")
    table = pd.DataFrame.from_dict(examples, orient="index")
    table["note_str"] = table.index.astype(str)  # examples.json is keyed by note_str
    needed = ["pitch", "velocity", "instrument_str", "instrument_family_str", "instrument_source_str"]
    absent = [c for c in needed if c not in table.columns]
    if absent:
        raise DatasetError(f"{listing}: examples lack field(s) {absent}.")
    part = pd.DataFrame({
        "path": [str((folder / "audio" / f"{n}.wav").resolve()) for n in table["note_str"]],
        "clip_id": table["note_str"].to_numpy(),
        "group": table["instrument_str"].astype(str).to_numpy(),
        "subset": "nsynth",
        "split": folder.name.split("-", 1)[1] if folder.name.startswith("nsynth-") else None,
    })
    for col, values in _pitch_columns(pd.Series(table["pitch"].to_numpy())).items():
        part[col] = values.to_numpy()
    part["velocity"] = pd.array(table["velocity"].to_numpy(), dtype="Int64")
    part["instrument"] = table["instrument_str"].to_numpy()
    part["instrument_family"] = table["instrument_family_str"].to_numpy()
    part["instrument_source"] = table["instrument_source_str"].to_numpy()
    for name, column in _nsynth_qualities(table).items():
        part[f"quality_{name.replace('-', '_')}"] = column
    return part


def _pitch_columns(midi_pitch: pd.Series) -> dict:
    """``midi_pitch``, ``pitch_class`` (sharps) and ``octave`` (MIDI 60 = C4) columns."""
    pitch = midi_pitch.astype("Int64")
    return {
        "midi_pitch": pitch,
        "pitch_class": pitch.map(lambda p: None if is_missing(p) else _PITCH_CLASSES[int(p) % 12]),
        "octave": (pitch // 12 - 1).astype("Int64"),
    }


def _nsynth_qualities(table: pd.DataFrame) -> dict:
    """{quality name: bool array}, from ``qualities_str`` (names) or ``qualities`` (0/1 vector)."""
    if "qualities_str" in table.columns:
        present = [set(v) if isinstance(v, (list, tuple)) else set() for v in table["qualities_str"]]
    elif "qualities" in table.columns:
        present = [{q for q, on in zip(NSYNTH_QUALITIES, v) if on} if isinstance(v, (list, tuple)) else set()
                   for v in table["qualities"]]
    else:
        return {}
    return {q: np.array([q in s for s in present]) for q in NSYNTH_QUALITIES}


# --- MagnaTagATune ---------------------------------------------------------------------------------------

def magnatagatune(root: str | os.PathLike, *, top_k: int = 50, tags=None, audio_dir=None,
                  check_audio: bool = False) -> pd.DataFrame:
    """MagnaTagATune: ``annotations_final.csv`` (tab-separated) + mp3 folders ``0`` … ``f``.

    Parameters
    ----------
    root : path
        Folder with ``annotations_final.csv``; the mp3 folders may sit in it or in ``mp3/``.
    top_k : int
        Keep the ``top_k`` most frequent tags (ties: file order).  On the full
        annotations this is the usual top-50 benchmark vocabulary.
    tags : str or sequence of str, optional
        Exactly these tags instead of the most frequent ones.
    audio_dir : path, optional
        Where the mp3 folders are, when not next to the annotations.
    check_audio : bool
        Decode every header (slow for 25,863 mp3 files; missing files are always reported).

    Returns
    -------
    DataFrame
        One boolean ``tag_<name>`` column per kept tag (spaces become "_"; the multilabel
        target is ``frame.filter(like="tag_")``), ``split`` from the mp3 folder
        (0-b train, c valid, d-f test, the split of Dieleman & Schrauwen 2014),
        ``clip_id`` = MTT's clip id, ``group`` = the source track: ``mp3_path``
        without its ``-<start>-<end>`` segment suffix, so all segments of one song
        land in one fold.

    Raises
    ------
    DatasetError
        ``annotations_final.csv`` is missing, not tab-separated or lacks ``clip_id`` /
        ``mp3_path``; no listed file is there.
    OptionError
        ``top_k`` is not a whole number >= 1; ``tags`` is empty or names tags the
        annotations do not have; ``check_audio`` is not a bool.
    """
    check_audio = flag("check_audio", check_audio)
    if not isinstance(top_k, Integral) or isinstance(top_k, bool) or top_k < 1:
        raise OptionError(f"top_k={top_k!r} must be a whole number >= 1 (50 is the usual benchmark).")
    wanted = None if tags is None else string_list("tags", tags)
    base = Path(root).expanduser()
    table_path = base / "annotations_final.csv"
    if not table_path.is_file():
        raise DatasetError(f"{base} is not a MagnaTagATune folder: {table_path.name} is missing.")
    try:
        table = pd.read_csv(table_path, sep="\t", dtype={"clip_id": str, "mp3_path": str})
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise DatasetError(f"cannot read {table_path} as tab-separated values: {exc}") from exc
    for col in ("clip_id", "mp3_path"):
        if col not in table.columns:
            raise DatasetError(f"{table_path} has no {col!r} column (columns: {list(table.columns)[:6]} …); "
                               "is it the tab-separated annotations_final.csv?")
    all_tags = [c for c in table.columns if c not in ("clip_id", "mp3_path")]
    if wanted is not None:
        unknown = [t for t in wanted if t not in all_tags]
        if unknown:
            raise OptionError(f"tags {unknown} are not columns of {table_path}; it has {len(all_tags)} tags, "
                              f"e.g. {shortlist(all_tags[:10], show=repr)}.")
        chosen = wanted
    else:
        counts = table[all_tags].sum()
        order = sorted(range(len(all_tags)), key=lambda i: (-counts.iloc[i], i))
        chosen = [all_tags[i] for i in order[:top_k]]
    audio_root = Path(audio_dir).expanduser() if audio_dir is not None else _mtt_audio_root(base, table)
    rel = table["mp3_path"].fillna("").astype(str)
    frame = pd.DataFrame({
        "path": [str((audio_root / r).resolve()) if r else "" for r in rel],
        "clip_id": table["clip_id"].astype(str),
        "group": [re.sub(r"-\d+-\d+$", "", Path(r).stem) or r for r in rel],
        "subset": "magnatagatune",
        "split": [_MTT_SPLITS.get(r.split("/", 1)[0]) for r in rel],
    })
    for t in chosen:
        frame[f"tag_{t.replace(' ', '_')}"] = table[t].fillna(0).astype(int).astype(bool).to_numpy()
    empty = frame["path"] == ""
    if empty.any():  # rows without an mp3_path cannot be audio; they become "missing"
        frame.loc[empty, "path"] = [f"<no mp3_path for clip {c}>" for c in frame.loc[empty, "clip_id"]]
    where = f"MagnaTagATune at {base}"
    return validate_frame(_existing(frame, check_audio, where), source=where)


def _mtt_audio_root(base: Path, table: pd.DataFrame) -> Path:
    """``base`` or ``base/mp3``: whichever holds the first listed mp3 files."""
    sample = [r for r in table["mp3_path"].dropna().astype(str)[:20] if r]
    for candidate in (base, base / "mp3"):
        if any((candidate / r).is_file() for r in sample):
            return candidate
    return base
