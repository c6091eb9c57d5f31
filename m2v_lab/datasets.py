"""Labelled clips as tidy DataFrames: the shipped teaching set, your own folder, common MIR datasets.

Every loader returns the same frame shape, so :func:`m2v_lab.extract`, probing and
the widgets take any of them:

========== ===================================================================
column     meaning
========== ===================================================================
path       absolute path of the audio file (str)
clip_id    stable, unique name of the clip (str), e.g. its path inside the dataset
group      what grouped cross-validation keeps together (str): source piece,
           instrument, track … — each loader documents its choice
subset     which part of the data (str): ``notes`` / ``chords`` / ``rhythm`` /
           ``music`` in the teaching set, otherwise the dataset's name
split      *optional*: the dataset's official split (``train`` / ``valid`` / ``test``)
start      *optional*: segment start in seconds (NaN = from the beginning)
duration   *optional*: segment length in seconds (NaN = to the end)
…          label columns; a label that does not apply to a row is missing (NaN / <NA>)
========== ===================================================================

The core columns come first, in this order, with a fresh ``RangeIndex``.
:func:`validate_frame` enforces the contract; every loader ends with it.

Problems with individual files do not stop a loader: unreadable audio, rows that
name missing files and audio left without labels are dropped, listed in a
:class:`DatasetWarning` and kept in ``frame.attrs`` (``"unreadable"``,
``"missing"``, ``"unlabelled"``: lists of ``{"path": ..., "reason": ...}``).
A loader raises :class:`~m2v_lab.errors.DatasetError` when nothing usable is left
or the input is ambiguous (duplicate label rows).

>>> import m2v_lab as m2v
>>> notes = m2v.datasets.teaching_set("notes")             # doctest: +SKIP
>>> mine = m2v.datasets.from_folder("~/clips", labels="~/clips/labels.csv")  # doctest: +SKIP
"""

from __future__ import annotations

import json
import math
import os
import re
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import soundfile as sf

from .audio import AUDIO_EXTENSIONS
from .errors import DatasetError

__all__ = [
    "CORE_COLUMNS",
    "OPTIONAL_COLUMNS",
    "TEACHING_SUBSETS",
    "DatasetWarning",
    "validate_frame",
    "label_columns",
    "teaching_set",
    "from_folder",
    "gtzan",
    "nsynth",
    "magnatagatune",
]

CORE_COLUMNS = ("path", "clip_id", "group", "subset")
OPTIONAL_COLUMNS = ("split", "start", "duration")
TEACHING_SUBSETS = ("notes", "chords", "rhythm", "music")
_TEACHING_INTEGERS = ("gm_program", "midi_pitch", "octave", "velocity", "tempo_bpm", "transpose")
_DEFAULT_TEACHING_ROOT = Path(__file__).resolve().parent.parent / "data"
_REPORT_LINES = 20  # a warning lists this many offending entries, then counts the rest

GTZAN_GENRES = ("blues", "classical", "country", "disco", "hiphop", "jazz", "metal", "pop", "reggae", "rock")
NSYNTH_QUALITIES = ("bright", "dark", "distortion", "fast_decay", "long_release", "multiphonic",
                    "nonlinear_env", "percussive", "reverb", "tempo-synced")
_PITCH_CLASSES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")
# The split everyone uses since Dieleman & Schrauwen (2014): mp3 folders 0-b / c / d-f.
_MTT_SPLITS = {**{d: "train" for d in "0123456789ab"}, "c": "valid", **{d: "test" for d in "def"}}


class DatasetWarning(UserWarning):
    """Some files or label rows were left out; the message lists them."""


# --- the contract ------------------------------------------------------------

def validate_frame(frame: pd.DataFrame, *, source: str = "frame") -> pd.DataFrame:
    """Check a clip frame against the contract and return it in canonical form.

    Parameters
    ----------
    frame : DataFrame
        One row per clip; see the module docstring for the columns.
    source : str
        How error messages name the frame (e.g. the folder it came from).

    Returns
    -------
    DataFrame
        The same rows, core columns first, ``RangeIndex``, ``attrs`` kept.

    Raises
    ------
    DatasetError
        Listing every violation: missing core columns, empty or non-string core
        values, relative paths, duplicate clip ids, bad segment bounds, no rows.
    """
    if not isinstance(frame, pd.DataFrame):
        raise DatasetError(f"{source}: expected a pandas DataFrame, got {type(frame).__name__}.")
    missing = [c for c in CORE_COLUMNS if c not in frame.columns]
    if missing:
        raise DatasetError(f"{source}: missing column(s) {missing}; a clip frame needs {list(CORE_COLUMNS)} "
                           f"(has {list(frame.columns)}).")
    if len(frame) == 0:
        raise DatasetError(f"{source}: no clips (the frame is empty).")
    problems = []
    for col in CORE_COLUMNS:
        bad = ~frame[col].map(lambda v: isinstance(v, str) and v != "")
        if bad.any():
            problems.append(f"column {col!r} must hold non-empty strings; rows {_rows(frame.index[bad])} do not")
    relative = ~frame["path"].map(lambda p: isinstance(p, str) and os.path.isabs(p))
    if relative.any():
        problems.append(f"'path' must be absolute; rows {_rows(frame.index[relative])} are not")
    dup = frame["clip_id"].duplicated(keep=False)
    if dup.any():
        names = sorted(set(frame.loc[dup, "clip_id"].astype(str)))
        problems.append(f"'clip_id' must be unique; repeated: {_names(names)}")
    if "split" in frame.columns:
        bad = ~frame["split"].map(lambda v: _is_missing(v) or isinstance(v, str))
        if bad.any():
            problems.append(f"'split' must be strings or missing; rows {_rows(frame.index[bad])} are not")
    for col, low_ok in (("start", True), ("duration", False)):
        if col not in frame.columns:
            continue
        values = pd.to_numeric(frame[col], errors="coerce")
        bad = values.isna() & ~frame[col].map(_is_missing)
        bad |= (values < 0) if low_ok else (values <= 0)
        if bad.any():
            need = ">= 0" if low_ok else "> 0"
            problems.append(f"{col!r} must be seconds {need} or missing; rows {_rows(frame.index[bad])} are not")
    if problems:
        raise DatasetError(f"{source} breaks the clip-frame contract:\n  - " + "\n  - ".join(problems))
    attrs = dict(frame.attrs)
    ordered = [c for c in CORE_COLUMNS + OPTIONAL_COLUMNS if c in frame.columns]
    out = frame[ordered + [c for c in frame.columns if c not in ordered]].reset_index(drop=True)
    out.attrs = attrs
    return out


def label_columns(frame: pd.DataFrame) -> list[str]:
    """The label columns of a clip frame (everything but the core and optional columns)."""
    reserved = set(CORE_COLUMNS) | set(OPTIONAL_COLUMNS)
    return [c for c in frame.columns if c not in reserved]


def _is_missing(value) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value))


def _rows(index) -> str:
    items = list(index)
    shown = ", ".join(str(i) for i in items[:_REPORT_LINES])
    return shown + (f" … (+{len(items) - _REPORT_LINES} more)" if len(items) > _REPORT_LINES else "")


def _names(names) -> str:
    names = list(names)
    shown = ", ".join(repr(n) for n in names[:_REPORT_LINES])
    return shown + (f" … (+{len(names) - _REPORT_LINES} more)" if len(names) > _REPORT_LINES else "")


def _report(frame: pd.DataFrame, kind: str, entries: list[dict], headline: str) -> None:
    """Keep ``entries`` in ``frame.attrs[kind]`` and warn with one line per entry."""
    frame.attrs[kind] = entries
    if not entries:
        return
    lines = [f"  {e['path']}: {e['reason']}" for e in entries[:_REPORT_LINES]]
    if len(entries) > _REPORT_LINES:
        lines.append(f"  … and {len(entries) - _REPORT_LINES} more (all in frame.attrs[{kind!r}])")
    warnings.warn(f"{headline} ({len(entries)}):\n" + "\n".join(lines), DatasetWarning, stacklevel=3)


def _unreadable_reason(path: Path) -> str | None:
    """Why ``path`` cannot be used as audio, or None when its header decodes to a non-empty signal."""
    try:
        if path.stat().st_size == 0:
            return "empty file (0 bytes)"
        info = sf.info(str(path))
    except (sf.SoundFileError, RuntimeError, OSError) as exc:
        return f"cannot decode ({str(exc).strip().rstrip('.')})"
    if info.frames <= 0 or info.samplerate <= 0:
        return "no audio frames"
    return None


def _split_readable(paths, check_audio: bool):
    """(readable paths, [{"path", "reason"}] for the rest); without the check every path is readable."""
    if not check_audio:
        return list(paths), []
    good, bad = [], []
    for p in paths:
        reason = _unreadable_reason(Path(p))
        if reason is None:
            good.append(p)
        else:
            bad.append({"path": str(p), "reason": reason})
    return good, bad


def _pitch_columns(midi_pitch: pd.Series) -> dict:
    pitch = midi_pitch.astype("Int64")
    return {
        "midi_pitch": pitch,
        "pitch_class": pitch.map(lambda p: None if _is_missing(p) else _PITCH_CLASSES[int(p) % 12]),
        "octave": (pitch // 12 - 1).astype("Int64"),
    }


# --- the teaching set --------------------------------------------------------

def teaching_set(subset=None, *, root: str | os.PathLike | None = None) -> pd.DataFrame:
    """The labelled clips that ship in the repository's ``data/`` folder.

    Parameters
    ----------
    subset : str or sequence of str, optional
        ``"notes"``, ``"chords"``, ``"rhythm"``, ``"music"`` or several; default all.
        With a subset, label columns that are empty for all its rows are dropped.
    root : path, optional
        Folder holding ``labels.csv`` and ``audio/`` (default: ``data/`` next to the
        package; point it at the output of ``python data/make_teaching_set.py --out DIR``).

    Returns
    -------
    DataFrame
        The clip frame; groups are: notes — the instrument (one GM program),
        chords — the chord (root + quality), rhythm — the loop (pattern + kit),
        music — the source piece.  See ``data/README.md`` for labels and counts.
    """
    root = Path(root).expanduser() if root is not None else _DEFAULT_TEACHING_ROOT
    table = root / "labels.csv"
    if not table.is_file():
        raise DatasetError(
            f"teaching set not found: {table} does not exist. It ships in the repository's data/ folder; "
            "from an installed copy, regenerate it with `python data/make_teaching_set.py --out DIR` "
            "and pass root=DIR.")
    frame = pd.read_csv(table, dtype={c: "Int64" for c in _TEACHING_INTEGERS})
    if subset is not None:
        wanted = [subset] if isinstance(subset, str) else list(subset)
        unknown = sorted(set(wanted) - set(frame["subset"]))
        if unknown:
            raise DatasetError(f"teaching_set(subset={subset!r}): unknown subset(s) {unknown}; "
                               f"{table} has {sorted(frame['subset'].unique())}.")
        frame = frame[frame["subset"].isin(wanted)]
        frame = frame.dropna(axis=1, how="all")
    frame = frame.assign(path=[str((root / p).resolve()) for p in frame["path"]])
    absent = [p for p in frame["path"] if not os.path.isfile(p)]
    if absent:
        raise DatasetError(f"teaching set at {root} is incomplete: {len(absent)} audio file(s) named in "
                           f"labels.csv are missing, e.g. {_names(absent[:3])}. Restore data/audio from git "
                           "or regenerate with `python data/make_teaching_set.py --out DIR`.")
    return validate_frame(frame, source=str(table))


# --- your own folder ---------------------------------------------------------

def _visible_files(folder: Path) -> list[Path]:
    """Files below ``folder``, skipping hidden names (.DS_Store, ._AppleDouble, .git …)."""
    found = []
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        found.extend(Path(dirpath) / f for f in sorted(filenames) if not f.startswith("."))
    return found


def from_folder(path: str | os.PathLike, labels=None, *, check_audio: bool = True,
                extensions=AUDIO_EXTENSIONS) -> pd.DataFrame:
    """Every audio file below a folder (recursive), optionally labelled from a CSV.

    Parameters
    ----------
    path : path
        The folder. Hidden files and folders (names starting with ".") are skipped.
    labels : path or DataFrame, optional
        A table with a ``path`` column (relative to the folder, or absolute) and label
        columns.  It may also set ``clip_id``, ``group``, ``subset``, ``split``,
        ``start`` and ``duration``.  With labels, only files that have a row are kept,
        in the table's row order (otherwise files come sorted by path).
    check_audio : bool
        Open every file's header and leave out the ones that do not decode.
    extensions : sequence of str
        File suffixes treated as audio (case-insensitive).

    Returns
    -------
    DataFrame
        ``clip_id`` = the path relative to the folder, ``group`` = ``clip_id`` (each file
        its own group; give a ``group`` column in ``labels`` to keep, say, all clips of a
        song together), ``subset`` = the folder's name, and a ``folder`` label column:
        the file's sub-folder relative to ``path`` (``"."`` at the top), handy when
        classes are folders.

    Raises
    ------
    DatasetError
        The folder is missing, empty or has no audio files; no file is readable; the
        labels have no ``path`` column or name a file twice.

    Warns
    -----
    DatasetWarning
        Listing unreadable files, label rows naming files that are not there, and
        audio files without a label row (all dropped; kept in ``frame.attrs``).
    """
    folder = Path(path).expanduser()
    if not folder.exists():
        raise DatasetError(f"folder {folder} does not exist (resolved from {os.getcwd()}).")
    if not folder.is_dir():
        raise DatasetError(f"{folder} is a file, not a folder: pass its folder, or give the file to "
                           "m2v_lab.extract directly.")
    folder = folder.resolve()
    files = _visible_files(folder)
    exts = {e.lower() for e in extensions}
    audio_files = [f for f in files if f.suffix.lower() in exts]
    if not audio_files:
        if not files:
            raise DatasetError(f"folder {folder} is empty: put audio files ({_ext_list(exts)}) in it.")
        others = [str(f.relative_to(folder)) for f in files]
        raise DatasetError(f"folder {folder} has no audio files ({_ext_list(exts)}); it holds "
                           f"{len(others)} other file(s): {_names(others)}. Convert them first, e.g. "
                           "`ffmpeg -i in.m4a out.flac`.")
    readable, unreadable = _split_readable(audio_files, check_audio)
    if not readable:
        listing = "\n".join(f"  {e['path']}: {e['reason']}" for e in unreadable[:_REPORT_LINES])
        raise DatasetError(f"folder {folder}: none of its {len(audio_files)} audio file(s) is readable:\n{listing}")
    rel = [f.relative_to(folder).as_posix() for f in readable]
    frame = pd.DataFrame({
        "path": [str(f) for f in readable],
        "clip_id": rel,
        "group": rel,
        "subset": folder.name or "folder",
        "folder": [Path(r).parent.as_posix() for r in rel],
    })
    if labels is not None:
        frame = _merge_labels(frame, labels, folder, unreadable)
    _report(frame, "unreadable", unreadable, f"left out unreadable audio files in {folder}")
    return validate_frame(frame, source=f"folder {folder}")


def _ext_list(exts) -> str:
    return ", ".join(sorted(e.lstrip(".") for e in exts))


def _merge_labels(files: pd.DataFrame, labels, folder: Path, unreadable: list[dict]) -> pd.DataFrame:
    if isinstance(labels, pd.DataFrame):
        table, name = labels.copy(), "labels DataFrame"
    else:
        table_path = Path(labels).expanduser()
        if not table_path.is_file():
            raise DatasetError(f"labels file {table_path} does not exist.")
        try:
            table = pd.read_csv(table_path, dtype={"path": str})
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
            raise DatasetError(f"cannot read labels file {table_path} as CSV: {exc}") from exc
        name = str(table_path)
    if "path" not in table.columns:
        raise DatasetError(f"{name} has no 'path' column (columns: {list(table.columns)}); add one with each "
                           "file's path relative to the folder.")
    # Name offending rows by CSV line number (header = line 1), or by position in a DataFrame.
    is_frame = isinstance(labels, pd.DataFrame)
    table = table.reset_index(drop=True)
    table["_row"] = [f"row {i}" if is_frame else f"line {i + 2}" for i in table.index]
    blank = table["path"].map(lambda v: _is_missing(v) or str(v).strip() == "")
    # Match on real paths, so "./a.wav", "sub/../a.wav" and absolute or symlinked spellings agree.
    table["path"] = [None if b else os.path.realpath(folder / str(p).strip()) for p, b in zip(table["path"], blank)]
    segment = [c for c in ("start", "duration") if c in table.columns]
    key_cols = ["path"] + segment
    dup = table.duplicated(subset=key_cols, keep=False) & ~blank
    if dup.any():
        shown = [f"{r}: {p}" for r, p in zip(table.loc[dup, "_row"], table.loc[dup, "path"])]
        raise DatasetError(f"{name} names the same file{' segment' if segment else ''} more than once "
                           f"({int(dup.sum())} rows):\n  " + "\n  ".join(shown[:_REPORT_LINES])
                           + "\nKeep one row per file (or per start/duration segment).")
    files = files.assign(path=[os.path.realpath(p) for p in files["path"]])
    known = set(files["path"])
    bad_paths = {os.path.realpath(e["path"]): e["reason"] for e in unreadable}
    missing = []
    for row, p, b in zip(table["_row"], table["path"], blank):
        if b:
            missing.append({"path": row, "reason": "empty path"})
        elif p not in known:
            why = (f"unreadable audio: {bad_paths[p]}" if p in bad_paths
                   else "no such audio file in the folder" if not os.path.exists(p)
                   else "not an audio file" if os.path.isfile(p) else "not a file")
            missing.append({"path": f"{row}: {p}", "reason": why})
    table = table[table["path"].isin(known)]
    if table.empty:
        raise DatasetError(f"no row of {name} names an audio file in {folder}; e.g. "
                           f"{_names([m['path'] for m in missing[:3]])}. Paths are relative to the folder.")
    labelled = set(table["path"])
    unlabelled = [{"path": p, "reason": "no row in the labels"} for p in files["path"] if p not in labelled]
    overrides = [c for c in files.columns if c != "path" and c in table.columns]  # the table wins
    # Rows in the labels' order; the table's columns first, then what the folder adds.
    merged = table.drop(columns=["_row"]).merge(files.drop(columns=overrides), on="path", how="inner",
                                                validate="many_to_one" if segment else "one_to_one")
    if segment and "clip_id" not in overrides:
        starts = pd.to_numeric(merged["start"], errors="coerce") if "start" in merged else None
        repeated = merged["clip_id"].duplicated(keep=False)
        if starts is not None and repeated.any():
            merged.loc[repeated, "clip_id"] = [f"{c}@{s:g}" for c, s in
                                               zip(merged.loc[repeated, "clip_id"], starts[repeated])]
    for col in ("clip_id", "group", "subset"):
        merged[col] = merged[col].map(lambda v: v if _is_missing(v) else str(v))
    _report(merged, "missing", missing, f"left out rows of {name} that name no readable audio file")
    _report(merged, "unlabelled", unlabelled, f"left out audio files of {folder} that {name} does not list")
    return merged


# --- common MIR datasets -----------------------------------------------------

def _existing(frame: pd.DataFrame, check_audio: bool, where: str) -> pd.DataFrame:
    """Drop rows whose file is missing (and, with check_audio, unreadable), reporting both."""
    present = frame["path"].map(os.path.isfile)
    missing = [{"path": p, "reason": "listed but not on disk"} for p in frame.loc[~present, "path"]]
    frame = frame[present]
    readable, unreadable = _split_readable(frame["path"], check_audio)
    frame = frame[frame["path"].isin(set(readable))].reset_index(drop=True)
    if frame.empty:
        raise DatasetError(f"{where}: none of the listed audio files is readable "
                           f"({len(missing)} missing, {len(unreadable)} unreadable), e.g. "
                           f"{_names([e['path'] for e in (missing + unreadable)[:3]])}.")
    _report(frame, "missing", missing, f"left out {where} entries whose audio file is missing")
    _report(frame, "unreadable", unreadable, f"left out unreadable audio files of {where}")
    return frame


def gtzan(root: str | os.PathLike, *, check_audio: bool = True) -> pd.DataFrame:
    """GTZAN genre collection: ``genres/<genre>/<genre>.000NN.(au|wav)``.

    ``root`` may be the ``genres`` (or Kaggle's ``genres_original``) folder itself or a
    folder above it (``Data/genres_original`` also works).

    Labels: ``genre``.  ``clip_id`` = file stem (``blues.00000``); ``group`` = ``clip_id``.
    Caveat: GTZAN repeats artists and even excerpts across files (Sturm 2013), so
    per-file folds overestimate accuracy; no official split exists (the
    "fault-filtered" split of Kereliuk et al. 2015 is not bundled).  ``check_audio``
    finds the undecodable ``jazz.00054.wav`` of the Kaggle copy.
    """
    base = Path(root).expanduser()
    if not base.is_dir():
        raise DatasetError(f"GTZAN folder {base} does not exist.")
    candidates = [base, base / "genres", base / "genres_original", base / "Data" / "genres_original"]
    genre_root = next((c for c in candidates if c.is_dir() and any((c / g).is_dir() for g in GTZAN_GENRES)),
                      None)
    if genre_root is None:
        raise DatasetError(f"{base} is not a GTZAN folder: expected genre folders ({', '.join(GTZAN_GENRES)}) "
                           "in it or in its genres/ or genres_original/ sub-folder.")
    exts = {e.lower() for e in AUDIO_EXTENSIONS} | {".au"}
    rows = []
    for genre_dir in sorted(d for d in genre_root.iterdir() if d.is_dir() and d.name in GTZAN_GENRES):
        for f in sorted(genre_dir.iterdir()):
            if f.is_file() and f.suffix.lower() in exts and not f.name.startswith("."):
                rows.append({"path": str(f.resolve()), "clip_id": f.stem, "group": f.stem,
                             "subset": "gtzan", "genre": genre_dir.name})
    if not rows:
        raise DatasetError(f"GTZAN folder {genre_root}: the genre folders hold no audio files.")
    frame = _existing(pd.DataFrame(rows), check_audio, f"GTZAN at {genre_root}")
    return validate_frame(frame, source=f"GTZAN at {genre_root}")


def _nsynth_dirs(base: Path) -> list[Path]:
    if (base / "examples.json").is_file():
        return [base]
    return sorted(d for d in base.iterdir() if d.is_dir() and (d / "examples.json").is_file())


def nsynth(root: str | os.PathLike, *, check_audio: bool = False) -> pd.DataFrame:
    """NSynth: ``nsynth-<split>/examples.json`` + ``nsynth-<split>/audio/<note_str>.wav``.

    ``root`` is one ``nsynth-<split>`` folder or a folder holding several (their rows
    are concatenated; ``split`` comes from the folder name: train / valid / test).

    Labels: ``midi_pitch``, ``pitch_class``, ``octave``, ``velocity``, ``instrument``
    (``instrument_str``), ``instrument_family``, ``instrument_source`` (NSynth's
    ``*_str`` fields) and one boolean ``quality_<name>`` column per NSynth note quality
    (``tempo-synced`` becomes ``quality_tempo_synced``).  ``clip_id`` = ``note_str``;
    ``group`` = the instrument, so a grouped split holds out whole instruments as
    NSynth's own splits do.  ``check_audio`` is off by default: the train split has
    289,205 files (missing files are always reported).
    """
    base = Path(root).expanduser()
    if not base.is_dir():
        raise DatasetError(f"NSynth folder {base} does not exist.")
    split_dirs = _nsynth_dirs(base)
    if not split_dirs:
        raise DatasetError(f"{base} is not an NSynth folder: expected examples.json and audio/ in it or in "
                           "its nsynth-train / nsynth-valid / nsynth-test sub-folders.")
    parts = []
    for d in split_dirs:
        try:
            examples = json.loads((d / "examples.json").read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise DatasetError(f"{d / 'examples.json'} is not valid JSON: {exc}") from exc
        if not isinstance(examples, dict) or not examples:
            raise DatasetError(f"{d / 'examples.json'} holds no examples (expected {{note_str: {{...}}}}).")
        table = pd.DataFrame.from_dict(examples, orient="index")
        table["note_str"] = table.index.astype(str)  # examples.json is keyed by note_str
        needed = ["pitch", "velocity", "instrument_str", "instrument_family_str", "instrument_source_str"]
        absent = [c for c in needed if c not in table.columns]
        if absent:
            raise DatasetError(f"{d / 'examples.json'}: examples lack field(s) {absent}.")
        split = d.name.split("-", 1)[1] if d.name.startswith("nsynth-") else None
        part = pd.DataFrame({
            "path": [str((d / "audio" / f"{n}.wav").resolve()) for n in table["note_str"]],
            "clip_id": table["note_str"].astype(str).to_numpy(),
            "group": table["instrument_str"].astype(str).to_numpy(),
            "subset": "nsynth",
            "split": split,
        })
        for col, values in _pitch_columns(pd.Series(table["pitch"].to_numpy())).items():
            part[col] = values.to_numpy()
        part["velocity"] = pd.array(table["velocity"].to_numpy(), dtype="Int64")
        part["instrument"] = table["instrument_str"].to_numpy()
        part["instrument_family"] = table["instrument_family_str"].to_numpy()
        part["instrument_source"] = table["instrument_source_str"].to_numpy()
        for name, column in _nsynth_qualities(table).items():
            part[f"quality_{name.replace('-', '_')}"] = column
        parts.append(part)
    frame = pd.concat(parts, ignore_index=True)
    where = f"NSynth at {base}"
    frame = _existing(frame, check_audio, where)
    return validate_frame(frame, source=where)


def _nsynth_qualities(table: pd.DataFrame) -> dict:
    """{quality name: bool array}, from ``qualities_str`` (names) or ``qualities`` (0/1 vector)."""
    if "qualities_str" in table.columns:
        present = [set(v) if isinstance(v, (list, tuple)) else set() for v in table["qualities_str"]]
    elif "qualities" in table.columns:
        present = [{q for q, flag in zip(NSYNTH_QUALITIES, v) if flag} if isinstance(v, (list, tuple)) else set()
                   for v in table["qualities"]]
    else:
        return {}
    return {q: np.array([q in s for s in present]) for q in NSYNTH_QUALITIES}


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
    tags : sequence of str, optional
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
    """
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
    if tags is not None:
        unknown = [t for t in tags if t not in all_tags]
        if unknown:
            raise DatasetError(f"tags {unknown} are not columns of {table_path}.")
        chosen = list(tags)
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
    where = f"MagnaTagATune at {base}"
    empty = frame["path"] == ""
    if empty.any():  # rows without an mp3_path cannot be audio; they become "missing"
        frame.loc[empty, "path"] = [f"<no mp3_path for clip {c}>" for c in frame.loc[empty, "clip_id"]]
    frame = _existing(frame, check_audio, where)
    return validate_frame(frame, source=where)


def _mtt_audio_root(base: Path, table: pd.DataFrame) -> Path:
    """``base`` or ``base/mp3``: whichever holds the first listed mp3 files."""
    sample = [r for r in table["mp3_path"].dropna().astype(str)[:20] if r]
    for candidate in (base, base / "mp3"):
        if any((candidate / r).is_file() for r in sample):
            return candidate
    return base
