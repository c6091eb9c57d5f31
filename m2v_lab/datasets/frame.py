"""The clip frame: the one tidy table every loader returns, its validator, and how loaders report what they drop.

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

Problems with individual files do not stop a loader: the rows are dropped, listed in one
:class:`DatasetWarning` per kind and kept in ``frame.attrs`` under that kind
(``"unreadable"``, ``"missing"``, ``"unlabelled"``: lists of ``{"path": ..., "reason": ...}``).
"""

from __future__ import annotations

import math
import os
import sys
import warnings

import pandas as pd

from ..errors import DatasetError

__all__ = ["CORE_COLUMNS", "OPTIONAL_COLUMNS", "DatasetWarning", "validate_frame", "label_columns"]

CORE_COLUMNS = ("path", "clip_id", "group", "subset")
OPTIONAL_COLUMNS = ("split", "start", "duration")
REPORT_LINES = 20  # a message lists this many offending entries, then counts the rest
_PACKAGE = __name__.rpartition(".")[0]


class DatasetWarning(UserWarning):
    """Some files or label rows were left out; the message lists them."""


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
        The same rows, core columns first, then the optional ones, then the labels;
        ``RangeIndex``; ``attrs`` kept.

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
            problems.append(f"column {col!r} must hold non-empty strings; rows {shortlist(frame.index[bad])} "
                            "do not")
    relative = ~frame["path"].map(lambda p: isinstance(p, str) and os.path.isabs(p))
    if relative.any():
        problems.append(f"'path' must be absolute; rows {shortlist(frame.index[relative])} are not")
    dup = frame["clip_id"].duplicated(keep=False)
    if dup.any():
        names = sorted(set(frame.loc[dup, "clip_id"].astype(str)))
        problems.append(f"'clip_id' must be unique; repeated: {shortlist(names, show=repr)}")
    if "split" in frame.columns:
        bad = ~frame["split"].map(lambda v: is_missing(v) or isinstance(v, str))
        if bad.any():
            problems.append(f"'split' must be strings or missing; rows {shortlist(frame.index[bad])} are not")
    for col, low_ok in (("start", True), ("duration", False)):
        if col not in frame.columns:
            continue
        values = pd.to_numeric(frame[col], errors="coerce")
        bad = values.isna() & ~frame[col].map(is_missing)
        bad |= (values < 0) if low_ok else (values <= 0)
        if bad.any():
            need = ">= 0" if low_ok else "> 0"
            problems.append(f"{col!r} must be seconds {need} or missing; rows {shortlist(frame.index[bad])} "
                            "are not")
    if problems:
        raise DatasetError(f"{source} breaks the clip-frame contract:\n  - " + "\n  - ".join(problems))
    attrs = dict(frame.attrs)
    ordered = [c for c in CORE_COLUMNS + OPTIONAL_COLUMNS if c in frame.columns]
    out = frame[ordered + [c for c in frame.columns if c not in ordered]].reset_index(drop=True)
    out.attrs = attrs
    return out


def label_columns(frame: pd.DataFrame) -> list[str]:
    """The label columns of a clip frame: every column but the core and optional ones, in frame order.

    Parameters
    ----------
    frame : DataFrame
        A clip frame.

    Returns
    -------
    list of str
    """
    reserved = set(CORE_COLUMNS) | set(OPTIONAL_COLUMNS)
    return [c for c in frame.columns if c not in reserved]


# --- shared by the loaders (package-private) ------------------------------------------------------------

def is_missing(value) -> bool:
    """True for the values pandas and CSV readers use for "no value": None, NA, NaN."""
    return value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value))


def shortlist(items, *, show=str) -> str:
    """The first :data:`REPORT_LINES` items, comma-separated, then how many more there are."""
    items = list(items)
    shown = ", ".join(show(i) for i in items[:REPORT_LINES])
    return shown + (f" … (+{len(items) - REPORT_LINES} more)" if len(items) > REPORT_LINES else "")


def entry_lines(entries: list[dict]) -> list[str]:
    """One indented line per ``{"path", "reason"}`` entry, for the first :data:`REPORT_LINES` of them.

    The path is left out where the reason already names it (audio's messages do).
    """
    return [f"  {e['reason']}" if e["path"] in e["reason"] else f"  {e['path']}: {e['reason']}"
            for e in entries[:REPORT_LINES]]


def report(frame: pd.DataFrame, kind: str, entries: list[dict], headline: str) -> None:
    """Keep ``entries`` in ``frame.attrs[kind]`` and, when there are any, warn with one line per entry.

    The warning names the first caller outside this package (the user's line), however deep the
    loader called this from.
    """
    frame.attrs[kind] = entries
    if not entries:
        return
    lines = entry_lines(entries)
    if len(entries) > REPORT_LINES:
        lines.append(f"  … and {len(entries) - REPORT_LINES} more (all in frame.attrs[{kind!r}])")
    level, caller = 1, sys._getframe()
    while caller is not None and caller.f_globals.get("__name__", "").startswith(_PACKAGE + "."):
        caller, level = caller.f_back, level + 1
    warnings.warn(f"{headline} ({len(entries)}):\n" + "\n".join(lines), DatasetWarning, stacklevel=level)
