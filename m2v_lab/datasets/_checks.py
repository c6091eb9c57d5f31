"""What every loader checks before it builds a frame: which files are usable audio, and its option values.

Whether a file is usable is :mod:`m2v_lab.audio`'s call (:func:`m2v_lab.audio.duration`, the same
header check :func:`m2v_lab.extract` makes), so a loader keeps exactly the files extraction can read.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .. import audio
from ..errors import AudioError, OptionError


def file_problem(path: str | os.PathLike) -> str | None:
    """Why ``path`` cannot be used as audio (a message naming it and the fix), or None when it can.

    Parameters
    ----------
    path : path
        An audio file.

    Returns
    -------
    str or None
        Audio's own message for a missing, empty or undecodable file; a message for a header
        without samples; None for a file with at least one frame of audio.
    """
    try:
        seconds = audio.duration(audio.AudioSource(clip_id=str(path), path=path))
    except AudioError as exc:
        return str(exc)
    except OSError as exc:  # e.g. permission denied on stat, or the file vanished mid-scan
        return f"cannot read {path}: {exc}"
    if seconds <= 0:
        return f"{path} holds no audio frames: re-export or re-download it, or leave it out."
    return None


def split_readable(paths, check_audio: bool) -> tuple[list, list[dict]]:
    """Split ``paths`` into readable ones and ``{"path", "reason"}`` entries for the rest.

    Parameters
    ----------
    paths : iterable of path
        Files to check, kept in order.
    check_audio : bool
        Without the check every path counts as readable (for datasets too large to open every header).

    Returns
    -------
    (list, list of dict)
        The readable paths as given, and one entry per unusable file (see :func:`file_problem`).
    """
    if not check_audio:
        return list(paths), []
    good, bad = [], []
    for p in paths:
        reason = file_problem(Path(p))
        if reason is None:
            good.append(p)
        else:
            bad.append({"path": str(p), "reason": reason})
    return good, bad


def flag(option: str, value) -> bool:
    """``value`` as a bool, or :class:`OptionError` naming ``option`` when it is not True or False."""
    if not isinstance(value, (bool, np.bool_)):
        raise OptionError(f"{option}={value!r}: use True or False.")
    return bool(value)


def string_list(option: str, value) -> list[str]:
    """One string or a sequence of strings as a non-empty list, or :class:`OptionError` naming ``option``."""
    items = [value] if isinstance(value, str) else value
    try:
        items = list(items)
    except TypeError:
        items = []
    if not items or not all(isinstance(v, str) and v for v in items):
        raise OptionError(f"{option}={value!r}: give a non-empty string or a non-empty list of them.")
    return items
