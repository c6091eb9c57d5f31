"""Labelled clips as tidy DataFrames: the shipped teaching set, your own folder, common MIR datasets.

Every loader returns the same frame — ``path``, ``clip_id``, ``group``, ``subset``, optional
``split`` / ``start`` / ``duration``, then label columns — so :func:`m2v_lab.extract`, probing
and the widgets take any of them.

One job per module: :mod:`.frame` (the contract, :func:`validate_frame`, :class:`DatasetWarning`),
:mod:`.teaching` (:func:`teaching_set`), :mod:`.folder` (:func:`from_folder`), :mod:`.mir`
(:func:`gtzan`, :func:`nsynth`, :func:`magnatagatune`).  Whether a file is usable audio is
decided by :mod:`m2v_lab.audio`, as at extraction.

Problems with individual files do not stop a loader: unreadable audio, rows that
name missing files and audio left without labels are dropped, listed in a
:class:`DatasetWarning` and kept in ``frame.attrs`` (``"unreadable"``,
``"missing"``, ``"unlabelled"``: lists of ``{"path": ..., "reason": ...}``).
A loader raises :class:`~m2v_lab.errors.DatasetError` when nothing usable is left
or the input is ambiguous (duplicate label rows), and
:class:`~m2v_lab.errors.OptionError` for an option value it cannot use.

>>> import m2v_lab as m2v
>>> notes = m2v.datasets.teaching_set("notes")             # doctest: +SKIP
>>> mine = m2v.datasets.from_folder("~/clips", labels="~/clips/labels.csv")  # doctest: +SKIP
"""

from .folder import from_folder
from .frame import CORE_COLUMNS, OPTIONAL_COLUMNS, DatasetWarning, label_columns, validate_frame
from .mir import GTZAN_GENRES, NSYNTH_QUALITIES, gtzan, magnatagatune, nsynth
from .teaching import TEACHING_SUBSETS, teaching_set

__all__ = [
    "CORE_COLUMNS",
    "OPTIONAL_COLUMNS",
    "TEACHING_SUBSETS",
    "GTZAN_GENRES",
    "NSYNTH_QUALITIES",
    "DatasetWarning",
    "validate_frame",
    "label_columns",
    "teaching_set",
    "from_folder",
    "gtzan",
    "nsynth",
    "magnatagatune",
]
