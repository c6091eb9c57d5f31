"""The Ray engine: the local engine's extraction as a Ray Data pipeline, filling the same cache.

::

    clips (path, clip_id)                                   driver: SRC read, nothing opened
      -> map(_decode_row)           CPU tasks:  sha256 of the file -> cache key -> lookup (skip hits);
                                                decode, resample, cut into windows, normalise
      -> map_batches(_ModelActor)   actor pool: the model on a GPU (or CPUs); entries written
                                                with m2v_lab.extract.store_decoded
      -> status rows                driver:     progress, failures, summary

The actor computes each entry with :func:`m2v_lab.extract.store_decoded` — the code path of the
local engine, with the windows the CPU tasks made by the same function — so entries are the same
bytes as the local engine's (same device, precision, batch size and, on the CPU, thread count).
The cache (``cache_dir``) must be reachable from every node under the same name: a shared filesystem
path, or a ``pyarrow.fs`` URI (``s3://bucket/prefix``) that every node can open.  Audio paths must
be readable from every node too.

A clip that fails (unreadable, too short, a model error) comes back as a failed row with its
reason; the rest go on.  What the cache holds is skipped in the CPU tasks, before any model work is
scheduled, so a killed run resumes when started again.

Ray is imported lazily; without it, :func:`run_ray` says how to install it.
"""

from __future__ import annotations

import math
import os
import time

import numpy as np

from ..errors import AudioError, M2VLabError, OptionError
from .common import ExtractJob, RunSummary, load_job_model

__all__ = ["run_ray", "import_ray"]

_INSTALL = "pip install 'm2v_lab[ray]'"
_MAX_BLOCKS = 4096
_CACHES: dict = {}  # one cache object per location in each worker process


def import_ray():
    """``ray`` and ``ray.data``, or an :class:`~m2v_lab.errors.OptionError` saying how to install them."""
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError as exc:
        raise OptionError(f"--engine ray needs Ray Data, which is not installed here ({exc}); install it with "
                          f"{_INSTALL}, or use --engine local.") from exc
    return ray


def _cache(location: str):
    from ..cache import open_cache

    if location not in _CACHES:
        _CACHES[location] = open_cache(location)
    return _CACHES[location]


def _source(row):
    from ..audio import AudioSource

    start, duration = (None if v is None or (isinstance(v, float) and math.isnan(v)) else float(v)
                       for v in (row["start"], row["duration"]))
    return AudioSource(clip_id=str(row["clip_id"]), path=str(row["path"]), start=start, duration=duration)


def _decode_row(row: dict, *, fingerprint: str, settings: dict, positions: list, min_samples: int,
                cache: str) -> dict:
    """CPU task: one clip's key, its cache lookup and, when it is missing, its windows (concatenated)."""
    from ..extract import clip_key, decode_clip, is_cached
    from ..settings import ExtractSettings

    out = {"index": int(row["index"]), "clip_id": str(row["clip_id"]), "path": str(row["path"]),
           "start": row["start"], "duration": row["duration"], "key": "", "status": "todo", "reason": "",
           "wave": np.zeros(0, np.float32), "starts": np.zeros(0, np.int64), "lengths": np.zeros(0, np.int64),
           "n_samples": 0, "decode_pid": os.getpid()}
    try:
        settings = ExtractSettings(**settings)
        source = _source(row)
        out["key"] = key = clip_key(fingerprint, settings, source)
        if is_cached(_cache(cache), fingerprint, key, settings, positions):
            out["status"] = "cached"
            return out
        events = decode_clip(source, settings, min_samples)
        if isinstance(events[-1], AudioError):
            raise events[-1]
        windows, done = events[:-1], events[-1]
        out["wave"] = np.concatenate([w for _, w in windows]).astype(np.float32, copy=False)
        out["starts"] = np.array([s for s, _ in windows], np.int64)
        out["lengths"] = np.array([w.size for _, w in windows], np.int64)
        out["n_samples"] = int(done.n_samples)
    except AudioError as exc:
        out.update(status="failed", reason=str(exc))
    except Exception as exc:  # noqa: BLE001 - one clip's unexpected failure is reported, not fatal
        out.update(status="failed", reason=f"decoding failed in a Ray task: {type(exc).__name__}: {exc}")
    return out


class _ModelActor:
    """Model actor: loads the model once, then computes and writes the entries of the clips it is handed."""

    def __init__(self, job: dict, device: str, threads: int, expected: dict, cache: str):
        import torch

        from ..settings import ExtractSettings

        job = ExtractJob(**dict(job, threads=threads))
        self.model, self.positions, self.settings = load_job_model(job, device=device)
        torch.set_num_threads(threads)
        self.fingerprint = self.model.fingerprint
        self.batch_size, self.mix_clips = job.batch_size, job.mix_clips
        self.cache = _cache(cache)
        got = {"fingerprint": self.fingerprint, "settings": self.settings.key(), "positions": list(self.positions)}
        want = {"fingerprint": expected["fingerprint"], "settings": ExtractSettings(**expected["settings"]).key(),
                "positions": list(expected["positions"])}
        if got != want:
            differ = sorted(k for k in got if got[k] != want[k])
            raise M2VLabError(f"the model on this node differs from the one the driver planned with ({differ}): "
                              "is the same model (and revision) in every node's Hugging Face cache, and the "
                              "same torch and transformers version installed?")

    def __call__(self, batch: dict) -> dict:
        from ..audio import WindowsDone
        from ..extract import store_decoded

        n = len(batch["index"])
        status = [str(s) for s in batch["status"]]
        reason = [str(r) for r in batch["reason"]]
        seconds = [0.0] * n
        items, where = [], []
        for i in range(n):
            if status[i] != "todo":
                continue
            wave = np.asarray(batch["wave"][i], dtype=np.float32)
            starts, lengths = np.asarray(batch["starts"][i]), np.asarray(batch["lengths"][i])
            offsets = np.concatenate([[0], np.cumsum(lengths)])
            events = [(int(s), wave[offsets[k]:offsets[k + 1]]) for k, s in enumerate(starts)]
            events.append(WindowsDone(len(events), int(batch["n_samples"][i])))
            row = {k: batch[k][i] for k in ("clip_id", "path", "start", "duration")}
            items.append((_source(row), str(batch["key"][i]), events))
            where.append(i)
            seconds[i] = float(lengths.sum()) / self.settings.sample_rate
        if items:
            try:
                report = store_decoded(self.model, items, settings=self.settings, positions=self.positions,
                                       cache=self.cache, batch_size=self.batch_size, fingerprint=self.fingerprint,
                                       mix_clips=self.mix_clips)
                stored = set(report.stored)
                for pos, i in enumerate(where):
                    clip_id = items[pos][0].clip_id
                    if pos in stored:
                        status[i] = "stored"
                    elif clip_id in report.failed:
                        status[i], reason[i] = "failed", report.failed[clip_id]
                    else:
                        status[i] = "cached"  # written meanwhile by another worker or run
            except M2VLabError as exc:  # out of device memory, cache unwritable: these clips fail, the run goes on
                for i in where:
                    status[i], reason[i] = "failed", str(exc)
        return {"index": np.asarray(batch["index"], np.int64), "clip_id": np.asarray(batch["clip_id"], object),
                "status": np.asarray(status, object), "reason": np.asarray(reason, object),
                "seconds": np.asarray(seconds, np.float64),
                "decode_pid": np.asarray(batch["decode_pid"], np.int64),
                "actor_pid": np.full(n, os.getpid(), np.int64)}


def _plan_remote(job: dict, device: str):
    """What the driver needs to key clips, computed where the actors run (their device and precision)."""
    model, positions, settings = load_job_model(ExtractJob(**job), device=device)
    return {"fingerprint": model.fingerprint, "settings": settings.key(), "positions": list(positions),
            "min_samples": int(model.min_samples), "name": model.name}


def _resolve_device(ray, device: str) -> str:
    if device in ("auto", None):
        return "cuda" if ray.cluster_resources().get("GPU", 0) > 0 else "cpu"
    if str(device).startswith("mps"):
        raise OptionError("--device mps is not available under Ray; use --engine local on a Mac.")
    if str(device).startswith("cuda:"):
        raise OptionError(f"--device {device}: under Ray each actor gets its own GPU from Ray; use --device cuda.")
    return str(device)


def run_ray(sources, job: ExtractJob, *, address: str | None = None, actors: int | None = None,
            actor_cpus: float = 1.0, actor_gpus: float | None = None, decode_cpus: float = 1.0,
            decode_memory_mb: float = 512, clips_per_call: int = 4, on_result=None) -> RunSummary:
    """Compute the entries of ``sources`` that the job's cache lacks, on a Ray cluster.

    Parameters
    ----------
    sources : list of AudioSource
        File clips (paths every node can read).
    job : ExtractJob
        Its ``cache_dir`` must be reachable from every node: a shared filesystem path or a
        ``pyarrow.fs`` URI.
    address : str, optional
        Cluster to join (``ray.init(address=...)``): ``"auto"``, ``"ray://head:10001"``,
        ``"host:6379"``.  Default ``$RAY_ADDRESS``, else a new local instance.  Ignored when Ray is
        already initialised in this process (e.g. a notebook called ``ray.init`` itself).
    actors : int, optional
        Size of the model actor pool; default one per GPU on GPUs (``actor_gpus`` each), one on CPUs.
    actor_cpus, actor_gpus : float
        Resources per model actor; ``actor_gpus`` defaults to 1 on CUDA and 0 on the CPU.  The actor's
        torch thread count is ``job.threads`` or ``max(1, int(actor_cpus))``.
    decode_cpus, decode_memory_mb : float
        CPUs and memory (MiB; a decoded clip and the decoder's buffers: a 30-minute track is ~110 MB
        at 16 kHz) reserved per decoding task.
    clips_per_call : int
        Clips handed to a model actor at once (``map_batches(batch_size=...)``; an explicit integer,
        as Ray requires with GPUs).
    on_result : callable, optional
        Called with each status row as it arrives (a dict with ``clip_id``, ``status``, ``reason`` …).

    Returns
    -------
    RunSummary

    Raises
    ------
    OptionError
        Ray is not installed; an option Ray cannot use.
    """
    from tqdm.auto import tqdm

    ray = import_ray()
    start = time.perf_counter()
    if isinstance(clips_per_call, bool) or not isinstance(clips_per_call, int) or clips_per_call < 1:
        raise OptionError(f"clips_per_call={clips_per_call!r} must be an integer >= 1.")
    for source in sources:
        if source.path is None:
            raise OptionError(f"{source.label}: the Ray engine takes audio files (paths every node can read), "
                              "not in-memory arrays.")
    started_here = not ray.is_initialized() and not (address or os.environ.get("RAY_ADDRESS"))
    if not ray.is_initialized():
        ray.init(address=address or os.environ.get("RAY_ADDRESS") or None, ignore_reinit_error=True,
                 log_to_driver=True)
    device = _resolve_device(ray, job.device)
    gpus = (1.0 if device.startswith("cuda") else 0.0) if actor_gpus is None else float(actor_gpus)
    if gpus > 0 and not device.startswith("cuda"):
        raise OptionError(f"--actor-gpus {actor_gpus} with --device {device}: GPUs are for --device cuda.")
    if gpus > 0 and ray.cluster_resources().get("GPU", 0) < gpus:
        if started_here:  # a local instance never grows GPUs: waiting for one would hang
            raise OptionError(f"--device {device} needs {gpus:g} GPU per actor, and this machine's Ray instance has "
                              f"{ray.cluster_resources().get('GPU', 0):g}; use --device cpu, or join a cluster with "
                              "GPUs (--ray-address / RAY_ADDRESS).")
        import warnings

        warnings.warn(f"the Ray cluster reports {ray.cluster_resources().get('GPU', 0):g} GPUs now; the model actors "
                      "wait until an autoscaler adds some (Ctrl-C to stop).", RuntimeWarning, stacklevel=2)
    if actors is None:
        actors = max(1, int(ray.cluster_resources().get("GPU", 0) // gpus)) if gpus > 0 else 1
    threads = job.threads or max(1, int(actor_cpus))
    job_dict = dict(job.as_dict(), progress=False)
    cache_location = job.cache_location()
    if device == "cpu":  # the driver can make the plan itself; on GPUs it is made where the actors run
        model, positions, settings = load_job_model(ExtractJob(**dict(job_dict, threads=None)), device="cpu")
        plan = {"fingerprint": model.fingerprint, "settings": settings.key(), "positions": list(positions),
                "min_samples": int(model.min_samples), "name": model.name}
        del model
    else:
        plan = ray.get(ray.remote(num_cpus=actor_cpus, num_gpus=gpus)(_plan_remote).remote(job_dict, device))
    summary = RunSummary(engine="ray", total=len(sources), cache=cache_location, model=plan["name"],
                         fingerprint=plan["fingerprint"])
    if not sources:
        summary.wall_seconds = time.perf_counter() - start
        return summary

    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False  # one bar of our own, counting clips
    rows = [{"index": i, "clip_id": s.clip_id, "path": str(s.path),
             "start": math.nan if s.start is None else float(s.start),
             "duration": math.nan if s.duration is None else float(s.duration)} for i, s in enumerate(sources)]
    ds = ray.data.from_items(rows, override_num_blocks=min(len(rows), _MAX_BLOCKS))
    # The memory reservation (a decoded clip and the decoder's buffers) also keeps decoding in its own CPU
    # tasks: operators with equal resources are fused, and the model actors would then decode themselves.
    ds = ds.map(_decode_row, num_cpus=decode_cpus, memory=int(decode_memory_mb * 2**20),
                fn_kwargs=dict(fingerprint=plan["fingerprint"], settings=plan["settings"],
                               positions=plan["positions"], min_samples=plan["min_samples"], cache=cache_location))
    ds = ds.map_batches(_ModelActor, batch_size=int(clips_per_call), batch_format="numpy",
                        compute=ray.data.ActorPoolStrategy(size=int(actors)), num_cpus=actor_cpus, num_gpus=gpus,
                        fn_constructor_kwargs=dict(job=job_dict, device=device, threads=threads, expected=plan,
                                                   cache=cache_location))
    seen: set[int] = set()
    bar = tqdm(total=len(rows), desc=f"extract {plan['name']} (ray)", unit=" clips", disable=not job.progress)
    try:
        for row in ds.iter_rows():
            index = int(row["index"])
            seen.add(index)
            status = row["status"]
            if status == "stored":
                summary.computed += 1
                summary.audio_seconds += float(row["seconds"])
                summary.stored_ids.append(str(row["clip_id"]))
            elif status == "cached":
                summary.cached += 1
            else:
                summary.failed[str(row["clip_id"])] = str(row["reason"]) or "failed (no reason given)"
            bar.update(1)
            if on_result is not None:
                on_result(dict(row))
    finally:
        bar.close()
    for i, source in enumerate(sources):
        if i not in seen:
            summary.failed[source.clip_id] = "no result came back from the Ray pipeline (a worker died?); rerun"
    summary.wall_seconds = time.perf_counter() - start
    return summary
