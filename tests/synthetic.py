"""Synthetic layer features for probing tests: segments of tracks, one layer carrying the class."""

import numpy as np


def tracks(*, layers=5, n_tracks=40, segments=3, dim=12, classes=4, informative=2, signal=2.0,
           track_noise=0.5, seed=0):
    """``(X, y, groups)``: X (layers, n_tracks*segments, dim) float32 where only layer ``informative``
    carries the per-track class; ``track_noise`` gives every layer a per-track offset (track identity)."""
    rng = np.random.default_rng(seed)
    label = np.arange(n_tracks) % classes
    rng.shuffle(label)
    groups = np.repeat(np.arange(n_tracks), segments)
    y = label[groups]
    X = rng.standard_normal((layers, len(y), dim))
    if track_noise:
        X += track_noise * rng.standard_normal((layers, n_tracks, dim))[:, groups]
    X[informative, :, :classes] += signal * np.eye(classes)[y]
    return X.astype(np.float32), y, groups
