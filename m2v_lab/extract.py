"""Audio clips in, per-layer features out: the one-liner every notebook starts with.

>>> feats = m2v.extract(model, ["a.wav", "b.flac"], pool="mean", cache_dir=True)
>>> feats.pooled.shape           # (layers, clips, dim), e.g. (13, 2, 768)

How: each clip streams through :func:`m2v_lab.audio.windows`; windows wait in
buckets keyed by their exact length and run through the model a batch at a time.
Only equal-length windows share a batch — zero-padding changes these models'
outputs even with an attention mask (a 4 s clip padded to 6 s moved every
feature of music2vec-v1 by up to 3.5) — so odd lengths run alone, and every
clip gets exactly the numbers it gets on its own.  Pooling happens per window as
results arrive (float64 sums), so memory does not grow with track length unless
frames are asked for (``pool=None``).  A clip that fails is recorded in
``feats.failed`` with its reason and the rest go on.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from collections import OrderedDict
from dataclasses import dataclass, field

import numpy as np
import torch

from . import audio
from .cache import CacheWarning, FeatureCache, resolve_cache_dir
from .errors import AudioError, CacheError, M2VLabError, ModelError, OptionError
from .features import Features
from .models import LoadedModel, load_model

__all__ = ["extract", "EXTRACTION_VERSION"]

#: Bumped whenever a change to the extraction code changes its numbers (invalidates cache entries).
EXTRACTION_VERSION = "1"
_POOLS = ("mean", "max", None)


@dataclass
class _Clip:
    """Book-keeping for one clip whose windows are in flight."""

    index: int
    source: audio.AudioSource
    key: str | None
    n_windows: int | None = None  # known once the clip has streamed to its end
    done: int = 0
    failed: str | None = None
    windows: dict = field(default_factory=dict)  # window number -> (start, samples, frames)
    total: np.ndarray | None = None  # float64 sums (mean) or running max
    frames: dict = field(default_factory=dict)  # window number -> (layers, frames, dim)


def _layer_positions(model: LoadedModel, layers) -> list[int]:
    names = model.layer_names
    if layers is None:
        return list(range(len(names)))
    if isinstance(layers, (int, np.integer, str)):
        layers = [layers]
    out = []
    for layer in layers:
        if isinstance(layer, str):
            if layer not in names:
                raise ModelError(f"layers: no layer {layer!r} in {model.name}; names are {list(names)}.")
            out.append(names.index(layer))
        else:
            i = int(layer)
            if not 0 <= i < len(names):
                raise ModelError(f"layers: index {i} is out of range; {model.name} has states 0..{len(names) - 1} "
                                 "(0 = pre_transformer).")
            out.append(i)
    return out


def _settings(model: LoadedModel, *, pool, window, min_last, do_normalize, scope) -> dict:
    """Every parameter that changes the numbers (the non-audio, non-model part of the cache key)."""
    import transformers

    window_s = model.context_seconds if window is None else float(window)
    if not window_s > 0:
        raise OptionError(f"window={window!r} must be a positive number of seconds.")
    if window_s > 3600:
        raise OptionError(f"window={window!r} s is over an hour: did you pass samples instead of seconds?")
    window_samples = int(round(window_s * model.sample_rate))
    if window_samples < model.min_samples:
        raise OptionError(f"window={window_s} s is shorter than one frame's receptive field "
                          f"({model.min_samples} samples at {model.sample_rate} Hz).")
    if scope not in ("track", "window"):
        raise OptionError(f"normalize_scope={scope!r}: use 'track' or 'window'.")
    if not float(min_last) >= 0:
        raise OptionError(f"min_last={min_last!r} must be a non-negative number of seconds.")
    normalise = model.do_normalize if do_normalize is None else bool(do_normalize)
    return {
        "extraction_version": EXTRACTION_VERSION,
        "pool": pool,
        "sample_rate": model.sample_rate,
        "window_samples": window_samples,
        "min_last_samples": int(round(float(min_last) * model.sample_rate)),
        "do_normalize": normalise,
        "normalize_scope": scope if normalise else None,
        "dtype": str(model.dtype).replace("torch.", ""),
        "device_type": model.device.type,
        # kernels and model code change between releases; entries of other versions are not reused
        "torch": ".".join(torch.__version__.split(".")[:2]),
        "transformers": ".".join(transformers.__version__.split(".")[:2]),
    }


def _entry_key(model: LoadedModel, settings: dict, source: audio.AudioSource) -> str:
    payload = json.dumps({"model": model.fingerprint, "audio": source.content_hash(), **settings}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()


class _Extractor:
    def __init__(self, model: LoadedModel, sources, settings, *, positions, batch_size, cache, on_error, progress):
        from tqdm.auto import tqdm

        self.model, self.sources, self.settings, self.positions = model, sources, settings, positions
        self.batch_size, self.cache, self.on_error = batch_size, cache, on_error
        self.results: dict[int, tuple] = {}
        self.failed: dict[str, str] = {}
        self.pending: OrderedDict[int, list] = OrderedDict()  # window length -> [(clip, number, start, wave)]
        self.n_pending = 0
        # Odd-length windows (short clips, tails) wait for partners only this long, bounding memory.
        self.max_pending = 4 * batch_size
        self.hits = 0
        self.bar = tqdm(total=len(sources), desc=f"extract {model.name}", unit="clip", disable=not progress)

    # -- bookkeeping ------------------------------------------------------------
    def fail(self, clip: _Clip, reason: str, exc: BaseException | None = None):
        if self.on_error == "raise":
            if isinstance(exc, M2VLabError):
                raise exc
            raise ModelError(f"{clip.source.label}: {reason}") from exc
        if clip.failed is None:
            clip.failed = reason
            self.failed[clip.source.clip_id] = reason
            self.bar.update(1)

    def finish_if_complete(self, clip: _Clip):
        if clip.failed or clip.n_windows is None or clip.done < clip.n_windows:
            return
        order = sorted(clip.windows)
        windows = np.array([clip.windows[w] for w in order], dtype=np.int64)
        pool = self.settings["pool"]
        if pool == "mean":
            tensors = {"pooled": (clip.total / windows[:, 2].sum()).astype(np.float32)}
        elif pool == "max":
            tensors = {"pooled": clip.total.astype(np.float32)}
        else:
            tensors = {"frames": np.concatenate([clip.frames[w] for w in order], axis=1)}
        tensors["windows"] = windows
        clip.frames, clip.total = {}, None
        if self.cache is not None:
            meta = {"model": self.model.name, "clip_id": clip.source.clip_id, **self.settings}
            try:
                self.cache.put(self.model.fingerprint, clip.key, tensors, meta)
            except CacheError as exc:  # finish the run without the cache rather than lose it
                warnings.warn(f"{exc} Going on without the cache.", CacheWarning, stacklevel=2)
                self.cache = None
        if pool is None:
            if self.cache is not None:  # read back from the entry on demand, not held in memory
                tensors["frames"] = self._loader(clip.key)
            else:
                tensors["frames"] = tensors["frames"][self.positions]
        self.results[clip.index] = (tensors.get("pooled"), tensors.get("frames"), windows)
        self.bar.update(1)

    def _loader(self, key: str):
        cache, fingerprint = self.cache, self.model.fingerprint
        positions = None if self.positions == list(range(self.model.num_layers + 1)) else self.positions

        def load():
            frames = cache.frames(fingerprint, key, positions)
            if frames is None:
                raise CacheError(f"cache entry {cache.path(fingerprint, key)} is gone (cache cleared?); "
                                 "run extract() again.")
            return frames
        return load

    # -- running the model --------------------------------------------------------
    def add(self, clip: _Clip, number: int, start: int, wave: np.ndarray):
        bucket = self.pending.setdefault(wave.size, [])
        bucket.append((clip, number, start, wave))
        self.n_pending += 1
        if len(bucket) >= self.batch_size:
            self.run(wave.size)
        elif self.n_pending > self.max_pending:
            self.run(next(iter(self.pending)))

    def run(self, length: int):
        items = self.pending.pop(length)
        self.n_pending -= len(items)
        self.forward([it for it in items if not it[0].failed])

    def forward(self, items: list):
        if not items:
            return
        try:
            states = self.model.layer_states(np.stack([it[3] for it in items]))
        except (RuntimeError, ModelError) as exc:
            if len(items) == 1:
                return self.fail(items[0][0], f"model forward failed: {exc}", exc)
            for it in items:  # alone, so that one bad window does not sink its batch-mates
                self.forward([it])
            return
        for b, (clip, number, start, wave) in enumerate(items):
            self.accumulate(clip, number, start, wave.size, states[:, b])

    def accumulate(self, clip: _Clip, number: int, start: int, n_samples: int, state):
        """Fold one window's states ``(layers, frames, dim)`` into its clip."""
        pool = self.settings["pool"]
        if pool == "mean":
            wide = state.cpu().double() if state.device.type == "mps" else state.double()  # MPS has no float64
            part = wide.sum(dim=1).cpu().numpy()
            clip.total = part if clip.total is None else clip.total + part
        elif pool == "max":
            part = state.amax(dim=1).cpu().double().numpy()
            clip.total = part if clip.total is None else np.maximum(clip.total, part)
        else:
            clip.frames[number] = state.cpu().numpy()
        clip.windows[number] = (start, n_samples, state.shape[1])
        clip.done += 1
        self.finish_if_complete(clip)

    # -- driver ----------------------------------------------------------------
    def cached(self, clip: _Clip) -> bool:
        names = ("windows",) if self.settings["pool"] is None else ("windows", "pooled")
        entry = self.cache.get(self.model.fingerprint, clip.key, names=names)
        if entry is None:
            return False
        tensors, _ = entry
        frames = self._loader(clip.key) if self.settings["pool"] is None else None
        self.results[clip.index] = (tensors.get("pooled"), frames, tensors["windows"])
        self.hits += 1
        self.bar.update(1)
        return True

    def __call__(self):
        s = self.settings
        try:
            for index, source in enumerate(self.sources):
                clip = _Clip(index=index, source=source, key=None)
                try:
                    if self.cache is not None:
                        audio.check(source)  # a clear message for missing/undecodable files before hashing
                        clip.key = _entry_key(self.model, s, source)
                        if self.cached(clip):
                            continue
                    number = 0
                    for start, wave in audio.windows(
                            source, sample_rate=s["sample_rate"], window=s["window_samples"],
                            min_last=s["min_last_samples"], min_samples=self.model.min_samples,
                            do_normalize=s["do_normalize"], scope=s["normalize_scope"]):
                        self.add(clip, number, start, wave)
                        number += 1
                    clip.n_windows = number
                    self.finish_if_complete(clip)
                except AudioError as exc:
                    self.fail(clip, str(exc), exc)
            while self.pending:
                self.run(next(iter(self.pending)))
        finally:
            self.bar.close()


def extract(model: LoadedModel | str, clips, *, pool: str | None = "mean", layers=None,
            window: float | None = None, min_last: float = 1.0, do_normalize: bool | None = None,
            normalize_scope: str = "track", batch_size: int = 8, cache_dir=None,
            on_error: str = "collect", progress: bool = True) -> Features:
    """Extract every layer's features of some clips.

    Parameters
    ----------
    model : LoadedModel or str
        From :func:`m2v_lab.load_model` (a name is loaded with default options).
    clips : path, sequence, mapping or DataFrame
        Paths, ``(array, sample_rate)`` tuples, ``{clip_id: path}``, or a DataFrame with a
        ``path`` column (optional ``clip_id``, ``start``, ``duration`` columns), as the
        :mod:`m2v_lab.datasets` loaders return.
    pool : {"mean", "max", None}
        Pool each layer over all frames of a clip (all its windows; the mean is frame-weighted),
        or keep frames (``None``; then use ``feats.frames(i)``).
    layers : sequence of int or str, optional
        Keep only these states (indices, 0 = pre_transformer, or names). Default: all.
    window : float, optional
        Window length in seconds; default the model's pretraining context (30 s music2vec,
        5 s MERT).
    min_last : float
        A last window shorter than this many seconds is dropped (unless it is the whole clip).
    do_normalize : bool, optional
        Z-normalise waveforms; default follows the model's processor.
    normalize_scope : {"track", "window"}
        Statistics of the whole track or of each window.
    batch_size : int
        Windows per forward pass (equal-length windows only).
    cache_dir : path, bool or None
        Disk cache (see :mod:`m2v_lab.cache`): True for the default folder, None to use
        ``$M2V_LAB_CACHE`` when set, False for none.
    on_error : {"collect", "raise"}
        Collect per-clip failures in ``feats.failed`` and go on, or raise the first.
    progress : bool
        Show a progress bar (tqdm).

    Returns
    -------
    Features
        ``.pooled`` ``(layers, clips, dim)`` or ``.frames(i)`` ``(layers, frames, dim)``, float32.
    """
    if pool not in _POOLS:
        raise OptionError(f"pool={pool!r}: use 'mean', 'max' or None (frames).")
    if on_error not in ("collect", "raise"):
        raise OptionError(f"on_error={on_error!r}: use 'collect' or 'raise'.")
    if not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise OptionError(f"batch_size={batch_size!r} must be a positive integer.")
    if isinstance(model, str):
        model = load_model(model)
    positions = _layer_positions(model, layers)
    settings = _settings(model, pool=pool, window=window, min_last=min_last, do_normalize=do_normalize,
                         scope=normalize_scope)
    sources = audio.as_sources(clips)
    root = resolve_cache_dir(cache_dir)
    cache = FeatureCache(root) if root is not None else None
    run = _Extractor(model, sources, settings, positions=positions, batch_size=int(batch_size), cache=cache,
                     on_error=on_error, progress=progress)
    run()
    done = sorted(run.results)
    meta = dict(model.describe(), **settings, window_seconds=settings["window_samples"] / model.sample_rate,
                min_last_seconds=settings["min_last_samples"] / model.sample_rate,
                frame_stride=int(np.prod(model.conv_strides)), receptive_field=model.min_samples,
                cache_dir=None if root is None else str(root), cache_hits=run.hits)
    common = dict(layer_names=[model.layer_names[p] for p in positions], layer_indices=positions,
                  clips=[sources[i].clip_id for i in done], source_index=done, meta=meta, failed=run.failed,
                  windows=[run.results[i][2] for i in done])
    if hasattr(clips, "iterrows"):
        common["source_labels"] = list(clips.index[done])
    if pool is None:
        return Features(frames=[run.results[i][1] for i in done], **common)
    pooled = (np.stack([run.results[i][0][positions] for i in done], axis=1) if done
              else np.zeros((len(positions), 0, model.hidden_size), np.float32))
    return Features(pooled=pooled, **common)
