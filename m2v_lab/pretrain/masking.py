"""Span masks over the model's frames, as data2vec, HuBERT and MERT pre-training draw them.

Two ways to say how much is masked (:class:`MaskConfig`):

``mode="spans"`` (default; fairseq's ``compute_mask_indices`` and transformers' ``_compute_mask_indices``)
    ``int(prob * frames / span + u)`` span starts (``u`` uniform in [0, 1), one per batch) are drawn
    without replacement from the ``frames - span + 1`` possible starts, and each masks ``span``
    frames.  Spans may overlap, so ``prob`` is an upper bound: data2vec's 0.65 with spans of 10 masks
    about 49 % of frames, HuBERT's / MERT's 0.8 about 57 %.  :meth:`MaskConfig.expected_fraction`
    gives the exact expectation.  Given a ``numpy.random.RandomState`` the draw is bit-identical to
    transformers' function under the same global seed.
``mode="exact"``
    exactly ``round(prob * frames)`` frames of every row, in non-overlapping spans of ``span``
    (the last one shorter when ``span`` does not divide the count), placed uniformly at random.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..errors import OptionError

__all__ = ["MaskConfig", "span_mask", "DATA2VEC_MASK", "HUBERT_MASK"]

_MODES = ("spans", "exact")


@dataclass(frozen=True)
class MaskConfig:
    """How frames are masked.

    Attributes
    ----------
    prob : float
        ``"spans"``: span starts per frame × ``span`` (fairseq's ``mask_prob``); ``"exact"``: the masked
        fraction.
    span : int
        Frames per span (``mask_length``).
    mode : {"spans", "exact"}
    min_spans : int
        At least this many spans per row (``"spans"`` only; transformers' ``mask_time_min_masks``).
    """

    prob: float = 0.65
    span: int = 10
    mode: str = "spans"
    min_spans: int = 1

    def __post_init__(self):
        if self.mode not in _MODES:
            raise OptionError(f"MaskConfig mode={self.mode!r} must be one of {_MODES}.")
        if not 0.0 <= float(self.prob) <= 1.0:
            raise OptionError(f"MaskConfig prob={self.prob!r} must be in [0, 1].")
        if int(self.span) < 1 or int(self.span) != self.span:
            raise OptionError(f"MaskConfig span={self.span!r} must be an integer >= 1.")
        if int(self.min_spans) < 0:
            raise OptionError(f"MaskConfig min_spans={self.min_spans!r} must be >= 0.")

    def _num_spans(self, frames: int, u: float) -> int:
        """transformers' ``compute_num_masked_span`` for an unpadded row."""
        return self._capped(int(self.prob * frames / self.span + u), frames)

    def _capped(self, n: int, frames: int) -> int:
        n = max(n, self.min_spans)
        if n * self.span > frames:
            n = frames // self.span
        if frames - (self.span - 1) < n:
            n = max(frames - (self.span - 1), 0)
        return n

    def expected_fraction(self, frames: int) -> float:
        """Expected share of ``frames`` frames that :func:`span_mask` masks (exact, not simulated)."""
        frames = int(frames)
        if self.mode == "exact":
            return round(self.prob * frames) / frames
        if self.span > frames:
            return 0.0
        a = self.prob * frames / self.span
        lo = math.floor(a)
        cases = [(lo, 1.0 - (a - lo)), (lo + 1, a - lo)]  # int(a + u) for u ~ U[0, 1)
        starts = frames - self.span + 1
        total = 0.0
        for raw, weight in cases:
            if weight <= 0:
                continue
            n = self._capped(raw, frames)
            covered = 0.0
            for t in range(frames):
                w = min(t, starts - 1) - max(0, t - self.span + 1) + 1  # starts whose span covers t
                # P(no chosen start among w of `starts`) = C(starts - w, n) / C(starts, n)
                if starts - w < n:
                    p_free = 0.0
                else:
                    p_free = math.exp(math.lgamma(starts - w + 1) - math.lgamma(starts - w - n + 1)
                                      - math.lgamma(starts + 1) + math.lgamma(starts - n + 1))
                covered += 1.0 - p_free
            total += weight * covered / frames
        return total


#: data2vec-audio base (fairseq): mask_prob 0.65, mask_length 10.
DATA2VEC_MASK = MaskConfig(0.65, 10, "spans")
#: HuBERT / MERT (fairseq): mask_prob 0.8, mask_length 10.
HUBERT_MASK = MaskConfig(0.8, 10, "spans")


def _spans(config: MaskConfig, batch: int, frames: int, rng) -> np.ndarray:
    mask = np.zeros((batch, frames), dtype=bool)
    if config.span > frames:
        return mask
    legacy = isinstance(rng, np.random.RandomState)
    u = rng.rand(1).item() if legacy else float(rng.random())
    n = config._num_spans(frames, u)
    if n == 0:
        return mask
    offsets = np.arange(config.span)
    for b in range(batch):
        if legacy:  # the exact calls transformers' _compute_mask_indices makes
            starts = rng.choice(np.arange(frames - (config.span - 1)), n, replace=False)
        else:
            starts = rng.choice(frames - (config.span - 1), n, replace=False)
        mask[b, (starts[:, None] + offsets[None, :]).ravel()] = True
    return mask


def _exact(config: MaskConfig, batch: int, frames: int, rng) -> np.ndarray:
    mask = np.zeros((batch, frames), dtype=bool)
    n_mask = int(round(config.prob * frames))
    if n_mask == 0:
        return mask
    k = -(-n_mask // config.span)
    lengths = np.full(k, config.span)
    lengths[-1] = n_mask - config.span * (k - 1)
    for b in range(batch):
        order = rng.permutation(lengths)
        # k spans of total length n_mask in `frames`, non-overlapping, uniformly: choose k of the
        # (frames - n_mask + k) slots, then stretch each chosen slot to its span's length
        slots = np.sort(rng.choice(frames - n_mask + k, k, replace=False))
        starts = slots + np.concatenate([[0], np.cumsum(order[:-1] - 1)])
        for s, length in zip(starts, order):
            mask[b, s:s + length] = True
    return mask


def span_mask(batch: int, frames: int, config: MaskConfig = DATA2VEC_MASK, *, rng) -> np.ndarray:
    """A boolean mask ``(batch, frames)``, True where a frame is masked.

    Parameters
    ----------
    batch, frames : int
        Rows (crops) and frames per row.
    config : MaskConfig
    rng : numpy.random.Generator or numpy.random.RandomState
        The only source of randomness: equal states give equal masks.

    Returns
    -------
    np.ndarray of bool, shape (batch, frames)
    """
    if not isinstance(rng, (np.random.Generator, np.random.RandomState)):
        raise OptionError(f"rng must be a numpy Generator or RandomState, not {type(rng).__name__}.")
    if frames < 1 or batch < 1:
        raise OptionError(f"span_mask needs batch >= 1 and frames >= 1 (got {batch}, {frames}).")
    return (_spans if config.mode == "spans" else _exact)(config, int(batch), int(frames), rng)
