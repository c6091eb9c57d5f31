"""Collapse monitor: does a target (or representation) still tell clips apart, or only time positions?

data2vec's targets come from its own EMA teacher, so nothing stops them from collapsing to a
function of where a frame sits in the crop (the positional convolution alone can carry that): the
loss then falls while the targets say nothing about the audio.  :func:`collapse_stats` measures it on
a batch of equal-length crops ``x`` of shape ``(clips, frames, dim)``:

``var_clips``
    Mean over frame positions and dimensions of the variance *across clips* at a fixed position:
    how much targets differ between different audio.  0 for a target that depends on position only.
``var_frames``
    Mean over clips and dimensions of the variance *across frames* within a clip.
``position_share``
    Share of the total variance explained by frame position: variance over positions of the
    across-clip mean, bias-corrected for the finite number of clips (the mean of ``n`` clips keeps
    ``1/n`` of their noise), divided by the total variance.  About 0 for audio-driven targets, 1 for
    a position-only target.
``clip_share``
    Share explained by the clip (variance across clips of the per-clip time mean, bias-corrected).
``collapsed``
    ``position_share > position_limit`` or a total variance below ``min_var``.
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["collapse_stats", "POSITION_LIMIT"]

POSITION_LIMIT = 0.5


def collapse_stats(x, *, position_limit: float = POSITION_LIMIT, min_var: float = 1e-6) -> dict[str, float]:
    """Variance decomposition of ``x`` ``(clips, frames, dim)``; see the module docstring.

    Returns
    -------
    dict
        ``var_total``, ``var_clips``, ``var_frames``, ``position_share``, ``clip_share`` (floats) and
        ``collapsed`` (1.0 or 0.0).
    """
    if isinstance(x, torch.Tensor):
        x = x.detach().to("cpu", torch.float64).numpy()
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 3:
        raise ValueError(f"collapse_stats takes (clips, frames, dim), got shape {x.shape}")
    n, t, _ = x.shape
    total = float(x.reshape(-1, x.shape[-1]).var(axis=0).mean())
    var_clips = float(x.var(axis=0, ddof=1).mean()) if n > 1 else float("nan")
    var_frames = float(x.var(axis=1, ddof=1).mean()) if t > 1 else float("nan")
    pos_means = x.mean(axis=0)  # (frames, dim)
    pos_var = float(pos_means.var(axis=0).mean())
    clip_means = x.mean(axis=1)  # (clips, dim)
    clip_var = float(clip_means.var(axis=0).mean())
    if n > 1:
        pos_var = max(0.0, pos_var - var_clips / n)
    if t > 1:
        clip_var = max(0.0, clip_var - var_frames / t)
    share = (lambda v: v / total if total > 0 else float("nan"))
    position_share, clip_share = share(pos_var), share(clip_var)
    collapsed = (total < min_var) or (np.isfinite(position_share) and position_share > position_limit)
    return {"var_total": total, "var_clips": var_clips, "var_frames": var_frames,
            "position_share": position_share, "clip_share": clip_share, "collapsed": float(collapsed)}
