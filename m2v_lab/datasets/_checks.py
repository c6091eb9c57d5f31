"""What every loader checks before it builds a frame: which files are usable audio, and its option values.

Whether a file is usable is :mod:`m2v_lab.audio`'s call (:func:`m2v_lab.audio.duration`, the same
header check :func:`m2v_lab.extract` makes), so a loader keeps exactly the files extraction can read.
"""

from __future__ import annotations

import os
from pathlib import Path


from .. import audio
from ..errors import AudioError


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
