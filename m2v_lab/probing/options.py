"""Checks of option values only probes have (the shared ones are in :mod:`m2v_lab.options`)."""

from __future__ import annotations


import numpy as np

from ..errors import OptionError
from ..options import whole_number


def positive_grid(values, option: str) -> np.ndarray:
    """Hyper-parameter candidates as a sorted float array, if a non-empty list of numbers > 0."""
    try:
        arr = np.atleast_1d(np.asarray(values, dtype=np.float64))
    except (TypeError, ValueError):
        arr = np.array([np.nan])
    if arr.ndim != 1 or arr.size == 0 or not np.isfinite(arr).all() or (arr <= 0).any():
        raise OptionError(f"{option} must be a non-empty list of positive numbers; got {values!r}.")
    return np.sort(arr)


def check_inner_folds(n_values: int, cv: int, what: str) -> None:
    """Choosing among several values by inner CV over the other outer folds needs two of them left."""
    if n_values > 1 and cv < 3:
        raise OptionError(f"cv={cv} leaves one training fold, too few to choose {what} inside it: use cv ≥ 3, or "
                          f"a single {what}.")


def seed_list(seeds, default: tuple[int, ...]) -> tuple[int, ...]:
    """``seeds`` (an int, a sequence of them, or None for ``default``) as a non-empty tuple of ints."""
    listed = default if seeds is None else [seeds] if np.isscalar(seeds) else list(seeds)
    if not listed:
        raise OptionError("seeds is empty: give at least one seed (e.g. seeds=(0,)).")
    return tuple(whole_number("seeds", s, minimum=0) for s in listed)
