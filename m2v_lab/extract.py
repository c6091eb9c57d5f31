"""Audio clips in, per-layer features out: the one-liner every notebook starts with.

>>> feats = m2v.extract(model, ["a.wav", "b.flac"], pool="mean", cache_dir=True)
>>> feats.pooled.shape           # (layers, clips, dim), e.g. (13, 2, 768)

How: clips are first looked up in the cache (when one is used); the others are decoded,
resampled and cut into windows by background threads (:func:`m2v_lab.audio.prefetch_windows`)
while the model runs.  Windows wait in buckets keyed by their exact length and run through
the model a batch at a time.  Only equal-length windows share a batch — zero-padding changes
these models' outputs even with an attention mask (a 4 s clip padded to 6 s moved every
feature of music2vec-v1 by up to 3.5) — so odd lengths run alone, and every clip gets exactly
the numbers it gets on its own.  Pooling happens per window as results arrive (float64 sums),
so memory does not grow with track length unless frames are asked for (``pool=None``).  A
clip that fails is recorded in ``feats.failed`` with its reason (and one warning says how many
failed) while the rest go on; running out of device memory stops the run with advice.
"""

from __future__ import annotations

import hashlib
import json
import re
import warnings
from collections import OrderedDict
from contextlib import closing
from dataclasses import dataclass, field

import numpy as np
import torch

from . import audio
from .cache import CacheWarning, FeatureCache, open_cache, resolve_cache_dir
from .errors import AudioError, CacheError, M2VLabError, ModelError, OptionError
from .features import Features
from .layers import resolve_layers
from .models import LoadedModel, load_model
from .settings import EXTRACTION_VERSION, ExtractSettings

__all__ = ["extract", "ExtractWarning", "EXTRACTION_VERSION", "resolve_settings", "clip_key", "is_cached",
           "window_options", "store_clips", "store_decoded", "decode_clip", "StoreReport"]

_UNSET = type("_Unset", (), {"__repr__": lambda self: "<default>"})()  # an option the caller did not pass


class ExtractWarning(UserWarning):
    """Some clips could not be extracted and are left out of the result."""


@dataclass
class _Clip:
    """Book-keeping for one clip whose windows are in flight."""

    index: int
    source: audio.AudioSource
    key: str | None = None
    needed: list[int] | None = None  # frame layers to write to the cache (all asked, or those missing)
    seconds: float = 0.0  # audio duration, for progress
    n_windows: int | None = None  # known once the clip has streamed to its end
    received: int = 0
    done: int = 0
    failed: str | None = None
    finished: bool = False
    windows: dict = field(default_factory=dict)  # window number -> (start, samples, frames)
    total: np.ndarray | None = None  # float64 sums (mean) or running max, (layers, dim)
    frames: dict = field(default_factory=dict)  # window number -> (asked layers, frames, dim)


_DEVICE_ERRORS = tuple(e for e in (getattr(torch, "OutOfMemoryError", None),
                                   getattr(torch, "AcceleratorError", None)) if e is not None)
_DEVICE_MESSAGE = re.compile(r"out of memory|CUDA|CUBLAS|cuDNN|MPS backend|device-side|HIP error", re.I)


def _is_device_error(exc: BaseException) -> bool:
    return isinstance(exc, _DEVICE_ERRORS) or (isinstance(exc, RuntimeError)
                                                and bool(_DEVICE_MESSAGE.search(str(exc))))


def _free_device_memory(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()
    elif device.type == "mps" and hasattr(torch, "mps"):
        torch.mps.empty_cache()


def clip_key(fingerprint: str, settings: ExtractSettings, source: audio.AudioSource) -> str:
    """The cache key of one clip: sha256 of the model fingerprint, the audio content and ``settings``.

    Computed without running the model (it reads the file's bytes to hash them), so engines can tell
    what the cache already holds before scheduling any work.

    Raises
    ------
    AudioError
        The clip cannot be read (missing, a folder, not audio …), with the precise reason.
    """
    try:
        content = source.content_hash()
    except AudioError:
        audio.check(source)  # the precise reason (a folder, not audio …) when there is one
        raise
    payload = json.dumps({"model": fingerprint, "audio": content, **settings.key()}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()


def _find_entry(cache: FeatureCache, fingerprint: str, key: str, settings: ExtractSettings, positions):
    """``(head tensors, frame layers to write)`` of a clip's entry: ``(None, positions)`` when there is
    no usable head, ``(tensors, [])`` when the entry is whole, ``(tensors, missing layers)`` when
    frames of some asked layers are not stored yet."""
    frames = settings.pool is None
    entry = cache.get(fingerprint, key, names=("windows",) if frames else ("windows", "pooled"))
    if entry is None:
        return None, [int(p) for p in positions]
    return entry[0], cache.missing_layers(fingerprint, key, positions) if frames else []


def is_cached(cache: FeatureCache, fingerprint: str, key: str, settings: ExtractSettings, positions) -> bool:
    """Whether ``cache`` holds the whole entry of ``key`` — the lookup :func:`extract` makes (the head
    read and its digests checked; for frames, every asked layer's file present)."""
    tensors, needed = _find_entry(cache, fingerprint, key, settings, positions)
    return tensors is not None and not needed


def window_options(settings: ExtractSettings, min_samples: int) -> dict:
    """Keyword arguments of :func:`m2v_lab.audio.windows` / :func:`~m2v_lab.audio.prefetch_windows` that
    cut audio into the windows ``settings`` describe (``min_samples``: the model's receptive field)."""
    return dict(sample_rate=settings.sample_rate, window=settings.window_samples,
                min_last=settings.min_last_samples, min_samples=int(min_samples),
                do_normalize=settings.do_normalize, scope=settings.normalize_scope)


class _CachedFrames:
    """One clip's frames ``(layers, frames, dim)``, read from its per-layer cache files on demand.

    A layer file that is gone (cache cleared) or fails its digest is recomputed, with a warning.
    """

    def __init__(self, run: "_Extractor", clip: _Clip):
        self.run, self.source, self.key = run, clip.source, clip.key

    def __call__(self) -> np.ndarray:
        run = self.run
        layers = {p: run.cache.get_layer(run.fingerprint, self.key, p) for p in run.positions}
        lost = [p for p, a in layers.items() if a is None]
        if lost:
            warnings.warn(f"cache files of layers {lost} of {self.source.label} are gone or unusable; "
                          "recomputing them.", CacheWarning, stacklevel=3)
            layers.update(zip(lost, run.recompute(self.source, self.key, lost)))
        return np.stack([layers[p] for p in run.positions])


class _Extractor:
    def __init__(self, model: LoadedModel, fingerprint: str, sources, settings, *, positions, batch_size,
                 cache, on_error, progress, decode_workers, isolate=False, store_only=False):
        from tqdm.auto import tqdm

        self.model, self.fingerprint, self.sources, self.settings = model, fingerprint, sources, settings
        self.positions, self.batch_size, self.cache, self.on_error = positions, batch_size, cache, on_error
        self.decode_workers = decode_workers
        # isolate: a batch holds windows of one clip only, so a clip's numbers never depend on which other
        # clips ran beside it (the engines' rule: entries are the same bytes whoever computes them).
        # store_only: entries go to the cache and nothing is kept in memory; a failing cache write stops the run.
        self.isolate, self.store_only = isolate, store_only
        self.stored: list[int] = []  # clips computed and written (store_only)
        self.rate = settings.sample_rate
        self.frames_dtype = np.dtype(settings.frames_dtype or "float32")
        self.results: dict[int, tuple] = {}
        self.failed: dict[str, str] = {}
        self.pending: OrderedDict[int, list] = OrderedDict()  # window length -> [(clip, number, start, wave)]
        self.n_pending = 0
        # Odd-length windows (short clips, tails) wait for partners only this long, bounding memory.
        self.max_pending = 4 * batch_size
        self.hits = 0
        self.seconds_done = 0.0
        # Progress counts audio seconds, so a two-hour track moves the bar window by window.
        self.bar = tqdm(total=None, desc=f"extract {model.name}", unit=" audio s", disable=not progress)

    # -- bookkeeping ------------------------------------------------------------
    def advance(self, seconds: float):
        self.seconds_done += seconds
        self.bar.update(int(self.seconds_done) - self.bar.n)

    def fail(self, clip: _Clip, reason: str, exc: BaseException | None = None):
        if self.on_error == "raise":
            if isinstance(exc, M2VLabError):
                raise exc
            raise ModelError(f"{clip.source.label}: {reason}") from exc
        if clip.failed is None:
            clip.failed = reason
            self.failed[clip.source.clip_id] = reason
            clip.frames, clip.total = {}, None
            self.advance(max(0.0, clip.seconds - sum(n for _, n, _ in clip.windows.values()) / self.rate))

    def key(self, source: audio.AudioSource) -> str:
        return clip_key(self.fingerprint, self.settings, source)

    def cached(self, clip: _Clip) -> bool:
        """Serve ``clip`` from the cache if it is there whole; else note which frame layers to write."""
        tensors, clip.needed = _find_entry(self.cache, self.fingerprint, clip.key, self.settings, self.positions)
        if tensors is None or clip.needed:
            return False
        if not self.store_only:
            result = _CachedFrames(self, clip) if self.settings.pool is None else tensors["pooled"][self.positions]
            self.results[clip.index] = (result, tensors["windows"])
        self.hits += 1
        self.advance(float(tensors["windows"][:, 1].sum()) / self.rate)
        return True

    def finish_if_complete(self, clip: _Clip):
        if clip.failed or clip.finished or clip.n_windows is None or clip.done < clip.n_windows:
            return
        clip.finished = True
        order = sorted(clip.windows)
        windows = np.array([clip.windows[w] for w in order], dtype=np.int64).reshape(-1, 3)
        pool = self.settings.pool
        head = {"windows": windows}
        if pool == "mean":
            head["pooled"] = (clip.total / windows[:, 2].sum()).astype(np.float32)
        elif pool == "max":
            head["pooled"] = clip.total.astype(np.float32)
        else:
            frames = np.concatenate([clip.frames[w] for w in order], axis=1).astype(self.frames_dtype, copy=False)
        clip.frames, clip.total = {}, None
        if self.cache is not None:
            meta = {"model": self.model.name, "clip_id": clip.source.clip_id, **self.settings.key()}
            try:
                self.cache.put(self.fingerprint, clip.key, head, meta)
                if pool is None:
                    for p in clip.needed:
                        self.cache.put_layer(self.fingerprint, clip.key, p, frames[self.positions.index(p)])
            except CacheError as exc:  # finish the run without the cache rather than lose it
                if self.store_only:
                    raise  # the cache is all a store-only run makes
                warnings.warn(f"{exc} Going on without the cache.", CacheWarning, stacklevel=2)
                self.cache = None
        if self.store_only:
            self.stored.append(clip.index)
            return
        if pool is None:  # read back from the cache on demand when there is one, not held in memory
            result = _CachedFrames(self, clip) if self.cache is not None else frames
        else:
            result = head["pooled"][self.positions]
        self.results[clip.index] = (result, windows)

    def recompute(self, source: audio.AudioSource, key: str, layers: list[int]) -> list[np.ndarray]:
        """Frames of ``layers`` of one clip, computed afresh and written back to the cache."""
        again = _Extractor(self.model, self.fingerprint, [source], self.settings, positions=list(layers),
                           batch_size=1, cache=None, on_error="raise", progress=False, decode_workers=0)
        again()
        frames = again.results[0][0]
        for layer, array in zip(layers, frames):
            try:
                self.cache.put_layer(self.fingerprint, key, layer, array)
            except CacheError as exc:
                warnings.warn(f"{exc} The recomputed frames are used without caching them.", CacheWarning,
                              stacklevel=2)
                break
        return list(frames)

    # -- running the model --------------------------------------------------------
    def add(self, clip: _Clip, start: int, wave: np.ndarray):
        length = (clip.index, wave.size) if self.isolate else wave.size
        bucket = self.pending.setdefault(length, [])
        bucket.append((clip, clip.received, start, wave))
        clip.received += 1
        self.n_pending += 1
        if len(bucket) >= self.batch_size:
            self.run(length)
        elif self.n_pending > self.max_pending and not self.isolate:
            self.run(next(iter(self.pending)))

    def run_clip(self, clip: _Clip):
        """Run what is left of one clip's windows now (isolate: no other clip will join them)."""
        for length in [k for k in self.pending if k[0] == clip.index]:
            self.run(length)

    def run(self, length):
        items = self.pending.pop(length)
        self.n_pending -= len(items)
        self.forward([it for it in items if not it[0].failed])

    def forward(self, items: list):
        if not items:
            return
        try:
            states = self.model.layer_states(np.stack([it[3] for it in items]))
        except (RuntimeError, ModelError) as exc:
            if _is_device_error(exc):
                raise self.device_error(items, exc) from exc
            if len(items) == 1:
                return self.fail(items[0][0], f"model forward failed: {exc}", exc)
            for it in items:  # alone, so that one bad window does not sink its batch-mates
                self.forward([it])
            return
        for b, (clip, number, start, wave) in enumerate(items):
            self.accumulate(clip, number, start, wave.size, states[:, b])

    def device_error(self, items: list, exc: BaseException) -> ModelError:
        """Out of device memory (or a broken device) is no clip's fault: stop with advice."""
        self.pending.clear()
        _free_device_memory(self.model.device)
        seconds = items[0][3].size / self.rate
        return ModelError(
            f"{self.model.name} on {self.model.device} failed on a batch of {len(items)} windows of {seconds:.1f} s "
            f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}). Device memory was freed. "
            f"Fixes: a smaller batch_size (now {self.batch_size}), a shorter window= (now "
            f"{self.settings.window_seconds:g} s), half precision on a GPU "
            "(load_model(..., dtype='bfloat16')), or device='cpu'. Clips already done are in the cache when "
            "cache_dir= is set, so a rerun resumes.")

    def accumulate(self, clip: _Clip, number: int, start: int, n_samples: int, state):
        """Fold one window's states ``(layers, frames, dim)`` into its clip."""
        pool = self.settings.pool
        if pool == "mean":
            wide = state.cpu().double() if state.device.type == "mps" else state.double()  # MPS has no float64
            part = wide.sum(dim=1).cpu().numpy()
            clip.total = part if clip.total is None else clip.total + part
        elif pool == "max":
            part = state.amax(dim=1).cpu().double().numpy()
            clip.total = part if clip.total is None else np.maximum(clip.total, part)
        else:
            clip.frames[number] = state[self.positions].cpu().numpy()
        clip.windows[number] = (start, n_samples, state.shape[1])
        clip.done += 1
        self.advance(n_samples / self.rate)
        self.finish_if_complete(clip)

    # -- driver ----------------------------------------------------------------
    def lookup(self) -> list[_Clip]:
        """Serve cache hits; return the clips to compute, with their durations (bad files fail here)."""
        todo, pending_seconds = [], 0.0
        for index, source in enumerate(self.sources):
            clip = _Clip(index=index, source=source, needed=list(self.positions))
            try:
                if self.cache is not None:
                    clip.key = self.key(source)
                    if self.cached(clip):
                        continue
                clip.seconds = audio.duration(source)
            except AudioError as exc:
                self.fail(clip, str(exc), exc)
                continue
            todo.append(clip)
            pending_seconds += clip.seconds
        self.bar.total = self.seconds_done + pending_seconds
        self.bar.refresh()
        return todo

    def __call__(self):
        try:
            todo = self.lookup()
            events = audio.prefetch_windows(
                [c.source for c in todo], workers=self.decode_workers, max_ahead=max(4, 2 * self.batch_size),
                **window_options(self.settings, self.model.min_samples))
            with closing(events):
                self.consume(todo, events)
        finally:
            self.bar.close()

    def consume(self, todo: list[_Clip], events):
        """Run the model over ``events`` — ``(position in todo, event)`` as :func:`audio.prefetch_windows`
        yields them — and finish every clip."""
        for pos, event in events:
            clip = todo[pos]
            if clip.failed:
                continue
            if isinstance(event, audio.WindowsDone):
                clip.n_windows = event.n_windows
                if self.isolate:
                    self.run_clip(clip)
                self.finish_if_complete(clip)
            elif isinstance(event, AudioError):
                self.fail(clip, str(event), event)
                if self.isolate:
                    self.run_clip(clip)  # drops its waiting windows (a failed clip's windows never run)
            else:
                self.add(clip, *event)
        while self.pending:
            self.run(next(iter(self.pending)))


def _warn_failures(failed: dict[str, str], total: int):
    if not failed:
        return
    shown = "; ".join(f"{clip}: {reason[:160]}" for clip, reason in list(failed.items())[:3])
    more = f" (and {len(failed) - 3} more)" if len(failed) > 3 else ""
    warnings.warn(f"{len(failed)} of {total} clips failed and are left out of the features; feats.failed holds "
                  f"every reason. {shown}{more}", ExtractWarning, stacklevel=3)


def _clip_table(clips, sources: list, done: list[int]):
    """The rows of the extracted clips: the caller's own rows for a DataFrame, else where each came from."""
    import pandas as pd

    if hasattr(clips, "iterrows"):
        return clips.iloc[done]
    described = [str(sources[i].path) if sources[i].path is not None
                 else f"array ({len(sources[i].array)} samples at {sources[i].sample_rate} Hz)" for i in done]
    return pd.DataFrame({"path": described}, index=done)


def resolve_settings(model: LoadedModel, *, pool=_UNSET, layers=_UNSET, window=_UNSET, min_last=_UNSET,
                     do_normalize=_UNSET, normalize_scope=_UNSET, frames_dtype=_UNSET,
                     like: Features | None = None) -> tuple[list[int], ExtractSettings]:
    """``(layer positions, settings)`` that :func:`extract`'s options mean for ``model``.

    Options left out take their defaults (or, with ``like=``, the settings those features were made
    with); see :func:`extract` for each.  Engines use this so that they key and compute exactly as
    :func:`extract` does.

    Raises
    ------
    OptionError
        An option m2v_lab cannot use.
    """
    options = {"pool": "mean", "window": None, "min_last": 1.0, "do_normalize": None, "normalize_scope": "track",
               "frames_dtype": "float32", "layers": None}
    if like is not None:
        if not isinstance(like, Features):
            raise OptionError(f"like= takes Features (what extract() returned); got {type(like).__name__}.")
        options.update(like.settings.options(), layers=list(like.layer_names))
    given = dict(pool=pool, window=window, min_last=min_last, do_normalize=do_normalize,
                 normalize_scope=normalize_scope, frames_dtype=frames_dtype, layers=layers)
    options.update({k: v for k, v in given.items() if v is not _UNSET})
    if options["pool"] is not None and options["frames_dtype"] != "float32" and frames_dtype is _UNSET:
        options["frames_dtype"] = "float32"  # like= features kept as float16 frames, pooled now
    positions = resolve_layers(model.layer_names, options.pop("layers"))
    return positions, ExtractSettings.for_model(model, **options)


@dataclass
class StoreReport:
    """What one :func:`store_clips` / :func:`store_decoded` call did.

    Attributes
    ----------
    stored : list of int
        Positions (in the clips given) of the clips computed and written to the cache.
    hits : int
        Clips whose whole entry was already in the cache (nothing computed).
    failed : dict of str to str
        ``clip_id -> reason`` of the clips that could not be extracted.
    seconds : float
        Seconds of audio read (computed clips and failed ones' parts; hits count their audio too).
    """

    stored: list[int]
    hits: int
    failed: dict[str, str]
    seconds: float


def _store_run(model, sources, settings, positions, cache, batch_size, fingerprint, *, progress=False,
               decode_workers=0, mix_clips=False) -> _Extractor:
    if not isinstance(cache, FeatureCache):
        raise OptionError(f"cache is a {type(cache).__name__}; pass a FeatureCache.")
    if isinstance(batch_size, (bool, np.bool_)) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise OptionError(f"batch_size={batch_size!r} must be an integer >= 1.")
    return _Extractor(model, fingerprint or model.fingerprint, sources, settings, positions=list(positions),
                      batch_size=int(batch_size), cache=cache, on_error="collect", progress=progress,
                      decode_workers=int(decode_workers), isolate=not mix_clips, store_only=True)


def store_clips(model: LoadedModel, clips, *, settings: ExtractSettings, positions, cache: FeatureCache,
                batch_size: int = 8, decode_workers: int = 0, progress: bool = False,
                fingerprint: str | None = None, mix_clips: bool = False) -> StoreReport:
    """Compute the cache entries of ``clips`` that ``cache`` lacks, clip by clip, keeping nothing in memory.

    The command line's engines are built on this and on :func:`store_decoded`: the same lookup, windows,
    pooling, key and writer as :func:`extract`, except that **a batch never mixes clips** — a clip's
    windows are batched with each other only (a 3-window clip with ``batch_size=2`` runs as 2 + 1).
    Batch composition changes float rounding (~1e-6), so this is what makes an entry the same bytes
    whichever engine, worker or resumed run computed it, for the same device, precision, ``batch_size``
    and (on the CPU) torch thread count.  :func:`extract` reads these entries like its own.

    Parameters
    ----------
    model : LoadedModel
    clips
        Anything :func:`extract` takes (paths, a DataFrame with a ``path`` column, AudioSources …).
    settings, positions
        From :func:`resolve_settings` for ``model``.
    cache : FeatureCache
        Where entries go; a write that fails stops the run (:class:`~m2v_lab.errors.CacheError`).
    batch_size, decode_workers, progress
        As in :func:`extract`.
    fingerprint : str, optional
        ``model.fingerprint``, when the caller has it already.
    mix_clips : bool
        Let equal-length windows of different clips share a batch, as :func:`extract` does: faster for
        many short clips on a GPU, but an entry's float rounding (~1e-6) then depends on which clips ran
        together, so engines and reruns agree only to rounding.

    Returns
    -------
    StoreReport
    """
    sources = audio.as_sources(clips)
    run = _store_run(model, sources, settings, positions, cache, batch_size, fingerprint, progress=progress,
                     decode_workers=decode_workers, mix_clips=mix_clips)
    run()
    return StoreReport(stored=sorted(run.stored), hits=run.hits, failed=dict(run.failed), seconds=run.seconds_done)


def store_decoded(model: LoadedModel, items, *, settings: ExtractSettings, positions, cache: FeatureCache,
                  batch_size: int = 8, fingerprint: str | None = None, mix_clips: bool = False) -> StoreReport:
    """:func:`store_clips` for clips decoded elsewhere (e.g. by CPU workers of a cluster).

    Parameters
    ----------
    items : sequence of (AudioSource, key, events)
        Each clip, its cache key (:func:`clip_key`) and its events as :func:`decode_clip` returns them:
        ``(start, wave)`` per window, then a :class:`~m2v_lab.audio.WindowsDone` or the
        :class:`~m2v_lab.errors.AudioError` decoding raised.  The files are not read again.

    mix_clips : bool
        As in :func:`store_clips` (windows of the clips of this call may share a batch).

    Returns
    -------
    StoreReport
        ``stored`` holds positions in ``items``.
    """
    items = list(items)
    run = _store_run(model, [it[0] for it in items], settings, positions, cache, batch_size, fingerprint,
                     mix_clips=mix_clips)
    todo, streams = [], []
    try:
        for index, (source, key, events) in enumerate(items):
            clip = _Clip(index=index, source=source, key=key, needed=list(run.positions))
            if run.cached(clip):  # written meanwhile by another worker or run
                continue
            todo.append(clip)
            streams.append(events)
        run.consume(todo, ((pos, event) for pos, events in enumerate(streams) for event in events))
    finally:
        run.bar.close()
    return StoreReport(stored=sorted(run.stored), hits=run.hits, failed=dict(run.failed), seconds=run.seconds_done)


def decode_clip(source: audio.AudioSource, settings: ExtractSettings, min_samples: int) -> list:
    """One clip's events for :func:`store_decoded`: its windows as :func:`extract` cuts and normalises
    them (``(start, wave)`` each), then a :class:`~m2v_lab.audio.WindowsDone`, or the
    :class:`~m2v_lab.errors.AudioError` that reading it raised in their place (windows made before it
    are dropped)."""
    events = [event for _, event in audio.prefetch_windows([source], workers=0,
                                                           **window_options(settings, min_samples))]
    if isinstance(events[-1], AudioError):
        return events[-1:]
    return events


def extract(model: LoadedModel | str, clips, *, pool=_UNSET, layers=_UNSET, window=_UNSET, min_last=_UNSET,
            do_normalize=_UNSET, normalize_scope=_UNSET, frames_dtype=_UNSET, like: Features | None = None,
            batch_size: int = 8, decode_workers: int | None = None, cache_dir=None, on_error: str = "collect",
            progress: bool = True) -> Features:
    """Extract every layer's features of some clips.

    Parameters
    ----------
    model : LoadedModel or str
        From :func:`m2v_lab.load_model` (a name is loaded with default options).
    clips : path, sequence, mapping or DataFrame
        Paths, ``(array, sample_rate)`` or ``(tensor, sample_rate)`` tuples, ``{clip_id: path}``, or
        a DataFrame with a ``path`` column (optional ``clip_id``, ``start``, ``duration`` columns),
        as the :mod:`m2v_lab.datasets` loaders return.
    pool : {"mean", "max", None}, default "mean"
        Pool each layer over all frames of a clip (all its windows; the mean is frame-weighted),
        or keep frames (``None``; then use ``feats.frames(i)``).
    layers : int, str or a sequence of them, optional
        Keep only these states: indices (0 = pre_transformer, negative from the end, -1 = last
        block) or names.  Default: all.  With ``pool=None`` and a cache only these layers are
        written and read.
    window : float, optional
        Window length in seconds; default the model's pretraining context (30 s music2vec,
        5 s MERT).
    min_last : float, default 1.0
        A last window shorter than this many seconds is dropped (unless it is the whole clip).
    do_normalize : bool, optional
        Z-normalise waveforms; default follows the model's processor.
    normalize_scope : {"track", "window"}, default "track"
        Statistics of the whole track or of each window.
    frames_dtype : {"float32", "float16"}, default "float32"
        Precision frames are kept and cached in (``pool=None`` only; float16 halves memory and
        disk, and is part of the cache key).
    like : Features, optional
        Take every option above that is not given from how these features were made
        (``feats.settings``), e.g. ``extract(model, more_clips, like=feats)`` or, for one clip's
        frames, ``extract(model, clip, like=feats, pool=None)``.
    batch_size : int
        Windows per forward pass (equal-length windows only).
    decode_workers : int, optional
        Threads decoding and resampling upcoming clips while the model runs (0: in series).  Default:
        one on a GPU, where the model would otherwise wait for the decoder; none on the CPU, where
        decoding competes with the model for the same cores (measured no faster on 2 cores) and a
        decoding thread's memory arena grows peak memory with track length (+22 MB per 10 minutes
        with the tiny model, none in series).
    cache_dir : path, URI, bool or None
        Disk cache (see :mod:`m2v_lab.cache`): True for the default folder, None to use
        ``$M2V_LAB_CACHE`` when set, False for none; a ``pyarrow.fs`` URI (``s3://bucket/m2v``)
        reads and writes the same entries in an object store (e.g. one a cluster filled with
        ``m2v-lab extract --engine ray``).
    on_error : {"collect", "raise"}
        Collect per-clip failures in ``feats.failed`` (with one :class:`ExtractWarning`) and go
        on, or raise the first.  Running out of device memory always raises.
    progress : bool
        Show a progress bar (tqdm) counting seconds of audio.

    Returns
    -------
    Features
        ``.pooled`` ``(layers, clips, dim)`` float32, or ``.frames(i)`` ``(layers, frames, dim)``
        in ``frames_dtype``; ``.settings`` is the :class:`~m2v_lab.settings.ExtractSettings` used.

    Raises
    ------
    OptionError
        An option m2v_lab cannot use (the message names it and the values it takes).
    ModelError
        The device ran out of memory or failed (with what to change), or on_error="raise".
    """
    if on_error not in ("collect", "raise"):
        raise OptionError(f"on_error={on_error!r}: use 'collect' or 'raise'.")
    if isinstance(model, str):
        model = load_model(model)
    if not isinstance(model, LoadedModel):
        raise OptionError(f"model is a {type(model).__name__}; pass m2v.load_model(...) or a model name.")
    if decode_workers is None:
        decode_workers = 0 if model.device.type == "cpu" else 1
    for option, value, least in (("batch_size", batch_size, 1), ("decode_workers", decode_workers, 0)):
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or value < least:
            raise OptionError(f"{option}={value!r} must be an integer >= {least}.")
    if not isinstance(progress, (bool, np.bool_)):
        raise OptionError(f"progress={progress!r}: use True or False.")
    positions, settings = resolve_settings(model, pool=pool, layers=layers, window=window, min_last=min_last,
                                           do_normalize=do_normalize, normalize_scope=normalize_scope,
                                           frames_dtype=frames_dtype, like=like)
    sources = audio.as_sources(clips)
    root = resolve_cache_dir(cache_dir)
    cache = open_cache(root) if root is not None else None
    fingerprint = model.fingerprint  # once per call: every cache key of this run uses it
    run = _Extractor(model, fingerprint, sources, settings, positions=positions, batch_size=int(batch_size),
                     cache=cache, on_error=on_error, progress=bool(progress), decode_workers=int(decode_workers))
    run()
    _warn_failures(run.failed, len(sources))
    done = sorted(run.results)
    meta = dict(model.describe(), **settings.key(), window_seconds=settings.window_seconds,
                min_last_seconds=settings.min_last_seconds, frame_stride=int(np.prod(model.conv_strides)),
                receptive_field=model.min_samples, cache_dir=None if root is None else str(root),
                cache_hits=run.hits)
    common = dict(layer_names=[model.layer_names[p] for p in positions], layer_indices=positions,
                  clips=[sources[i].clip_id for i in done], source_index=done, meta=meta, failed=run.failed,
                  windows=[run.results[i][1] for i in done])
    common["clip_table"] = _clip_table(clips, sources, done)
    if settings.pool is None:
        return Features(frames=[run.results[i][0] for i in done], **common)
    pooled = (np.stack([run.results[i][0] for i in done], axis=1) if done
              else np.zeros((len(positions), 0, model.hidden_size), np.float32))
    return Features(pooled=pooled, **common)
