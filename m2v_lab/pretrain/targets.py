"""What the model learns to predict: data2vec's teacher targets and MERT-style acoustic codewords.

data2vec (fairseq ``data2vec_audio``)
    :func:`data2vec_targets`: the teacher's feed-forward outputs (before the residual) of its top
    ``K`` blocks, each instance-normed over time (per clip and channel), averaged; optionally
    layer- or instance-normed again.

MERT-style masked language modelling (HuBERT iteration 1 on acoustic features)
    :func:`frame_features` computes acoustic features at exactly the model's frames — frame ``j`` of
    a clip of ``N`` samples is its receptive field ``[320 j, 320 j + 400)``, ``(N - 400) // 320 + 1``
    frames — and a :class:`Codebook` (MiniBatchKMeans with a seed) turns them into one codeword
    per frame.  Kinds: ``"logmel"`` (40 log-mel bands on the 400-sample field), ``"mfcc"`` (13 MFCCs
    + Δ + ΔΔ on it), ``"chroma"`` (12 bins), ``"cqt"`` (72 semitones, C2–B7, log magnitude) and sums
    such as ``"logmel+chroma"``.  A 25 ms field cannot resolve semitones, so chroma and CQT use
    longer analysis windows *centred on each receptive field* (4096-sample STFT; librosa's CQT):
    the frame grid stays the model's.  :class:`FrameStandardizer` turns CQT frames into a
    regression target (MERT reconstructs a CQT).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field

import numpy as np
import torch

from ..errors import OptionError
from .config import FRAME_HOP, FRAME_WINDOW, SAMPLE_RATE
from .forward import capture_ffn, run_encoder

__all__ = ["data2vec_targets", "instance_norm_time", "frame_count", "frame_features", "FEATURE_KINDS",
           "Codebook", "FrameStandardizer"]

# --- data2vec ---------------------------------------------------------------------------------------


def instance_norm_time(x: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """Normalise ``x`` ``(batch, frames, dim)`` over frames, per clip and channel (``F.instance_norm``)."""
    return torch.nn.functional.instance_norm(x.float().transpose(1, 2), eps=eps).transpose(1, 2)


@torch.no_grad()
def data2vec_targets(teacher_encoder: torch.nn.Module, hidden: torch.Tensor, *, top_k: int,
                     instance_norm: bool = True, layer_norm_targets: bool = False,
                     instance_norm_targets: bool = False, return_layers: bool = False):
    """data2vec's regression targets from a teacher encoder on unmasked input.

    Parameters
    ----------
    teacher_encoder : torch.nn.Module
        An encoder (``model.encoder``: positional convolution, LayerNorm, blocks) whose blocks have a
        ``feed_forward``; run as it is (put it in eval mode).
    hidden : tensor (batch, frames, hidden)
        Unmasked front-end features (:func:`~m2v_lab.pretrain.forward.front_end`).
    top_k : int
        Average the top ``top_k`` blocks (music2vec-v1 and data2vec base: 8 of 12).
    instance_norm : bool
        Instance-norm each block's output over time before averaging (data2vec audio: yes).
    layer_norm_targets, instance_norm_targets : bool
        Normalise the average again (data2vec audio: no).
    return_layers : bool
        Also return the list of the normalised block outputs, lowest first.

    Returns
    -------
    tensor (batch, frames, hidden), float32; or (targets, layers)
    """
    n_layers = len(teacher_encoder.layers)
    if not 1 <= top_k <= n_layers:
        raise OptionError(f"top_k={top_k} must be between 1 and the teacher's {n_layers} blocks.")
    chosen = list(range(n_layers - top_k, n_layers))
    with capture_ffn(teacher_encoder, chosen) as captured:
        run_encoder(teacher_encoder, hidden)
    layers = [captured[i].float() for i in chosen]
    if instance_norm:
        layers = [instance_norm_time(y) for y in layers]
    y = sum(layers) / len(layers)
    if layer_norm_targets:
        y = torch.nn.functional.layer_norm(y, y.shape[-1:])
    if instance_norm_targets:
        y = instance_norm_time(y)
    return (y, layers) if return_layers else y


# --- acoustic features at the model's frames ----------------------------------------------------------

def frame_count(n_samples: int) -> int:
    """Frames of the family's front end: ``(N - 400) // 320 + 1`` (0 below 400 samples)."""
    return 0 if n_samples < FRAME_WINDOW else (int(n_samples) - FRAME_WINDOW) // FRAME_HOP + 1


_CENTRE = FRAME_WINDOW // 2  # frame j's receptive field is centred on sample 200 + 320 j
_SILENCE = 1e-2  # frame RMS below which chroma is zeroed: 40 dB under a unit-variance (normalised) clip


def _logmel(wave: np.ndarray, n: int) -> np.ndarray:
    import librosa

    mel = librosa.feature.melspectrogram(y=wave, sr=SAMPLE_RATE, n_fft=FRAME_WINDOW, hop_length=FRAME_HOP,
                                         center=False, n_mels=40, power=2.0)[:, :n]
    return np.log(mel + 1e-6).T


def _mfcc(wave: np.ndarray, n: int) -> np.ndarray:
    import librosa

    mel = librosa.feature.melspectrogram(y=wave, sr=SAMPLE_RATE, n_fft=FRAME_WINDOW, hop_length=FRAME_HOP,
                                         center=False, n_mels=40, power=2.0)[:, :n]
    mfcc = librosa.feature.mfcc(S=librosa.power_to_db(mel), n_mfcc=13)
    width = min(9, n if n % 2 else n - 1)
    if width >= 3:
        deltas = [librosa.feature.delta(mfcc, order=1, width=width), librosa.feature.delta(mfcc, order=2, width=width)]
    else:
        deltas = [np.zeros_like(mfcc), np.zeros_like(mfcc)]
    return np.concatenate([mfcc, *deltas]).T


def _rms(wave: np.ndarray, n: int) -> np.ndarray:
    idx = np.arange(n)[:, None] * FRAME_HOP + np.arange(FRAME_WINDOW)[None, :]
    return np.sqrt(np.mean(np.square(wave[idx], dtype=np.float64), axis=1))


def _chroma(wave: np.ndarray, n: int) -> np.ndarray:
    import librosa

    chroma = librosa.feature.chroma_stft(y=wave[_CENTRE:], sr=SAMPLE_RATE, n_fft=4096, hop_length=FRAME_HOP,
                                         tuning=0.0, center=True)[:, :n]
    chroma = np.pad(chroma, ((0, 0), (0, n - chroma.shape[1])))
    chroma[:, _rms(wave, n) < _SILENCE] = 0.0
    return chroma.T


def _cqt(wave: np.ndarray, n: int) -> np.ndarray:
    import librosa

    cqt = np.abs(librosa.cqt(wave[_CENTRE:], sr=SAMPLE_RATE, hop_length=FRAME_HOP,
                             fmin=librosa.note_to_hz("C2"), n_bins=72, bins_per_octave=12))[:, :n]
    cqt = np.pad(cqt, ((0, 0), (0, n - cqt.shape[1])))
    return np.maximum(librosa.amplitude_to_db(cqt, ref=1.0, top_db=None), -100.0).T


_KINDS = {"logmel": (_logmel, 40), "mfcc": (_mfcc, 39), "chroma": (_chroma, 12), "cqt": (_cqt, 72)}
#: Feature kinds :func:`frame_features` computes, with their dimensions.
FEATURE_KINDS = {name: dim for name, (_, dim) in _KINDS.items()}


def _parts(kind: str) -> list[str]:
    parts = kind.split("+")
    bad = [p for p in parts if p not in _KINDS]
    if bad or not parts:
        raise OptionError(f"feature kind {kind!r}: unknown {bad}; use one of {sorted(_KINDS)} or sums like "
                          "'logmel+chroma'.")
    return parts


def frame_features(wave: np.ndarray, kind: str) -> np.ndarray:
    """Acoustic features of a mono 16 kHz clip at the model's frames, ``(frames, dim)`` float32.

    Row ``j`` describes receptive field ``j`` (samples ``[320 j, 320 j + 400)``): ``frames =
    (N - 400) // 320 + 1``, exactly the model's frame count.  Pass a z-normalised clip (as the
    model sees it): log features depend on the level, and chroma is zeroed in frames whose RMS is
    40 dB below unit variance, so that silence gets its own codewords.
    """
    wave = np.ascontiguousarray(wave, dtype=np.float32)
    n = frame_count(len(wave))
    if n == 0:
        raise OptionError(f"a clip of {len(wave)} samples has no frame (the model needs {FRAME_WINDOW}).")
    feats = [_KINDS[p][0](wave, n).astype(np.float32) for p in _parts(kind)]
    return np.concatenate(feats, axis=1) if len(feats) > 1 else feats[0]


# --- codebooks and standardised frame targets -----------------------------------------------------


def _stack_sample(frames_by_clip, max_frames: int, rng: np.random.Generator) -> np.ndarray:
    counts = np.array([len(f) for f in frames_by_clip])
    total = int(counts.sum())
    if total <= max_frames:
        return np.concatenate(frames_by_clip).astype(np.float64)
    picks = np.sort(rng.choice(total, max_frames, replace=False))
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    clip = np.searchsorted(starts, picks, side="right") - 1
    return np.stack([frames_by_clip[c][p - starts[c]] for c, p in zip(clip, picks)]).astype(np.float64)


@dataclass
class FrameStandardizer:
    """Per-dimension standardisation of frame features, fitted on a corpus (a regression target)."""

    kind: str
    mean: np.ndarray
    scale: np.ndarray

    @classmethod
    def fit(cls, kind: str, frames_by_clip, *, max_frames: int = 200_000, seed: int = 0) -> "FrameStandardizer":
        X = _stack_sample(list(frames_by_clip), max_frames, np.random.default_rng(seed))
        return cls(kind, X.mean(0).astype(np.float32), np.maximum(X.std(0), 1e-6).astype(np.float32))

    @property
    def dim(self) -> int:
        return int(self.mean.shape[0])

    def transform(self, frames: np.ndarray) -> np.ndarray:
        return ((np.asarray(frames, np.float32) - self.mean) / self.scale).astype(np.float32)

    def to_dict(self) -> dict:
        return {"kind": self.kind, "mean": self.mean.tolist(), "scale": self.scale.tolist()}

    @classmethod
    def from_dict(cls, d: dict) -> "FrameStandardizer":
        return cls(d["kind"], np.asarray(d["mean"], np.float32), np.asarray(d["scale"], np.float32))


@dataclass
class Codebook:
    """k-means codewords of one kind of frame feature (HuBERT iteration 1 / MERT's acoustic teacher).

    Attributes
    ----------
    name : str
        The target's name (a head per name).
    kind : str
        Feature kind (:data:`FEATURE_KINDS`, or a sum such as ``"logmel+chroma"``).
    centroids : ndarray (k, dim)
        In standardised feature space.
    mean, scale : ndarray (dim,)
        Standardisation fitted with the codebook (chroma-only books are left unscaled: scale 1).
    seed : int
    """

    name: str
    kind: str
    centroids: np.ndarray
    mean: np.ndarray
    scale: np.ndarray
    seed: int
    stats: dict = field(default_factory=dict)

    @property
    def k(self) -> int:
        return int(self.centroids.shape[0])

    @classmethod
    def fit(cls, name: str, kind: str, frames_by_clip, *, k: int, seed: int, max_frames: int = 200_000,
            batch_size: int = 4096, n_init: int = 3, max_iter: int = 100) -> "Codebook":
        """Fit MiniBatchKMeans on (a seeded sample of at most ``max_frames``) frames.

        ``frames_by_clip`` are :func:`frame_features` arrays of kind ``kind``.  Equal inputs and seed
        give equal codewords.
        """
        from sklearn.cluster import MiniBatchKMeans
        from threadpoolctl import threadpool_limits

        _parts(kind)
        rng = np.random.default_rng(seed)
        X = _stack_sample(list(frames_by_clip), max_frames, rng)
        if len(X) < k:
            raise OptionError(f"codebook {name!r}: {len(X)} frames cannot make k={k} clusters.")
        if kind == "chroma":
            mean, scale = np.zeros(X.shape[1]), np.ones(X.shape[1])
        else:
            mean, scale = X.mean(0), np.maximum(X.std(0), 1e-6)
        Z = (X - mean) / scale
        with threadpool_limits(1):  # one thread: the same clusters whatever the machine's cores
            km = MiniBatchKMeans(n_clusters=k, batch_size=batch_size, n_init=n_init, max_iter=max_iter,
                                 random_state=seed).fit(Z)
        book = cls(name, kind, km.cluster_centers_.astype(np.float64), mean, scale, int(seed))
        codes = book.assign_standardized(Z)
        used = np.bincount(codes, minlength=k)
        book.stats = {"frames": int(len(X)), "used": int((used > 0).sum()),
                      "largest_share": float(used.max() / len(X)),
                      "entropy_bits": float(-(used[used > 0] / len(X) * np.log2(used[used > 0] / len(X))).sum())}
        return book

    def assign_standardized(self, Z: np.ndarray) -> np.ndarray:
        c = self.centroids
        d = (Z ** 2).sum(1)[:, None] - 2.0 * Z @ c.T + (c ** 2).sum(1)[None, :]
        return np.argmin(d, axis=1).astype(np.int64)

    def assign(self, frames: np.ndarray) -> np.ndarray:
        """Codeword index per frame, ``(frames,)`` int64."""
        Z = (np.asarray(frames, np.float64) - self.mean) / self.scale
        return self.assign_standardized(Z)

    def digest(self) -> str:
        h = hashlib.sha256(f"{self.name}|{self.kind}|{self.seed}|".encode())
        for a in (self.centroids, self.mean, self.scale):
            h.update(np.ascontiguousarray(a, np.float64).tobytes())
        return h.hexdigest()

    def to_dict(self) -> dict:
        return {"name": self.name, "kind": self.kind, "seed": self.seed, "centroids": self.centroids.tolist(),
                "mean": np.asarray(self.mean).tolist(), "scale": np.asarray(self.scale).tolist(),
                "stats": self.stats}

    @classmethod
    def from_dict(cls, d: dict) -> "Codebook":
        return cls(d["name"], d["kind"], np.asarray(d["centroids"], np.float64), np.asarray(d["mean"], np.float64),
                   np.asarray(d["scale"], np.float64), int(d["seed"]), dict(d.get("stats", {})))

    def save(self, path) -> None:
        from pathlib import Path

        Path(path).write_text(json.dumps(self.to_dict()))

    @classmethod
    def load(cls, path) -> "Codebook":
        from pathlib import Path

        return cls.from_dict(json.loads(Path(path).read_text()))
