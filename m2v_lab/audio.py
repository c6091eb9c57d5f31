"""Audio in: decode, mix to mono, resample to the model rate, cut into windows.

Everything streams in blocks, so a 10-minute (or 10-hour) track never sits in
memory whole: :func:`blocks` decodes with soundfile (WAV, FLAC, OGG, MP3, AIFF …),
averages channels and resamples with soxr's streaming resampler (identical to
one-shot ``soxr.resample``); :func:`windows` turns those blocks into the model's
input windows.

Windowing policy (recorded in every result's ``meta``): non-overlapping windows
of ``window`` seconds (default: the model's pretraining context, 30 s for
music2vec-v1, 5 s for MERT).  A last, shorter window is kept when it is at least
``min_last`` seconds long (default 1 s, as MARBLE) and dropped otherwise — unless
it is the whole clip, which is kept whenever the model can make one frame of it
(400 samples).  Shorter windows are never padded: padding changes these models'
outputs, attention mask or not.

Normalisation: when the model's processor z-normalises (``do_normalize``), each
window is normalised with the mean and standard deviation of the whole track
(``scope="track"``, as MARBLE and fairseq pretraining) or of the window itself
(``scope="window"``, as calling the processor on each window).  For a clip that
fits one window the two are the same and equal the model card's usage.
"""

from __future__ import annotations

import hashlib
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import soundfile as sf
import soxr

from .errors import AudioError

__all__ = [
    "AUDIO_EXTENSIONS",
    "AudioSource",
    "as_sources",
    "blocks",
    "load",
    "track_stats",
    "normalize",
    "windows",
    "check",
]

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".oga", ".mp3", ".aif", ".aiff", ".w64", ".rf64", ".caf")
_BLOCK_SECONDS = 10.0
_HASH_CHUNK = 1 << 20
_NORM_EPS = 1e-7  # as transformers' Wav2Vec2FeatureExtractor.zero_mean_unit_var_norm


@dataclass(frozen=True)
class AudioSource:
    """One clip: a file (or a segment of it) or an in-memory array.

    Attributes
    ----------
    clip_id : str
        Unique name of the clip in a result.
    path : Path or None
        The file, for file clips.
    array : np.ndarray or None
        ``(samples,)`` or ``(samples, channels)`` audio, for in-memory clips.
    sample_rate : int or None
        Rate of ``array`` (files carry their own).
    start, duration : float or None
        Segment of the file in seconds; None reads from the start / to the end.
    """

    clip_id: str
    path: Path | None = None
    array: np.ndarray | None = None
    sample_rate: int | None = None
    start: float | None = None
    duration: float | None = None

    @property
    def label(self) -> str:
        """How error messages name this clip."""
        return str(self.path) if self.path is not None else f"array {self.clip_id!r}"

    def content_hash(self) -> str:
        """sha256 of the audio content (file bytes, or array bytes and rate) and the segment."""
        h = hashlib.sha256()
        if self.path is not None:
            h.update(_file_digest(self.path).encode())
        else:
            a = np.ascontiguousarray(self.array)
            h.update(f"{a.dtype}|{a.shape}|{self.sample_rate}|".encode())
            h.update(a.view(np.uint8).data)
        start = 0.0 if self.start is None else float(self.start)
        duration = None if self.duration is None else float(self.duration)
        h.update(f"|{start!r}|{duration!r}".encode())
        return h.hexdigest()


_DIGESTS: dict[tuple, str] = {}


def _file_digest(path: Path) -> str:
    """sha256 of a file's bytes, remembered per (path, size, mtime) so segments of one file hash it once."""
    try:
        stat = path.stat()
        stamp = (str(path.resolve()), stat.st_ino, stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns)
        if stamp not in _DIGESTS:
            h = hashlib.sha256()
            with open(path, "rb") as f:
                for chunk in iter(lambda: f.read(_HASH_CHUNK), b""):
                    h.update(chunk)
            _DIGESTS[stamp] = h.hexdigest()
        return _DIGESTS[stamp]
    except FileNotFoundError:
        raise _missing(path) from None
    except OSError as exc:
        raise AudioError(f"cannot read {path}: {exc}. Check permissions.") from exc


def _missing(path: Path) -> AudioError:
    return AudioError(f"audio file not found: {path} (resolved from {os.getcwd()}). Check the path; "
                      "relative paths are taken from the current directory.")


def _source_from(item, index: int) -> AudioSource:
    if isinstance(item, AudioSource):
        return item
    if isinstance(item, (str, os.PathLike)):
        return AudioSource(clip_id=str(item), path=Path(item).expanduser())
    if isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], np.ndarray):
        array, rate = item
        return AudioSource(clip_id=f"array_{index}", array=array, sample_rate=_check_rate(rate, index))
    if isinstance(item, np.ndarray):
        raise AudioError(f"clip {index} is a bare array: pass (array, sample_rate) so its rate is known.")
    raise AudioError(f"clip {index} is a {type(item).__name__}; pass a path, (array, sample_rate) or "
                     "a DataFrame with a 'path' column.")


def _check_rate(rate, index) -> int:
    if not isinstance(rate, (int, np.integer)) or rate <= 0:
        raise AudioError(f"clip {index}: sample rate {rate!r} must be a positive integer (Hz) — "
                         "did you swap (array, sample_rate)?")
    return int(rate)


def _optional_seconds(value) -> float | None:
    if value is None:
        return None
    value = float(value)
    return None if math.isnan(value) else value


def as_sources(clips) -> list[AudioSource]:
    """Turn what a user passes as clips into :class:`AudioSource` objects with unique ids.

    Accepts one path, a sequence of paths / ``(array, sample_rate)`` tuples /
    :class:`AudioSource`, a ``{clip_id: path or (array, rate)}`` mapping, or a
    DataFrame with a ``path`` column (optional ``clip_id``, ``start``, ``duration``).
    """
    if isinstance(clips, (str, os.PathLike, AudioSource)) or (
            isinstance(clips, tuple) and len(clips) == 2 and isinstance(clips[0], np.ndarray)):
        clips = [clips]
    if hasattr(clips, "columns") and hasattr(clips, "iterrows"):
        if "path" not in clips.columns:
            raise AudioError(f"the DataFrame has no 'path' column (columns: {list(clips.columns)}); "
                             "m2v_lab.datasets loaders make frames with one.")
        sources = []
        for i, (_, row) in enumerate(clips.iterrows()):
            start = _optional_seconds(row.get("start"))
            duration = _optional_seconds(row.get("duration"))
            clip_id = row.get("clip_id")
            if clip_id is None or (isinstance(clip_id, float) and math.isnan(clip_id)):
                clip_id = str(row["path"]) if start is None else f"{row['path']}@{start:g}"
            sources.append(AudioSource(clip_id=str(clip_id), path=Path(str(row["path"])).expanduser(),
                                       start=start, duration=duration))
    elif isinstance(clips, dict):
        sources = [_with_id(_source_from(v, i), str(k)) for i, (k, v) in enumerate(clips.items())]
    else:
        sources = [_source_from(item, i) for i, item in enumerate(clips)]
    used: set[str] = set()
    unique = []
    for s in sources:
        clip_id, n = s.clip_id, 0
        while clip_id in used:
            n += 1
            clip_id = f"{s.clip_id}#{n}"
        used.add(clip_id)
        unique.append(s if clip_id == s.clip_id else _with_id(s, clip_id))
    return unique


def _with_id(source: AudioSource, clip_id: str) -> AudioSource:
    return AudioSource(clip_id, source.path, source.array, source.sample_rate, source.start, source.duration)


def _open_info(source: AudioSource) -> tuple[int, int, int]:
    """(sample_rate, channels, frames) of the source's selected segment."""
    if source.path is None:
        a = source.array
        if a.ndim not in (1, 2):
            raise AudioError(f"{source.label}: array must be (samples,) or (samples, channels); got {a.shape}.")
        if a.ndim == 2 and a.shape[0] < a.shape[1] and a.shape[0] <= 16:
            raise AudioError(f"{source.label}: shape {a.shape} looks like (channels, samples), as librosa returns "
                             "it; pass array.T, shaped (samples, channels).")
        if source.start is not None or source.duration is not None:
            raise AudioError(f"{source.label}: start/duration apply to files; slice the array instead.")
        return source.sample_rate, 1 if a.ndim == 1 else a.shape[1], a.shape[0]
    path = source.path
    if not path.exists():
        raise _missing(path)
    if path.is_dir():
        raise AudioError(f"{path} is a folder, not an audio file; use m2v_lab.datasets.from_folder().")
    if path.stat().st_size == 0:
        raise AudioError(f"{path} is empty (0 bytes): re-export or re-download it, or leave it out.")
    try:
        info = sf.info(str(path))
    except (sf.SoundFileError, RuntimeError) as exc:
        raise AudioError(
            f"cannot decode {path}: {str(exc).rstrip('.')}. Is it really audio ({', '.join(e[1:] for e in AUDIO_EXTENSIONS)})? "
            f"If it is another format, convert it first, e.g. `ffmpeg -i '{path}' out.flac`.") from exc
    rate, frames = int(info.samplerate), int(info.frames)
    first = 0 if source.start is None else int(round(source.start * rate))
    if source.start is not None and not 0 <= first < max(frames, 1):
        raise AudioError(f"{path}: start={source.start} s is outside the file ({frames / rate:.2f} s long).")
    available = frames - first
    if source.duration is not None:
        available = min(available, int(round(source.duration * rate)))
    return rate, int(info.channels), available


def check(source: AudioSource) -> None:
    """Raise :class:`AudioError` now if ``source`` cannot be read (missing, empty, not audio, bad segment)."""
    _open_info(source)


def _raw_blocks(source: AudioSource, block_frames: int) -> Iterator[np.ndarray]:
    """(frames, channels) float32 blocks of the selected segment at the source rate."""
    rate, _, frames = _open_info(source)
    if source.path is None:
        a = source.array if source.array.ndim == 2 else source.array[:, None]
        for i in range(0, a.shape[0], block_frames):
            yield np.asarray(a[i:i + block_frames], dtype=np.float32)
        return
    start = 0 if source.start is None else int(round(source.start * rate))
    try:
        yield from sf.blocks(str(source.path), blocksize=block_frames, start=start, frames=frames,
                             dtype="float32", always_2d=True)
    except (sf.SoundFileError, RuntimeError) as exc:
        raise AudioError(f"decoding {source.path} failed part-way: {exc}. The file may be truncated; "
                         "re-export it.") from exc


def blocks(source: AudioSource, *, sample_rate: int, block_seconds: float = _BLOCK_SECONDS) -> Iterator[np.ndarray]:
    """Mono float32 blocks of ``source`` resampled to ``sample_rate``.

    Raises
    ------
    AudioError
        Missing, empty, undecodable file; NaN/inf samples; no samples at all.
    """
    rate, channels, frames = _open_info(source)
    if frames <= 0:
        raise AudioError(f"{source.label} contains no samples. Re-export it or leave it out.")
    resampler = None if rate == sample_rate else soxr.ResampleStream(rate, sample_rate, 1, dtype="float32",
                                                                     quality="HQ")
    seen = 0
    for block in _raw_blocks(source, max(1, int(block_seconds * rate))):
        bad = ~np.isfinite(block)
        if bad.any():
            first = seen + int(np.argmax(bad.any(axis=1)))
            raise AudioError(
                f"{source.label} has {int(bad.sum())} NaN/inf samples in this block (first at "
                f"{first / rate:.3f} s). Re-export the file, or clean the array with np.nan_to_num().")
        seen += block.shape[0]
        mono = block[:, 0] if channels == 1 else block.mean(axis=1, dtype=np.float32)
        yield mono if resampler is None else resampler.resample_chunk(mono)
    if resampler is not None:
        tail = resampler.resample_chunk(np.zeros(0, np.float32), last=True)
        if tail.size:
            yield tail


def load(source, *, sample_rate: int) -> np.ndarray:
    """The whole clip as one mono float32 array at ``sample_rate``, shape (samples,)."""
    src = as_sources(source)[0]
    return np.concatenate(list(blocks(src, sample_rate=sample_rate)))


def track_stats(source: AudioSource, *, sample_rate: int, exact_within: int | None = None):
    """``(mean, std, samples)`` of the whole clip at ``sample_rate``.

    A clip of at most ``exact_within`` samples gets the processor's own float32 arithmetic, so a
    clip that fits one window is normalised bit for bit as the model card's processor does it;
    longer clips combine per-block statistics in float64 (Chan et al.'s pairwise update), which
    stays exact with a large DC offset.
    """
    n, mean, m2 = 0, 0.0, 0.0
    held: list[np.ndarray] | None = []
    for b in blocks(source, sample_rate=sample_rate):
        if held is not None:
            held = held + [b] if exact_within is not None and n + b.size <= exact_within else None
        b_mean = b.mean(dtype=np.float64)
        b_m2 = float(np.square(b - b_mean, dtype=np.float64).sum())
        total = n + b.size
        delta = b_mean - mean
        mean += delta * b.size / total
        m2 += b_m2 + delta * delta * n * b.size / total
        n = total
    if held is not None:
        x = np.concatenate(held)
        return x.mean(), np.sqrt(x.var() + _NORM_EPS), n
    return mean, math.sqrt(m2 / n + _NORM_EPS), n


def normalize(x: np.ndarray, *, mean=None, std=None) -> np.ndarray:
    """Zero-mean, unit-variance waveform, as ``Wav2Vec2FeatureExtractor(do_normalize=True)``.

    Without ``mean``/``std`` it is the processor's own float32 arithmetic on ``x`` (bit-identical).
    """
    if mean is None or std is None:
        x = np.asarray(x, dtype=np.float32)
        return (x - x.mean()) / np.sqrt(x.var() + _NORM_EPS)
    return ((x - mean) / std).astype(np.float32, copy=False)


def windows(source: AudioSource, *, sample_rate: int, window: int, min_last: int, min_samples: int,
            do_normalize: bool, scope: str = "track") -> Iterator[tuple[int, np.ndarray]]:
    """Yield ``(start_sample, waveform)`` windows of one clip, normalised as asked, streaming.

    Raises
    ------
    AudioError
        As :func:`blocks`; and when the clip is shorter than ``min_samples``.
    """
    if do_normalize and scope not in ("track", "window"):
        raise AudioError(f"normalisation scope {scope!r} must be 'track' or 'window'.")
    mean = std = None
    if do_normalize and scope == "track":
        mean, std, _ = track_stats(source, sample_rate=sample_rate, exact_within=window)

    def emit(start, x):
        if do_normalize:
            return start, normalize(x, mean=mean, std=std) if scope == "track" else normalize(x)
        return start, x.copy()

    buf = np.empty(window, np.float32)  # one window's worth, refilled: memory does not grow with the track
    buffered = 0
    emitted = 0
    for b in blocks(source, sample_rate=sample_rate):
        pos = 0
        while pos < b.size:
            take = min(window - buffered, b.size - pos)
            buf[buffered:buffered + take] = b[pos:pos + take]
            buffered += take
            pos += take
            if buffered == window:
                yield emit(emitted, buf)
                emitted += window
                buffered = 0
    total = emitted + buffered
    if total < min_samples:
        raise AudioError(
            f"{source.label} is {total} samples ({1000 * total / sample_rate:.1f} ms) at {sample_rate} Hz; "
            f"the model needs at least {min_samples} samples ({1000 * min_samples / sample_rate:.0f} ms) for "
            "one frame. Leave it out or use a longer excerpt.")
    if buffered and (emitted == 0 or (buffered >= min_last and buffered >= min_samples)):
        yield emit(emitted, buf[:buffered])
