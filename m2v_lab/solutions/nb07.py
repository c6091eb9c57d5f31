"""Reference solution of notebook 07 (your own music): check a labels table against its folder first."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

__all__ = ["missing_rows"]


def missing_rows(folder: str | os.PathLike, labels: pd.DataFrame) -> list[str]:
    """The ``path`` values of a labels table that name no file in ``folder``, in row order.

    Run it before :func:`m2v_lab.datasets.from_folder`: a row whose file is not there is a typo,
    a renamed file or a file you have not copied yet, and every such row is a clip your
    experiment silently lacks.

    Parameters
    ----------
    folder : path
        The folder the paths are relative to (absolute paths are taken as they are).
    labels : DataFrame
        A labels table with a ``path`` column, as written to ``labels.csv``.

    Returns
    -------
    list of str
        The paths as written in the table (blank ones as ``""``).
    """
    base = Path(folder)
    out = []
    for value in labels["path"]:
        text = "" if pd.isna(value) else str(value).strip()
        if not text or not (base / text).is_file():
            out.append(text)
    return out
