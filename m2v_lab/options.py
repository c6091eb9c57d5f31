"""Checks of option values, shared by every module: each raises :class:`~m2v_lab.errors.OptionError`
naming the option and the values it takes.

Options are checked before any work starts, so a typo costs nothing; values that are wrong only
for the data at hand (``k`` of mutual kNN against ``n``) are checked where the data is known,
with the same error.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from .errors import OptionError

__all__ = ["one_of", "flag", "whole_number", "real_number", "string_list", "random_generator"]


def one_of(option: str, value, allowed: Sequence[str]) -> str:
    """``value`` if it is one of the strings ``allowed``."""
    if not isinstance(value, str) or value not in allowed:
        raise OptionError(f"{option}={value!r}: use one of {tuple(allowed)}.")
    return value


def flag(option: str, value) -> bool:
    """``value`` as a bool, if it is one (a truthy string or array is a mistake, not a yes)."""
    if not isinstance(value, (bool, np.bool_)):
        raise OptionError(f"{option}={value!r}: use True or False.")
    return bool(value)


def whole_number(option: str, value, *, minimum: int, below: int | None = None, why: str = "") -> int:
    """``value`` as an int if it is a whole number with ``minimum ≤ value`` (and ``value < below``).

    A bool is a mistake, not a 1.
    """
    ok = isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))
    if not ok or value < minimum or (below is not None and value >= below):
        upper = "" if below is None else f" and < {below}{why}"
        raise OptionError(f"{option}={value!r}: give a whole number ≥ {minimum}{upper}.")
    return int(value)


def real_number(option: str, value, *, low: float, high: float = math.inf, low_ok: bool = False,
                high_ok: bool = False, hint: str = "") -> float:
    """``value`` as a float if it lies between ``low`` and ``high`` (each bound included only when asked)."""
    ok = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))
    if not ok or not ((low <= value) if low_ok else (low < value)) or not ((value <= high) if high_ok
                                                                          else (value < high)):
        bounds = f"{'[' if low_ok else '('}{low:g}, {high:g}{']' if high_ok else ')'}"
        raise OptionError(f"{option}={value!r}: give a number in {bounds}{hint}.")
    return float(value)


def string_list(option: str, value) -> list[str]:
    """One string or a sequence of strings as a non-empty list (a single string is one item, not letters)."""
    items = [value] if isinstance(value, str) else value
    try:
        items = list(items)
    except TypeError:
        items = []
    if not items or not all(isinstance(v, str) and v for v in items):
        raise OptionError(f"{option}={value!r}: give a non-empty string or a non-empty list of them.")
    return items


def random_generator(seed) -> np.random.Generator:
    """The random generator of ``seed`` (an int ≥ 0, None, or a Generator)."""
    try:
        return np.random.default_rng(seed)
    except (TypeError, ValueError) as exc:
        raise OptionError(f"seed={seed!r}: {exc}; give a whole number ≥ 0 (or None).") from None
