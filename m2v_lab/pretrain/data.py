"""Training audio: tracks decoded once into memory, per-frame targets, random frame-aligned crops.

:class:`AudioCorpus` decodes a folder of audio (any format :mod:`m2v_lab.audio` reads) once, mono at
16 kHz, and keeps it in memory (2 h ≈ 0.5 GB of float32) — the size of corpus a CPU can pre-train on.
Per-frame targets (codewords, standardised CQT frames) are computed once per track on the model's
frame grid and stored with it.  :class:`CropSampler` draws crops whose first sample is a multiple of
320, so crop frame ``j`` *is* track frame ``f0 + j`` and its targets are a slice; each crop is then
z-normalised as the model's processor does (``normalize="crop"``) or with the whole track's statistics
(``"track"``, as fairseq and MARBLE).
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from .. import audio as m2v_audio
from ..errors import AudioError, OptionError
from .config import FRAME_HOP, FRAME_WINDOW, SAMPLE_RATE
from .targets import Codebook, FrameStandardizer, frame_count, frame_features

__all__ = ["AudioCorpus", "CropSampler", "Batch"]

_CHUNK_FRAMES = 1500   # features are computed 30 s at a time ...
_CONTEXT_FRAMES = 20   # ... with 0.4 s of real audio either side (chroma / CQT windows reach 0.26 s)


@dataclass
class Batch:
    """One training batch.

    Attributes
    ----------
    input_values : tensor (batch, samples) float32
        Normalised crops.
    mask : tensor (batch, frames) bool
        True where a frame is masked.
    targets : dict of str to tensor
        ``(batch, frames)`` int64 codes or ``(batch, frames, dim)`` float32 frames.
    refs : list of (source, track, first_frame)
    """

    input_values: torch.Tensor
    mask: torch.Tensor
    targets: dict = field(default_factory=dict)
    refs: list = field(default_factory=list)

    def to(self, device) -> "Batch":
        return Batch(self.input_values.to(device), self.mask.to(device),
                     {k: v.to(device) for k, v in self.targets.items()}, self.refs)


def _track_norm(wave: np.ndarray) -> np.ndarray:
    return m2v_audio.normalize(wave)


def chunked_features(wave: np.ndarray, kind: str) -> np.ndarray:
    """:func:`~m2v_lab.pretrain.targets.frame_features` of a long track, 30 s at a time with context.

    Equal to computing it in one piece away from the chunk seams' context limits (features whose
    windows reach under 0.4 s), with bounded memory.
    """
    n = frame_count(len(wave))
    if n <= _CHUNK_FRAMES:
        return frame_features(wave, kind)
    out = []
    for f0 in range(0, n, _CHUNK_FRAMES):
        f1 = min(n, f0 + _CHUNK_FRAMES)
        g0 = max(0, f0 - _CONTEXT_FRAMES)
        g1 = min(n, f1 + _CONTEXT_FRAMES)
        end = len(wave) if g1 == n else (g1 - 1) * FRAME_HOP + FRAME_WINDOW  # the tail, as in one piece
        piece = wave[g0 * FRAME_HOP:end]
        feats = frame_features(piece, kind)
        out.append(feats[f0 - g0:f1 - g0])
    return np.concatenate(out)


class AudioCorpus:
    """Mono 16 kHz tracks in memory, with per-frame targets.

    Parameters
    ----------
    waves : sequence of 1-D float arrays
        At :attr:`sample_rate`.
    names : sequence of str
        One per track (file paths for folders).
    sample_rate : int
    source : str
        What the tracks are (for logs and model cards).

    Attributes
    ----------
    targets : dict of str to list of ndarray
        Per-frame targets per track, filled by :meth:`add_codes` / :meth:`add_frames`.
    """

    def __init__(self, waves: Sequence[np.ndarray], names: Sequence[str], *, sample_rate: int = SAMPLE_RATE,
                 source: str = "arrays"):
        if len(waves) != len(names):
            raise OptionError(f"{len(waves)} waves for {len(names)} names.")
        self.waves = [np.ascontiguousarray(w, dtype=np.float32) for w in waves]
        for name, w in zip(names, self.waves):
            if w.ndim != 1:
                raise AudioError(f"track {name!r} is shaped {w.shape}; pass mono 1-D arrays.")
            if not np.isfinite(w).all():
                raise AudioError(f"track {name!r} has NaN/inf samples.")
        self.names = [str(n) for n in names]
        self.sample_rate = int(sample_rate)
        self.source = source
        self.targets: dict[str, list[np.ndarray]] = {}
        self._features: dict[str, list[np.ndarray]] = {}

    # -- building --------------------------------------------------------------------------------
    @classmethod
    def from_folders(cls, folders, *, sample_rate: int = SAMPLE_RATE, recursive: bool = True,
                     min_seconds: float = 1.0, exclude=(), cache_dir=None, source: str | None = None,
                     log=None) -> "AudioCorpus":
        """Decode every audio file under ``folders`` (sorted paths; WAV, FLAC, OGG, MP3 …).

        Parameters
        ----------
        folders : path or sequence of paths
            Folders (searched recursively) or single files.
        min_seconds : float
            Shorter files are left out.
        exclude : iterable of str
            File names (or path substrings) to leave out.
        cache_dir : path, optional
            Keep decoded tracks as ``.npy`` here (keyed by path, size, mtime and rate), so a second
            run skips decoding.
        """
        folders = [folders] if isinstance(folders, (str, os.PathLike)) else list(folders)
        paths = []
        for folder in folders:
            folder = Path(folder).expanduser()
            if folder.is_file():
                paths.append(folder)
                continue
            if not folder.is_dir():
                raise AudioError(f"{folder} is neither a folder nor a file; pass folders of audio files.")
            pattern = "**/*" if recursive else "*"
            paths += [p for p in folder.glob(pattern) if p.suffix.lower() in m2v_audio.AUDIO_EXTENSIONS]
        paths = sorted(set(paths))
        exclude = [str(e) for e in exclude]
        paths = [p for p in paths if not any(e == p.name or (os.sep in e and e in str(p)) for e in exclude)]
        if not paths:
            raise AudioError(f"no audio files ({', '.join(m2v_audio.AUDIO_EXTENSIONS)}) under {folders}.")
        cache = Path(cache_dir).expanduser() if cache_dir else None
        if cache:
            cache.mkdir(parents=True, exist_ok=True)
        waves, names = [], []
        for path in paths:
            stat = path.stat()
            stamp = f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}|{sample_rate}"
            key = hashlib.sha256(stamp.encode()).hexdigest()[:24]
            hit = cache / f"{key}.npy" if cache else None
            if hit is not None and hit.is_file():
                wave = np.load(hit)
            else:
                wave = m2v_audio.load(path, sample_rate=sample_rate)
                if hit is not None:
                    tmp = hit.with_suffix(".tmp.npy")
                    np.save(tmp, wave)
                    os.replace(tmp, hit)
            if len(wave) < min_seconds * sample_rate:
                if log:
                    log(f"  skipped {path.name}: {len(wave) / sample_rate:.1f} s < {min_seconds} s")
                continue
            waves.append(wave)
            names.append(str(path))
        corpus = cls(waves, names, sample_rate=sample_rate, source=source or ", ".join(map(str, folders)))
        if log:
            log(f"corpus {corpus.source}: {len(corpus)} tracks, {corpus.seconds / 3600:.2f} h")
        return corpus

    @classmethod
    def from_arrays(cls, items, names=None, *, sample_rate: int = SAMPLE_RATE, source: str = "arrays"):
        """Tracks from ``(array, rate)`` pairs or arrays at ``sample_rate`` (resampled with soxr if needed)."""
        import soxr

        waves = []
        for item in items:
            if isinstance(item, tuple):
                arr, rate = item
                arr = np.asarray(arr, dtype=np.float32)
                if arr.ndim == 2:
                    arr = arr.mean(axis=1)
                if int(rate) != sample_rate:
                    arr = soxr.resample(arr, int(rate), sample_rate, quality="HQ").astype(np.float32)
                waves.append(arr)
            else:
                waves.append(np.asarray(item, dtype=np.float32))
        names = names if names is not None else [f"{source}/{i:05d}" for i in range(len(waves))]
        return cls(waves, names, sample_rate=sample_rate, source=source)

    # -- facts -----------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.waves)

    @property
    def seconds(self) -> float:
        return float(sum(len(w) for w in self.waves)) / self.sample_rate

    def frames(self, track: int) -> int:
        return frame_count(len(self.waves[track]))

    def subset(self, tracks: Sequence[int], *, source: str | None = None) -> "AudioCorpus":
        """The chosen tracks (with their targets and cached features)."""
        tracks = [int(t) for t in tracks]
        out = AudioCorpus([self.waves[t] for t in tracks], [self.names[t] for t in tracks],
                          sample_rate=self.sample_rate, source=source or self.source)
        out.targets = {k: [v[t] for t in tracks] for k, v in self.targets.items()}
        out._features = {k: [v[t] for t in tracks] for k, v in self._features.items()}
        return out

    def split(self, n_validation: int, *, seed: int) -> tuple["AudioCorpus", "AudioCorpus"]:
        """``(train, validation)`` with ``n_validation`` whole tracks held out, chosen with ``seed``."""
        if not 0 <= n_validation < len(self):
            raise OptionError(f"n_validation={n_validation} must be in [0, {len(self)}).")
        order = np.random.default_rng(seed).permutation(len(self))
        val = sorted(order[:n_validation].tolist())
        train = sorted(order[n_validation:].tolist())
        return self.subset(train), self.subset(val, source=f"{self.source} (validation)")

    # -- targets ---------------------------------------------------------------------------------
    def features(self, kind: str) -> list[np.ndarray]:
        """Per-track frame features of ``kind`` on the track-normalised audio (computed once)."""
        if kind not in self._features:
            self._features[kind] = [chunked_features(_track_norm(w), kind) for w in self.waves]
        return self._features[kind]

    def fit_codebook(self, name: str, kind: str, *, k: int, seed: int, max_frames: int = 200_000) -> Codebook:
        """A :class:`Codebook` fitted on (a seeded sample of) this corpus's frames."""
        return Codebook.fit(name, kind, self.features(kind), k=k, seed=seed, max_frames=max_frames)

    def add_codes(self, codebook: Codebook) -> None:
        """Store ``codebook``'s codeword of every frame under ``targets[codebook.name]``."""
        self.targets[codebook.name] = [codebook.assign(f) for f in self.features(codebook.kind)]

    def add_frames(self, name: str, standardizer: FrameStandardizer) -> None:
        """Store standardised frame features (e.g. CQT for reconstruction) under ``targets[name]``."""
        self.targets[name] = [standardizer.transform(f) for f in self.features(standardizer.kind)]

    def drop_features(self) -> None:
        """Free the cached frame features (targets stay)."""
        self._features.clear()


class CropSampler:
    """Random frame-aligned crops from one or several corpora.

    Parameters
    ----------
    sources : AudioCorpus or sequence of AudioCorpus
    crop_seconds : float
        Crop length; rounded down to whole frames (``(F - 1) * 320 + 400`` samples).
    weights : sequence of float, optional
        Share of crops drawn from each source (default: in proportion to their crop positions).
        Within a source a track is drawn in proportion to its crop positions, then a start frame
        uniformly.  Tracks shorter than a crop are never drawn.
    normalize : {"crop", "track", "none"}
        z-normalise each crop (as the processor does on a clip), with the whole track's statistics, or not.
    """

    def __init__(self, sources, *, crop_seconds: float, weights: Sequence[float] | None = None,
                 normalize: str = "crop"):
        self.sources = [sources] if isinstance(sources, AudioCorpus) else list(sources)
        if normalize not in ("crop", "track", "none"):
            raise OptionError(f"normalize={normalize!r} must be 'crop', 'track' or 'none'.")
        self.normalize = normalize
        rate = self.sources[0].sample_rate
        self.crop_frames = frame_count(int(crop_seconds * rate))
        if self.crop_frames < 1:
            raise OptionError(f"crop_seconds={crop_seconds} gives no frame.")
        self.crop_samples = (self.crop_frames - 1) * FRAME_HOP + FRAME_WINDOW
        self._positions = [np.array([max(0, c.frames(t) - self.crop_frames + 1) for t in range(len(c))], np.float64)
                           for c in self.sources]
        totals = np.array([p.sum() for p in self._positions])
        if not (totals > 0).any():
            raise OptionError(f"no track is as long as a crop of {self.crop_samples / rate:.2f} s.")
        if weights is None:
            w = totals
        else:
            w = np.asarray(weights, np.float64)
            if len(w) != len(self.sources) or (w < 0).any() or w.sum() <= 0:
                raise OptionError(f"weights={weights!r}: one non-negative weight per source, not all 0.")
            w = np.where(totals > 0, w, 0.0)
        self.weights = w / w.sum()
        self._stats = {}
        if normalize == "track":
            self._stats = {(s, t): (float(c.waves[t].mean()), float(np.sqrt(c.waves[t].var() + 1e-7)))
                           for s, c in enumerate(self.sources) for t in range(len(c))}

    def sample(self, rng: np.random.Generator, batch_size: int, target_names: Sequence[str] = ()):
        """``(waves (batch, samples) float32, targets {name: array}, refs)`` of ``batch_size`` crops."""
        refs = []
        for _ in range(int(batch_size)):
            s = int(rng.choice(len(self.sources), p=self.weights))
            pos = self._positions[s]
            t = int(rng.choice(len(pos), p=pos / pos.sum()))
            f0 = int(rng.integers(0, int(pos[t])))
            refs.append((s, t, f0))
        return self.gather(refs, target_names) + (refs,)

    def gather(self, refs, target_names: Sequence[str] = ()):
        """``(waves, targets)`` of the crops ``refs`` = [(source, track, first_frame)]."""
        waves = []
        targets = {n: [] for n in target_names}
        for s, t, f0 in refs:
            corpus = self.sources[s]
            x = corpus.waves[t][f0 * FRAME_HOP:f0 * FRAME_HOP + self.crop_samples]
            if self.normalize == "crop":
                x = m2v_audio.normalize(x)
            elif self.normalize == "track":
                mean, std = self._stats[(s, t)]
                x = ((x - mean) / std).astype(np.float32)
            waves.append(x)
            for n in target_names:
                if n not in corpus.targets:
                    raise OptionError(f"source {corpus.source!r} has no target {n!r}; add it with add_codes / "
                                      "add_frames before training.")
                targets[n].append(corpus.targets[n][t][f0:f0 + self.crop_frames])
        return np.stack(waves).astype(np.float32), {n: np.stack(v) for n, v in targets.items()}
