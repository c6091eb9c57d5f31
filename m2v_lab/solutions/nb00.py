"""Reference solution of notebook 00 (quickstart): how many frames the conv front end makes of a clip.

The m-a-p models (music2vec-v1, MERT) share wav2vec 2.0's convolutional front end: seven 1-D
convolutions with kernels (10, 3, 3, 3, 3, 2, 2) and strides (5, 2, 2, 2, 2, 2, 2).  Their strides
multiply to 320 samples between frames, and one frame sees 400 samples (the receptive field), so
``N`` samples give ``floor((N - 400) / 320) + 1`` frames, and none when ``N < 400``.
"""

from __future__ import annotations

__all__ = ["expected_frames", "RECEPTIVE_FIELD", "STRIDE"]

#: Samples one frame sees, and samples between two frames, at the model's own sample rate.
RECEPTIVE_FIELD, STRIDE = 400, 320


def expected_frames(n_samples: int) -> int:
    """Frames the m-a-p conv front end makes of ``n_samples`` samples (at the model's rate).

    >>> expected_frames(48_000)      # 3 s at 16 kHz
    149
    >>> expected_frames(399)         # shorter than one receptive field
    0
    """
    n = int(n_samples)
    return 0 if n < RECEPTIVE_FIELD else (n - RECEPTIVE_FIELD) // STRIDE + 1
