"""Reference solution of notebook 01 (audio in, features out): where the windows of a clip fall.

:func:`m2v_lab.extract` cuts a clip of ``N`` samples (at the model's rate) into non-overlapping
windows of ``window`` samples.  What is left at the end (``N mod window`` samples) becomes a last,
shorter window when it is at least ``min_last`` samples and at least one receptive field
(``min_samples``, 400) long; otherwise it is dropped — unless it is the whole clip, which is kept
whenever the model can make one frame of it.  Shorter windows are never padded.
"""

from __future__ import annotations

__all__ = ["window_layout"]


def window_layout(n_samples: int, window: int, min_last: int, min_samples: int = 400) -> list[tuple[int, int]]:
    """``(start, length)`` of each window of a clip, in samples, as :func:`m2v_lab.extract` cuts it.

    Parameters
    ----------
    n_samples : int
        The clip's length at the model's rate.
    window, min_last : int
        Window length, and the shortest last window kept, in samples
        (``round(seconds * model.sample_rate)``).
    min_samples : int
        The model's receptive field (``model.min_samples``): a clip shorter than this gives no frame.

    Returns
    -------
    list of (int, int)
        Empty when the clip is shorter than ``min_samples`` (extract lists it in ``feats.failed``).

    >>> window_layout(10 * 16000, 4 * 16000, 16000)    # 10 s in 4 s windows: the 2 s tail is kept
    [(0, 64000), (64000, 64000), (128000, 32000)]
    >>> window_layout(8_800, 4_000, 1_000)             # a tail of 800 samples is shorter than min_last
    [(0, 4000), (4000, 4000)]
    """
    n, window, min_last = int(n_samples), int(window), int(min_last)
    if n < min_samples:
        return []
    full, tail = divmod(n, window)
    layout = [(i * window, window) for i in range(full)]
    if tail and (full == 0 or (tail >= min_last and tail >= min_samples)):
        layout.append((full * window, tail))
    return layout
