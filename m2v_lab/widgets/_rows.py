"""The clips' rows as the views use them: one row per clip of the features, and which columns are labels.

The rows come from ``feats.clip_table`` (the rows given to ``extract``); a frame passed as well is
aligned to the clips, for columns added to it since.
"""

from __future__ import annotations

import pandas as pd

from ..datasets import label_columns
from ..errors import OptionError

__all__ = ["aligned_rows", "label_choices", "label_report", "pooled"]

#: Columns Features adds to clip_table to say where each clip came from: bookkeeping, not labels.
_BOOKKEEPING = ("source_index", "source_part")


def aligned_rows(feats, clips=None) -> pd.DataFrame:
    """One row per clip of ``feats``, in feature order, with a fresh index.

    Parameters
    ----------
    feats : Features
    clips : DataFrame, optional
        The frame given to ``extract`` (or one holding its rows), e.g. with label columns added since;
        default ``feats.clip_table``.

    Raises
    ------
    OptionError
        ``clips`` is not a DataFrame.
    FeaturesError
        The clips' rows are not in ``clips``.
    """
    if clips is None:
        return feats.clip_table.reset_index(drop=True)
    if not isinstance(clips, pd.DataFrame):
        raise OptionError(f"clips must be the DataFrame passed to extract, or None for feats.clip_table (got "
                          f"{type(clips).__name__}).")
    return feats.align(clips).reset_index(drop=True)


def label_report(rows: pd.DataFrame, *, max_levels: int | None = None) -> dict[str, str | None]:
    """Each label column (``subset`` first, then :func:`~m2v_lab.datasets.label_columns`) and why a view
    cannot use it: None when it can (2 or more distinct values, at most ``max_levels``), else the reason,
    e.g. ``"one value"``, ``"no values"``, ``"57 values, over 40"``."""
    columns = (["subset"] if "subset" in rows.columns else []) + [
        c for c in label_columns(rows) if c not in _BOOKKEEPING]
    report = {}
    for column in columns:
        levels = rows[column].nunique(dropna=True)
        if levels < 2:
            report[column] = "one value" if levels else "no values"
        elif max_levels is not None and levels > max_levels:
            report[column] = f"{levels} values, over {max_levels}"
        else:
            report[column] = None
    return report


def label_choices(rows: pd.DataFrame, *, max_levels: int | None = None) -> list[str]:
    """The label columns a view can filter, colour or probe by (see :func:`label_report`)."""
    return [column for column, why in label_report(rows, max_levels=max_levels).items() if why is None]


def pooled(feats):
    """Time-pooled features: ``feats`` itself, or the frame-level features mean-pooled."""
    return feats.pool("mean") if feats.pooling is None else feats
