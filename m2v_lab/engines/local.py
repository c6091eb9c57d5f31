"""The local engine: this process fills the cache, clip after clip (the command line's default)."""

from __future__ import annotations

import time

from ..errors import AudioError
from .common import ExtractJob, RunSummary, load_job_model

__all__ = ["run_local"]


def run_local(sources, job: ExtractJob, *, decode_workers: int | None = None) -> RunSummary:
    """Compute the entries of ``sources`` that the job's cache lacks.

    First every clip is hashed and looked up in the cache (what is there is skipped: a killed run
    resumes where it stopped, and clips that share content and settings are computed once); the rest
    run through :func:`m2v_lab.extract.store_clips`.

    Parameters
    ----------
    sources : list of AudioSource
        E.g. from :func:`~m2v_lab.engines.read_sources`.
    job : ExtractJob
    decode_workers : int, optional
        Decoding threads; default one on a GPU, none on the CPU (as :func:`m2v_lab.extract`).

    Returns
    -------
    RunSummary

    Raises
    ------
    ModelError, CacheError, OptionError
        The model cannot be loaded or run (out of device memory, with advice), the cache cannot be
        written, an option is unusable.  Entries written before stay valid.
    """
    from tqdm.auto import tqdm

    from ..cache import open_cache
    from ..extract import clip_key, is_cached, store_clips

    start = time.perf_counter()
    model, positions, settings = load_job_model(job)
    cache = open_cache(job.cache_location())
    fingerprint = model.fingerprint
    summary = RunSummary(engine="local", total=len(sources), cache=str(cache.root), model=model.name,
                         fingerprint=fingerprint)
    todo, seen = [], set()
    for source in tqdm(sources, desc="cache lookup", unit=" clips", disable=not job.progress, leave=False):
        try:
            key = clip_key(fingerprint, settings, source)
        except AudioError as exc:
            summary.failed[source.clip_id] = str(exc)
            continue
        if key in seen:
            summary.duplicates += 1
        elif is_cached(cache, fingerprint, key, settings, positions):
            summary.cached += 1
        else:
            todo.append(source)
        seen.add(key)
    if decode_workers is None:
        decode_workers = 0 if model.device.type == "cpu" else 1
    if todo:
        report = store_clips(model, todo, settings=settings, positions=positions, cache=cache,
                             batch_size=job.batch_size, decode_workers=decode_workers, progress=job.progress,
                             fingerprint=fingerprint, mix_clips=job.mix_clips)
        summary.computed = len(report.stored)
        summary.cached += report.hits  # written meanwhile by another run sharing the cache
        summary.failed.update(report.failed)
        summary.audio_seconds = report.seconds
        summary.stored_ids = [todo[i].clip_id for i in report.stored]
    summary.wall_seconds = time.perf_counter() - start
    return summary
