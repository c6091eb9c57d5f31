"""The clip frame as the views use it: one row per extracted clip, and which columns are labels."""

from __future__ import annotations

import pandas as pd

from ..datasets import label_columns
from ..errors import FeaturesError

__all__ = ["aligned_rows", "label_choices", "pooled"]


def aligned_rows(feats, clips) -> pd.DataFrame:
    """Rows of ``clips`` for the clips in ``feats``, in feature order, with a fresh index."""
    if not isinstance(clips, pd.DataFrame):
        raise FeaturesError(f"clips must be the DataFrame passed to extract (got {type(clips).__name__}); "
                            "load one with m2v_lab.datasets.")
    return feats.align(clips).reset_index(drop=True)


def label_choices(rows: pd.DataFrame, *, max_levels: int | None = None) -> list[str]:
    """``subset`` and the label columns with at least two distinct values (and at most ``max_levels``)."""
    columns = (["subset"] if "subset" in rows.columns else []) + label_columns(rows)
    out = []
    for column in columns:
        levels = rows[column].nunique(dropna=True)
        if levels >= 2 and (max_levels is None or levels <= max_levels):
            out.append(column)
    return out


def pooled(feats):
    """Time-pooled features: ``feats`` itself, or the frame-level features mean-pooled."""
    return feats.pool("mean") if feats.pooling is None else feats
