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


def flipped_groups(*, n_groups=60, members=3, classes=4, accuracy=0.75, dim=4, seed=0):
    """``(X, y, groups)`` whose best possible accuracy is known: X (1, n_groups*members, dim) float32 shows each
    group's latent class plainly, and a group's label is that class with probability ``accuracy``, else another
    class (the whole group at once, so errors come in groups).  A probe that reads the latent class scores
    ``accuracy`` on new groups."""
    rng = np.random.default_rng(seed)
    latent = rng.permutation(np.arange(n_groups) % classes)
    flipped = rng.random(n_groups) >= accuracy
    label = np.where(flipped, (latent + rng.integers(1, classes, n_groups)) % classes, latent)
    groups = np.repeat(np.arange(n_groups), members)
    X = 8.0 * np.eye(dim)[latent[groups]] + 0.5 * rng.standard_normal((len(groups), dim))
    return X[None].astype(np.float32), label[groups], groups
