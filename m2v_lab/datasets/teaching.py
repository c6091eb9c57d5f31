"""The teaching set: the labelled clips that ship in the repository's ``data/`` folder.

See ``data/README.md`` for how they are rendered, their labels and their groups.
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from ..errors import DatasetError, OptionError
from ..options import string_list
from .frame import shortlist, validate_frame

__all__ = ["TEACHING_SUBSETS", "teaching_set"]

TEACHING_SUBSETS = ("notes", "chords", "rhythm", "music")
# Integer labels that some subsets lack: read as nullable Int64, or the missing rows would make them floats.
_TEACHING_INTEGERS = ("gm_program", "midi_pitch", "octave", "velocity", "tempo_bpm", "transpose")
_DEFAULT_ROOT = Path(__file__).resolve().parents[2] / "data"


def teaching_set(subset=None, *, root: str | os.PathLike | None = None) -> pd.DataFrame:
    """The labelled clips that ship in the repository's ``data/`` folder.

    Parameters
    ----------
    subset : str or sequence of str, optional
        One or several of :data:`TEACHING_SUBSETS` (``"notes"``, ``"chords"``, ``"rhythm"``,
        ``"music"``); default all.  With a subset, label columns that are empty for all its
        rows are dropped.
    root : path, optional
        Folder holding ``labels.csv`` and ``audio/`` (default: ``data/`` next to the
        package; point it at the output of ``python data/make_teaching_set.py --out DIR``).

    Returns
    -------
    DataFrame
        The clip frame; groups are: notes — the instrument (one GM program; four per
        family), chords — the root (all its qualities and instruments), rhythm — the loop
        (pattern + kit, at every tempo), music — the source piece.  With these groups every
        class of ``instrument_family``, ``pitch_class``, ``octave``, ``chord_quality``,
        ``drum_pattern``, ``tempo_bpm`` and ``mode`` is in every training fold of the default
        grouped folds.  See ``data/README.md`` for labels and counts.

    Raises
    ------
    OptionError
        ``subset`` is empty, not strings, or names a subset ``labels.csv`` does not have.
    DatasetError
        ``labels.csv`` or audio files it names are missing (the message says how to regenerate them).
    """
    wanted = None if subset is None else string_list("subset", subset)
    root = Path(root).expanduser() if root is not None else _DEFAULT_ROOT
    table = root / "labels.csv"
    if not table.is_file():
        raise DatasetError(
            f"teaching set not found: {table} does not exist. It ships in the repository's data/ folder; "
            "from an installed copy, regenerate it with `python data/make_teaching_set.py --out DIR` "
            "and pass root=DIR.")
    frame = pd.read_csv(table, dtype={c: "Int64" for c in _TEACHING_INTEGERS})
    if wanted is not None:
        unknown = sorted(set(wanted) - set(frame["subset"]))
        if unknown:
            raise OptionError(f"teaching_set(subset={subset!r}): unknown subset(s) {unknown}; "
                              f"{table} has {sorted(frame['subset'].unique())}.")
        frame = frame[frame["subset"].isin(wanted)]
        frame = frame.dropna(axis=1, how="all")
    frame = frame.assign(path=[str((root / p).resolve()) for p in frame["path"]])
    absent = [p for p in frame["path"] if not os.path.isfile(p)]
    if absent:
        raise DatasetError(f"teaching set at {root} is incomplete: {len(absent)} audio file(s) named in "
                           f"labels.csv are missing, e.g. {shortlist(absent[:3], show=repr)}. Restore data/audio "
                           "from git or regenerate with `python data/make_teaching_set.py --out DIR`.")
    return validate_frame(frame, source=str(table))
