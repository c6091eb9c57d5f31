"""Your own clips: every audio file below a folder, optionally labelled from a CSV or DataFrame."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from ..audio import AUDIO_EXTENSIONS
from ..errors import DatasetError, OptionError
from ..options import flag, string_list
from ._checks import split_readable
from .frame import REPORT_LINES, entry_lines, is_missing, report, shortlist, validate_frame

__all__ = ["from_folder"]


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
        Open every file's header and leave out the ones :mod:`m2v_lab.audio` cannot read
        (empty, undecodable, no samples).
    extensions : str or sequence of str
        File suffixes treated as audio, case-insensitive, with or without the dot
        (default :data:`m2v_lab.audio.AUDIO_EXTENSIONS`).

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
        labels file is missing or not CSV, has no ``path`` column, names a file twice or
        names no audio file of the folder.
    OptionError
        ``labels`` is neither a path nor a DataFrame; ``check_audio`` is not a bool;
        ``extensions`` is empty or not strings.

    Warns
    -----
    DatasetWarning
        Listing unreadable files, label rows naming files that are not there, and
        audio files without a label row (all dropped; kept in ``frame.attrs``).
    """
    check_audio = flag("check_audio", check_audio)
    exts = {"." + e.lower().lstrip(".") for e in string_list("extensions", extensions)}
    if labels is not None and not isinstance(labels, (str, os.PathLike, pd.DataFrame)):
        raise OptionError(f"labels is a {type(labels).__name__}; pass the path of a CSV file or a DataFrame, "
                          "each with a 'path' column.")
    folder = Path(path).expanduser()
    if not folder.exists():
        raise DatasetError(f"folder {folder} does not exist (resolved from {os.getcwd()}).")
    if not folder.is_dir():
        raise DatasetError(f"{folder} is a file, not a folder: pass its folder, or give the file to "
                           "m2v_lab.extract directly.")
    folder = folder.resolve()
    files = _visible_files(folder)
    audio_files = [f for f in files if f.suffix.lower() in exts]
    if not audio_files:
        if not files:
            raise DatasetError(f"folder {folder} is empty: put audio files ({_ext_list(exts)}) in it.")
        others = [str(f.relative_to(folder)) for f in files]
        raise DatasetError(f"folder {folder} has no audio files ({_ext_list(exts)}); it holds "
                           f"{len(others)} other file(s): {shortlist(others, show=repr)}. Convert them first, "
                           "e.g. `ffmpeg -i in.m4a out.flac`.")
    readable, unreadable = split_readable(audio_files, check_audio)
    if not readable:
        listing = "\n".join(entry_lines(unreadable))
        raise DatasetError(f"folder {folder}: none of its {len(audio_files)} audio file(s) is readable:\n{listing}")
    rel = [f.relative_to(folder).as_posix() for f in readable]
    frame = pd.DataFrame({
        "path": [str(f) for f in readable],
        "clip_id": rel,
        "group": rel,
        "subset": folder.name or "folder",  # the file-system root has no name
        "folder": [Path(r).parent.as_posix() for r in rel],
    })
    if labels is not None:
        frame = _merge_labels(frame, labels, folder, unreadable)
    report(frame, "unreadable", unreadable, f"left out unreadable audio files in {folder}")
    return validate_frame(frame, source=f"folder {folder}")


def _visible_files(folder: Path) -> list[Path]:
    """Files below ``folder``, sorted, skipping hidden names (.DS_Store, ._AppleDouble, .git …)."""
    found = []
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        found.extend(Path(dirpath) / f for f in sorted(filenames) if not f.startswith("."))
    return found


def _ext_list(exts) -> str:
    return ", ".join(sorted(e.lstrip(".") for e in exts))


def _read_labels(labels) -> tuple[pd.DataFrame, str]:
    """(a copy of the labels table, how messages name it)."""
    if isinstance(labels, pd.DataFrame):
        return labels.copy(), "labels DataFrame"
    table_path = Path(labels).expanduser()
    if not table_path.is_file():
        raise DatasetError(f"labels file {table_path} does not exist.")
    try:
        table = pd.read_csv(table_path, dtype={"path": str})
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise DatasetError(f"cannot read labels file {table_path} as CSV: {exc}") from exc
    return table, str(table_path)


def _merge_labels(files: pd.DataFrame, labels, folder: Path, unreadable: list[dict]) -> pd.DataFrame:
    """The rows of ``files`` that ``labels`` names, in the labels' order, with the labels' columns.

    Label rows naming no readable file are reported as ``"missing"``, files without a row as
    ``"unlabelled"``.
    """
    table, name = _read_labels(labels)
    if "path" not in table.columns:
        raise DatasetError(f"{name} has no 'path' column (columns: {list(table.columns)}); add one with each "
                           "file's path relative to the folder.")
    # Name offending rows by CSV line number (header = line 1), or by position in a DataFrame.
    is_frame = isinstance(labels, pd.DataFrame)
    table = table.reset_index(drop=True)
    table["_row"] = [f"row {i}" if is_frame else f"line {i + 2}" for i in table.index]
    blank = table["path"].map(lambda v: is_missing(v) or str(v).strip() == "")
    # Match on real paths, so "./a.wav", "sub/../a.wav" and absolute or symlinked spellings agree.
    table["path"] = [None if b else os.path.realpath(folder / str(p).strip()) for p, b in zip(table["path"], blank)]
    segment = [c for c in ("start", "duration") if c in table.columns]
    dup = table.duplicated(subset=["path"] + segment, keep=False) & ~blank
    if dup.any():
        shown = [f"{r}: {p}" for r, p in zip(table.loc[dup, "_row"], table.loc[dup, "path"])]
        raise DatasetError(f"{name} names the same file{' segment' if segment else ''} more than once "
                           f"({int(dup.sum())} rows):\n  " + "\n  ".join(shown[:REPORT_LINES])
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
                           f"{shortlist([m['path'] for m in missing[:3]], show=repr)}. Paths are relative to "
                           "the folder.")
    labelled = set(table["path"])
    unlabelled = [{"path": p, "reason": "no row in the labels"} for p in files["path"] if p not in labelled]
    overrides = [c for c in files.columns if c != "path" and c in table.columns]  # the table wins
    # Rows in the labels' order; the table's columns first, then what the folder adds.
    merged = table.drop(columns=["_row"]).merge(files.drop(columns=overrides), on="path", how="inner",
                                                validate="many_to_one" if segment else "one_to_one")
    if segment and "clip_id" not in overrides:
        # Segments of one file share its clip_id: tell them apart by their start.
        starts = pd.to_numeric(merged["start"], errors="coerce") if "start" in merged else None
        repeated = merged["clip_id"].duplicated(keep=False)
        if starts is not None and repeated.any():
            merged.loc[repeated, "clip_id"] = [f"{c}@{s:g}" for c, s in
                                               zip(merged.loc[repeated, "clip_id"], starts[repeated])]
    for col in ("clip_id", "group", "subset"):
        merged[col] = merged[col].map(lambda v: v if is_missing(v) else str(v))
    report(merged, "missing", missing, f"left out rows of {name} that name no readable audio file")
    report(merged, "unlabelled", unlabelled, f"left out audio files of {folder} that {name} does not list")
    return merged
