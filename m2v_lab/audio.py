"""Audio in: decode, mix to mono, resample to the model rate, cut into windows.

Everything streams in blocks, so a 10-minute (or 10-hour) track never sits in
memory whole: :func:`blocks` decodes with soundfile (WAV, FLAC, OGG, MP3, AIFF …),
averages channels and resamples with soxr's streaming resampler (identical to
one-shot ``soxr.resample``); :func:`windows` turns those blocks into the model's
input windows, and :func:`prefetch_windows` does so for many clips in background
threads while the model runs.

In-memory clips are ``(array, sample_rate)`` with a NumPy array or a torch tensor
of shape ``(samples,)`` or ``(samples, channels)``.  Float samples are taken as
they are; integer PCM (int8, uint8, int16, int32) is scaled to [-1, 1) exactly as
soundfile scales the same PCM file, so an array and its WAV give the same numbers.

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
import inspect
import math
import numbers
import os
import queue
import sys
import threading
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Iterator

import numpy as np
import soundfile as sf
import soxr

from .errors import AudioError, OptionError

__all__ = [
    "AUDIO_EXTENSIONS",
    "AudioSource",
    "as_sources",
    "blocks",
    "load",
    "track_stats",
    "normalize",
    "windows",
    "WindowsDone",
    "prefetch_windows",
    "check",
    "duration",
]

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".oga", ".mp3", ".aif", ".aiff", ".w64", ".rf64", ".caf")
_BLOCK_SECONDS = 10.0
_HASH_CHUNK = 1 << 20
_NORM_EPS = 1e-7  # as transformers' Wav2Vec2FeatureExtractor.zero_mean_unit_var_norm
# (dtype kind, itemsize) -> (offset, scale) of integer PCM, as libsndfile reads it into floats
_PCM = {("i", 1): (0, 2.0 ** -7), ("u", 1): (128, 2.0 ** -7), ("i", 2): (0, 2.0 ** -15), ("i", 4): (0, 2.0 ** -31)}
# A prefetch thread's stop event, checked by blocks() so that closing prefetch_windows() does not wait for
# a whole statistics pass over a long track; thread-local, so it never stops a caller's own decoding.
_THREAD = threading.local()


class _Stopped(Exception):
    """A prefetch thread was told to stop part-way through a clip."""


@dataclass(frozen=True)
class AudioSource:
    """One clip: a file (or a segment of it) or an in-memory array.

    Attributes
    ----------
    clip_id : str
        Unique name of the clip in a result.
    path : Path or None
        The file, for file clips (a str is taken as a path, ``~`` expanded).
    array : np.ndarray or None
        ``(samples,)`` or ``(samples, channels)`` audio, for in-memory clips: float samples, or
        integer PCM (int8, uint8, int16, int32) scaled as soundfile reads PCM files.  A torch
        tensor or a list is converted to a NumPy array.
    sample_rate : int or None
        Rate of ``array`` in Hz (files carry their own); a whole float such as 24000.0 is stored as int.
    start, duration : float or None
        Segment of the file in seconds; None reads from the start / to the end.

    Raises
    ------
    AudioError
        Neither or both of ``path`` and ``array``; an array without a valid ``sample_rate``.
    """

    clip_id: str
    path: Path | None = None
    array: np.ndarray | None = None
    sample_rate: int | None = None
    start: float | None = None
    duration: float | None = None

    def __post_init__(self):
        if (self.path is None) == (self.array is None):
            which = "both a path and" if self.path is not None else "neither a path nor"
            raise AudioError(f"AudioSource {self.clip_id!r} has {which} an array; give one: path=... for a file, "
                             "or array=... with sample_rate=....")
        # frozen: normalise the fields once, here, so every reader sees a Path / an ndarray and an int rate
        if self.path is not None:
            object.__setattr__(self, "path", Path(self.path).expanduser())
        else:
            object.__setattr__(self, "array", _as_array(self.array, self.label))
            object.__setattr__(self, "sample_rate", _check_rate(self.sample_rate, self.label))

    @property
    def label(self) -> str:
        """How error messages name this clip."""
        return str(self.path) if self.path is not None else f"array {self.clip_id!r}"

    def content_hash(self) -> str:
        """sha256 of the audio content (file bytes, or array dtype, shape, bytes and rate) and the segment.

        A tensor hashes as the NumPy array it is converted to, and a rate of 24000.0 as 24000.
        """
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


def _is_tensor(x) -> bool:
    torch = sys.modules.get("torch")  # a tensor can only exist once torch is imported: never import it here
    return torch is not None and isinstance(x, torch.Tensor)


def _as_array(x, label: str) -> np.ndarray:
    """``x`` (ndarray, torch tensor, nested list) as an ndarray, without copying an ndarray."""
    if isinstance(x, np.ndarray):
        return x
    if _is_tensor(x):
        torch = sys.modules["torch"]
        if x.is_floating_point() and x.dtype not in (torch.float16, torch.float32, torch.float64):
            x = x.float()  # bfloat16 and the float8 types have no NumPy dtype
        return x.numpy(force=True)  # detached, on the CPU
    try:
        return np.asarray(x)
    except ValueError as exc:
        raise AudioError(f"{label}: cannot make an array of the samples given ({exc}); pass a NumPy array "
                         "shaped (samples,) or (samples, channels).") from exc


def _check_rate(rate, label: str) -> int:
    if isinstance(rate, numbers.Real) and not isinstance(rate, (bool, np.bool_)):
        value = float(rate)
        if math.isfinite(value) and value > 0 and value.is_integer():
            return int(rate)
    raise AudioError(f"{label}: sample rate {rate!r} must be a positive whole number of Hz (16000, or 16000.0) — "
                     "did you swap (array, sample_rate)?")


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


def _is_array_pair(item) -> bool:
    return isinstance(item, tuple) and len(item) == 2 and (isinstance(item[0], np.ndarray) or _is_tensor(item[0]))


def _source_from(item, index: int, clip_id: str | None = None) -> AudioSource:
    if isinstance(item, AudioSource):
        return item if clip_id is None else replace(item, clip_id=clip_id)
    if isinstance(item, (str, os.PathLike)):
        return AudioSource(clip_id=str(item) if clip_id is None else clip_id, path=item)
    if _is_array_pair(item):
        array, rate = item
        return AudioSource(clip_id=f"array_{index}" if clip_id is None else clip_id, array=array, sample_rate=rate)
    if isinstance(item, np.ndarray) or _is_tensor(item):
        raise AudioError(f"clip {index} is a bare {type(item).__name__}: pass (array, sample_rate) so its rate "
                         "is known.")
    raise AudioError(f"clip {index} is a {type(item).__name__}; pass a path, (array, sample_rate) or "
                     "a DataFrame with a 'path' column.")


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
    ``array`` is a NumPy array or a torch tensor, ``(samples,)`` or ``(samples, channels)``.

    Raises
    ------
    AudioError
        An item that is none of these; a sample rate that is not a positive whole number.
    """
    if isinstance(clips, (str, os.PathLike, AudioSource)) or _is_array_pair(clips):
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
            sources.append(AudioSource(clip_id=str(clip_id), path=str(row["path"]), start=start, duration=duration))
    elif isinstance(clips, dict):
        sources = [_source_from(v, i, str(k)) for i, (k, v) in enumerate(clips.items())]
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
        unique.append(s if clip_id == s.clip_id else replace(s, clip_id=clip_id))
    return unique


def _open_info(source: AudioSource) -> tuple[int, int, int]:
    """(sample_rate, channels, frames) of the source's selected segment."""
    if source.path is None:
        a = source.array
        if a.ndim not in (1, 2):
            raise AudioError(f"{source.label}: array must be (samples,) or (samples, channels); got {a.shape}.")
        if a.ndim == 2 and a.shape[0] < a.shape[1] and a.shape[0] <= 16:
            raise AudioError(f"{source.label}: shape {a.shape} looks like (channels, samples), as librosa and "
                             "torchaudio return it; pass array.T (or tensor.T), shaped (samples, channels).")
        if a.dtype.kind != "f" and (a.dtype.kind, a.dtype.itemsize) not in _PCM:
            hint = (f" For 16-bit samples held in {a.dtype}, pass array.astype(np.int16)." if a.dtype.kind in "iu"
                    else "")
            raise AudioError(f"{source.label}: samples of dtype {a.dtype} are not audio; pass floats in [-1, 1] "
                             f"or integer PCM (int8, uint8, int16, int32).{hint}")
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


def duration(source: AudioSource) -> float:
    """Seconds of audio in ``source``'s selected segment, from the header (nothing is decoded).

    Raises
    ------
    AudioError
        As :func:`check`.
    """
    rate, _, frames = _open_info(source)
    return max(frames, 0) / rate


def _raw_blocks(source: AudioSource, block_frames: int) -> Iterator[np.ndarray]:
    """(frames, channels) float32 blocks of the selected segment at the source rate."""
    rate, _, frames = _open_info(source)
    if source.path is None:
        a = source.array if source.array.ndim == 2 else source.array[:, None]
        pcm = _PCM.get((a.dtype.kind, a.dtype.itemsize))
        for i in range(0, a.shape[0], block_frames):
            if pcm is None:
                yield np.asarray(a[i:i + block_frames], dtype=np.float32)
                continue
            # int -> float32 (rounding as C does), then an exact power-of-two scale: libsndfile's arithmetic
            offset, scale = pcm
            block = a[i:i + block_frames].astype(np.float32)
            if offset:
                block -= offset
            block *= np.float32(scale)
            yield block
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
    stop = getattr(_THREAD, "stop", None)
    for block in _raw_blocks(source, max(1, int(block_seconds * rate))):
        if stop is not None and stop.is_set():
            raise _Stopped
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
    stays exact with a large DC offset.  A clip with no samples at ``sample_rate`` gives NaNs.
    """
    mean, std, n, _ = _stats(source, sample_rate=sample_rate, exact_within=exact_within)
    return mean, std, n


def _stats(source: AudioSource, *, sample_rate: int, exact_within: int | None):
    """:func:`track_stats` and, for a clip of at most ``exact_within`` samples, the clip itself (else None)."""
    n, mean, m2 = 0, 0.0, 0.0
    held: list[np.ndarray] | None = [] if exact_within is not None else None
    for b in blocks(source, sample_rate=sample_rate):
        if not b.size:  # the resampler's warm-up can give empty blocks; their mean is NaN
            continue
        if held is not None:
            if n + b.size <= exact_within:
                held.append(b)
            else:
                held = None
        b_mean = b.mean(dtype=np.float64)
        b_m2 = float(np.square(b - b_mean, dtype=np.float64).sum())
        total = n + b.size
        delta = b_mean - mean
        mean += delta * b.size / total
        m2 += b_m2 + delta * delta * n * b.size / total
        n = total
    if n == 0:
        return math.nan, math.nan, 0, None if held is None else np.zeros(0, np.float32)
    if held is not None:
        x = np.concatenate(held)
        return x.mean(), np.sqrt(x.var() + _NORM_EPS), n, x
    return mean, math.sqrt(m2 / n + _NORM_EPS), n, None


def normalize(x: np.ndarray, *, mean=None, std=None) -> np.ndarray:
    """Zero-mean, unit-variance waveform, as ``Wav2Vec2FeatureExtractor(do_normalize=True)``.

    Without ``mean``/``std`` it is the processor's own float32 arithmetic on ``x`` (bit-identical).
    """
    if mean is None or std is None:
        x = np.asarray(x, dtype=np.float32)
        return (x - x.mean()) / np.sqrt(x.var() + _NORM_EPS)
    return ((x - mean) / std).astype(np.float32, copy=False)


def _check_scope(do_normalize: bool, scope: str) -> None:
    if do_normalize and scope not in ("track", "window"):
        raise AudioError(f"normalisation scope {scope!r} must be 'track' or 'window'.")


def windows(source: AudioSource, *, sample_rate: int, window: int, min_last: int, min_samples: int,
            do_normalize: bool, scope: str = "track") -> Iterator[tuple[int, np.ndarray]]:
    """Yield ``(start_sample, waveform)`` windows of one clip, normalised as asked, streaming.

    With ``scope="track"`` a long clip is decoded twice (statistics, then windows) rather than held
    whole; a clip that fits one window is decoded once.

    Yields
    ------
    start_sample : int
        Position of the window in the clip at ``sample_rate``.
    waveform : np.ndarray
        ``(window,)`` float32, or shorter for a kept last window; a new array each time.

    Returns
    -------
    int
        The generator's return value (``yield from``'s result): the clip's length in samples at
        ``sample_rate``, a dropped tail included.

    Raises
    ------
    AudioError
        As :func:`blocks`; and when the clip is shorter than ``min_samples``.
    """
    _check_scope(do_normalize, scope)
    mean = std = None
    stream = None
    if do_normalize and scope == "track":
        mean, std, _, whole = _stats(source, sample_rate=sample_rate, exact_within=window)
        if whole is not None:  # the statistics pass held the whole clip: cut it, do not decode again
            stream = [whole]
    if stream is None:
        stream = blocks(source, sample_rate=sample_rate)

    def emit(start, x):
        if do_normalize:
            return start, normalize(x, mean=mean, std=std) if scope == "track" else normalize(x)
        return start, x.copy()

    buf = np.empty(window, np.float32)  # one window's worth, refilled: memory does not grow with the track
    buffered = 0
    emitted = 0
    for b in stream:
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
    return total


@dataclass(frozen=True)
class WindowsDone:
    """The end of one clip's windows in :func:`prefetch_windows`.

    Attributes
    ----------
    n_windows : int
        How many windows the clip gave.
    n_samples : int
        The clip's length in samples at the model rate (a dropped tail included), for progress
        in audio seconds.
    """

    n_windows: int
    n_samples: int


class _Crash:
    """An unexpected exception (a bug) in a prefetch thread, carried to the consumer to be raised there."""

    __slots__ = ("exc",)

    def __init__(self, exc: BaseException):
        self.exc = exc


def _clip_events(source: AudioSource, options: dict):
    """One clip's events: ``(start, wave)`` per window, then a :class:`WindowsDone` or its AudioError."""
    stream = windows(source, **options)
    n = 0
    try:
        while True:
            try:
                item = next(stream)
            except StopIteration as end:
                yield WindowsDone(n, end.value)
                return
            except AudioError as exc:
                yield exc
                return
            yield item
            n += 1
    finally:
        stream.close()  # a clip left part-way closes its file now, not at garbage collection


def _produce(sources, positions, options, slots: threading.Semaphore, out: queue.SimpleQueue,
             stop: threading.Event) -> None:
    """A prefetch thread: the events of ``sources[positions]`` into ``out``, one slot per event."""
    _THREAD.stop = stop
    try:
        for pos in positions:
            events = _clip_events(sources[pos], options)
            try:
                while True:
                    slots.acquire()  # before decoding: the window being made counts against the bound too
                    if stop.is_set():
                        return
                    event = next(events)
                    out.put(event)
                    if not isinstance(event, tuple):
                        break
            finally:
                events.close()
    except _Stopped:
        pass
    except BaseException as exc:  # a bug: it must surface in the caller, not die with the thread
        out.put(_Crash(exc))


def prefetch_windows(sources, *, workers: int = 1, max_ahead: int = 16,
                     **window_options) -> Iterator[tuple[int, object]]:
    """Yield every source's windows in source order while threads decode and window the next ones.

    soundfile and soxr release the GIL, so decoding and resampling overlap a model's forward
    pass in the caller's thread.

    Parameters
    ----------
    sources : sequence of AudioSource
        The clips, e.g. from :func:`as_sources`.
    workers : int
        Background threads, ``n = min(workers, max_ahead, len(sources))`` of them; source ``i`` is
        read by thread ``i % n``.  0 reads inline in the caller's thread (no threads), with the
        same events.
    max_ahead : int
        At most this many windows are produced and not yet consumed, in all threads together,
        the one last yielded included until the caller asks for the next event (memory stays
        bounded: a 2-hour track never sits in memory whole).  Each thread gets ``max_ahead // n``.
    **window_options
        Passed to :func:`windows`: ``sample_rate``, ``window``, ``min_last``, ``min_samples``,
        ``do_normalize``, ``scope``.

    Yields
    ------
    position : int
        Index of the source in ``sources``; non-decreasing.
    event : tuple, WindowsDone or AudioError
        For each source in turn: ``(start, wave)`` for each window, as :func:`windows` yields it,
        then exactly one of :class:`WindowsDone` or the :class:`AudioError` that reading the source
        raised (the following sources still come).

    Raises
    ------
    OptionError
        ``workers``, ``max_ahead`` or ``window_options`` unusable (at call time, before any thread starts).
    AudioError
        An item of ``sources`` is not an :class:`AudioSource`; a bad normalisation scope.
    Exception
        Any other exception in a thread (a bug) is raised here, in order, at its source.

    Notes
    -----
    Closing the generator early (``break``, ``.close()``, an exception in the loop body) stops and
    joins its threads promptly: each finishes at most the block (10 s of audio) it is decoding.
    """
    for name, value, least in (("workers", workers, 0), ("max_ahead", max_ahead, 1)):
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < least:
            raise OptionError(f"{name}={value!r} must be an integer >= {least}.")
    try:
        inspect.signature(windows).bind(None, **window_options)
    except TypeError as exc:
        raise OptionError(f"prefetch_windows: window options {sorted(window_options)} do not fit windows() "
                          f"({exc}); pass sample_rate, window, min_last, min_samples, do_normalize and optionally "
                          "scope.") from None
    _check_scope(window_options["do_normalize"], window_options.get("scope", "track"))
    sources = list(sources)
    for i, s in enumerate(sources):
        if not isinstance(s, AudioSource):
            raise AudioError(f"prefetch_windows: source {i} is a {type(s).__name__}, not an AudioSource; "
                             "pass as_sources(clips).")
    return _prefetched(sources, int(workers), int(max_ahead), window_options)


def _prefetched(sources: list, workers: int, max_ahead: int, options: dict):
    n_threads = min(workers, max_ahead, len(sources))
    if n_threads == 0:
        for pos, source in enumerate(sources):
            for event in _clip_events(source, options):
                yield pos, event
        return
    stop = threading.Event()
    slots = [threading.Semaphore(max_ahead // n_threads) for _ in range(n_threads)]
    # one queue per thread, read in source order: order is kept, and no thread can take another's slots
    queues = [queue.SimpleQueue() for _ in range(n_threads)]
    threads = [threading.Thread(target=_produce, name=f"m2v_lab-prefetch-{k}", daemon=True,
                                args=(sources, range(k, len(sources), n_threads), options, slots[k], queues[k], stop))
               for k in range(n_threads)]
    for t in threads:
        t.start()
    try:
        for pos in range(len(sources)):
            k = pos % n_threads
            while True:
                event = queues[k].get()
                if isinstance(event, _Crash):
                    raise event.exc
                yield pos, event
                slots[k].release()  # only once the caller is back: the window it held counted until now
                if not isinstance(event, tuple):
                    break
    finally:
        stop.set()
        for s in slots:
            s.release()  # a thread waiting for a slot wakes, sees the stop and ends
        for t in threads:
            t.join()
