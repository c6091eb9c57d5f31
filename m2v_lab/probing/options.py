"""Checks of probing option values, before any work: each raises OptionError naming the option and what it takes."""

from __future__ import annotations

import math

import numpy as np

from ..errors import OptionError


def whole_number(value, option: str, *, minimum: int) -> int:
    """``value`` as an int if it is a whole number ≥ ``minimum`` (a bool is a mistake, not a 1)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise OptionError(f"{option}={value!r}: give a whole number ≥ {minimum}.")
    return int(value)


def real_number(value, option: str, *, low: float, high: float = math.inf, low_ok: bool = False) -> float:
    """``value`` as a float if it lies in ``(low, high)`` (``[low, high)`` with ``low_ok``)."""
    number = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))
    if not number or not ((low <= value) if low_ok else (low < value)) or not value < high:
        bounds = f"{'[' if low_ok else '('}{low:g}, {high:g})"
        raise OptionError(f"{option}={value!r}: give a number in {bounds}.")
    return float(value)


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
    return tuple(whole_number(s, "seeds", minimum=0) for s in listed)
