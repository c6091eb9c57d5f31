"""Extraction beyond one kernel: engines that fill the feature cache for the ``m2v-lab`` command line.

Both engines compute every entry with :func:`m2v_lab.extract.store_clips` /
:func:`~m2v_lab.extract.store_decoded` — :func:`m2v_lab.extract`'s own lookup, windows, pooling,
key and writer, with batches that never mix clips — so an entry holds the same bytes whichever
engine, worker or resumed run made it, and a notebook's ``extract(model, clips, cache_dir=...)``
with the same model, device and precision then reads it as a hit.

- :func:`run_local` (:mod:`.local`): this process, clip after clip (the default; no extra packages).
- :func:`run_ray` (:mod:`.ray_engine`): a Ray Data pipeline — hashing, cache lookups and decoding in
  CPU tasks, the model in an actor pool (GPUs or CPUs) — writing into a cache folder every node can
  reach (a shared filesystem) or a ``pyarrow.fs`` URI.  Needs ``pip install 'm2v_lab[ray]'``.

:func:`read_sources` turns the command line's SRC (a folder, a file list or a CSV with a ``path``
column) into clips; :class:`ExtractJob` holds what to run; both engines return a
:class:`RunSummary`.
"""

from .common import ExtractJob, RunSummary, read_sources
from .local import run_local


def run_ray(*args, **kwargs):
    """:func:`m2v_lab.engines.ray_engine.run_ray` (imports Ray only when called)."""
    from .ray_engine import run_ray as _run_ray

    return _run_ray(*args, **kwargs)


__all__ = ["ExtractJob", "RunSummary", "read_sources", "run_local", "run_ray"]
