"""The clips' rows as the views use them: one row per clip of the features, which columns are labels,
and which labels a grouped cross-validation can probe, over which clips.

The rows come from ``feats.clip_table`` (the rows given to ``extract``); a frame passed as well is
aligned to the clips, for columns added to it since.
"""

from __future__ import annotations

import html
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..datasets import label_columns
from ..errors import OptionError
from ..probing.inputs import infer_task

__all__ = ["aligned_rows", "label_choices", "label_report", "pooled", "ProbeTask", "probe_tasks", "ALL_CLIPS"]

#: The scope of a probe task over every clip carrying its label, whatever its subset.
ALL_CLIPS = "(all)"

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


# --- what can be probed -------------------------------------------------------------------------------

@dataclass(frozen=True)
class ProbeTask:
    """A label and the clips a probe of it is run over.

    Attributes
    ----------
    label : str
        The label column.
    scope : str
        :data:`ALL_CLIPS` (every clip carrying the label) or the name of one ``subset``.
    positions : ndarray of int
        The clips probed: positions among the rows (all carry the label).
    n_groups : int or None
        Groups the folds keep whole (None: not grouped).
    named_by : str or None
        The label column that names those groups, when one does (``instrument`` for the teaching
        set's notes, ``chord_root`` for its chords).
    """

    label: str
    scope: str
    positions: np.ndarray
    n_groups: int | None
    named_by: str | None = None

    @property
    def text(self) -> str:
        """E.g. ``"notes · 128 clips · 32 groups (instrument)"``."""
        where = "all clips" if self.scope == ALL_CLIPS else self.scope
        if self.n_groups is None:
            grouping = "not grouped"
        else:
            grouping = f"{self.n_groups} groups" + (f" ({self.named_by})" if self.named_by else "")
        return f"{where} · {len(self.positions)} clips · {grouping}"


def probe_tasks(rows: pd.DataFrame, *, groups: str | None,
                cv: int) -> tuple[dict[str, list[ProbeTask]], dict[str, str]]:
    """The labels a grouped ``cv``-fold probe can be run on, each with the clips it is run over.

    A label is probed only over the clips that carry it, and over one ``subset`` at a time when its
    clips come from several (their groups may mean different things: an instrument, a chord root), or
    over all of them when that is sound too.  A (label, clips) task is offered when

    - the label has two or more values there, and the clips fill ``cv`` folds (``cv`` groups or more);
    - classes (labels that are not real numbers) each have ``cv`` clips or more, in two groups or more
      (a class in one group is tested only on folds where none of it was trained on);
    - it does not leak: when the label follows a column that names the groups of some subset (e.g.
      ``instrument_family`` follows ``instrument``, which names the notes' groups) while one value of
      that column is spread over several groups here (the teaching set's chord instruments play
      every root), a fold tests sources it was trained on.

    Parameters
    ----------
    rows : DataFrame
        One row per clip.
    groups : str or None
        The column whose values the folds keep together (None: not grouped).
    cv : int

    Returns
    -------
    offered : dict of str to list of ProbeTask
        The labels that can be probed, each with its tasks (the first is the default).
    left_out : dict of str to str
        Why each other label cannot be probed; keys ``"label over clips"`` say why a label that is
        offered is not offered over some clips because they would leak.
    """
    report = label_report(rows)
    namers = _group_namers(rows, groups)
    sources = list(dict.fromkeys(c for columns in namers.values() for c in columns))
    offered: dict[str, list[ProbeTask]] = {}
    left_out: dict[str, str] = {}
    for column, why in report.items():
        if why is not None:
            left_out[column] = why
            continue
        tasks, reasons = [], {}
        for scope, positions in _scopes(rows, column):
            reason = _unprobeable(rows, column, positions, groups=groups, cv=cv, sources=sources)
            if reason is None:
                part = rows.iloc[positions]
                n_groups = int(part[groups].nunique()) if groups else None
                named_by = (namers.get(scope) or [None])[0]  # subsets' groups may mean different things
                tasks.append(ProbeTask(column, scope, positions, n_groups, named_by))
            else:
                reasons[scope] = reason
        if tasks:
            offered[column] = tasks
            leaks: dict[str, list[str]] = {}  # clips left out for a leak, said once per reason
            for scope, reason in reasons.items():
                if reason.startswith("leaks"):
                    leaks.setdefault(reason, []).append("all clips" if scope == ALL_CLIPS else scope)
            for reason, scopes in leaks.items():
                left_out[f"{column} over {' or '.join(scopes)}"] = reason
        else:
            left_out[column] = next(iter(reasons.values()))
    return offered, left_out


def left_out_note(left_out: dict[str, str], *, limit: int = 6) -> str:
    """One short line (HTML) saying which labels are not offered and why (each reason said once)."""
    if not left_out:
        return ""
    by_reason: dict[str, list[str]] = {}
    for what, why in left_out.items():
        by_reason.setdefault(why, []).append(what)
    items = [f"{html.escape(', '.join(whats))} ({html.escape(why)})" for why, whats in by_reason.items()]
    more = f" and {len(items) - limit} more (see .left_out)" if len(items) > limit else ""
    return f"<small>not offered: {'; '.join(items[:limit])}{more}</small>"


def _candidates(rows: pd.DataFrame, groups: str | None) -> list[str]:
    return [c for c in label_columns(rows) if c not in _BOOKKEEPING and c not in (groups, "subset")]


def _parts(rows: pd.DataFrame):
    """(scope name, rows) of each subset, or of all rows when there is no ``subset`` column."""
    if "subset" not in rows.columns or rows["subset"].isna().any():
        return [(ALL_CLIPS, rows)]
    return [(str(name), part) for name, part in rows.groupby("subset", sort=False)]


def _group_namers(rows: pd.DataFrame, groups: str | None) -> dict[str, list[str]]:
    """Per subset, the label columns that name its groups: one value per group and each value in one
    group, on every clip of the subset, with groups of two clips or more (the notes' ``instrument``)."""
    if groups is None or groups not in rows.columns:
        return {}
    namers = {}
    for scope, part in _parts(rows):
        if part[groups].isna().any() or part[groups].nunique() < 2 or part.groupby(groups).size().max() < 2:
            continue
        found = []
        for column in _candidates(rows, groups):
            values = part[column]
            if values.isna().any():
                continue
            if (part.groupby(groups)[column].nunique().max() == 1
                    and part.groupby(column)[groups].nunique().max() == 1):
                found.append(column)
        if found:
            namers[scope] = found
    return namers


def _scopes(rows: pd.DataFrame, column: str) -> list[tuple[str, np.ndarray]]:
    """The clips a label could be probed over: all that carry it, and each subset's when they span several."""
    carrying = rows[column].notna().to_numpy()
    everything = [(ALL_CLIPS, np.flatnonzero(carrying))]
    if column == "subset" or "subset" not in rows.columns or rows["subset"].isna().any():
        return everything
    subsets = rows.loc[carrying, "subset"]
    names = list(dict.fromkeys(subsets))
    if len(names) == 1:
        return [(str(names[0]), everything[0][1])]
    mine = rows["subset"].to_numpy()
    return everything + [(str(name), np.flatnonzero(carrying & (mine == name))) for name in names]


def _show(value) -> str:
    return repr(value.item() if isinstance(value, np.generic) else value)


def _unprobeable(rows, column, positions, *, groups, cv, sources) -> str | None:
    """Why ``column`` cannot be probed over ``positions`` (None when it can)."""
    part = rows.iloc[positions]
    y = part[column]
    if y.nunique() < 2:
        return "one value"
    if groups is not None and part[groups].isna().any():
        return f"{int(part[groups].isna().sum())} clips have no {groups}"
    n_groups = part[groups].nunique() if groups is not None else len(part)
    if n_groups < cv:
        unit = "groups" if groups is not None else "clips"
        return f"{n_groups} {unit}, fewer than {cv} folds"
    if infer_task(np.asarray(y)) == "multiclass":
        if groups is not None:
            spread = part.groupby(column)[groups].nunique()
            if spread.min() < 2:
                return f"{_show(spread.idxmin())} is in one group only"
        counts = y.value_counts()
        if counts.min() < cv:
            return f"{_show(counts.idxmin())} has {int(counts.min())} clips, fewer than {cv} folds"
    if groups is not None:
        return _leak(rows, part, column, groups, sources)
    return None


def _leak(rows, part, column, groups, sources) -> str | None:
    """A column naming groups somewhere that the label follows, one of whose values spans groups here."""
    for source in sources:
        if source == column or part[source].isna().any():
            continue
        if part.groupby(source)[column].nunique().max() > 1:
            continue  # the label does not follow it
        both = rows[[source, column]].dropna()
        if both[source].nunique() <= both[column].nunique():
            continue  # no finer than the label: it is the label under another name
        spans = part.groupby(source)[groups].nunique()
        if spans.max() >= 2:
            return f"leaks: follows {source}, and {_show(spans.idxmax())} is in {int(spans.max())} groups"
    return None
