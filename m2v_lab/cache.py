"""An opt-in, content-addressed disk cache of extracted features.

One entry per clip and setting: a safetensors file (no pickle) whose name is the
sha256 of everything that changes the numbers — the model fingerprint (config,
weights, revision), the audio content hash, and every extraction parameter.
Entries are written to a temporary file in the same folder and renamed into
place, so a killed run or two kernels writing the same entry never leave a
half-written one; an entry that fails to load (truncated, corrupt) is removed
with a warning and recomputed.

Where: ``cache_dir=`` in :func:`m2v_lab.extract`; ``True`` means the default
folder, ``$M2V_LAB_CACHE`` or else ``~/.cache/m2v_lab``; None uses
``$M2V_LAB_CACHE`` when set and caches nothing otherwise; False never caches.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

from .errors import CacheError

__all__ = ["FeatureCache", "CacheWarning", "default_cache_dir", "resolve_cache_dir", "cache_info", "clear_cache"]

CACHE_FORMAT = "1"
_SUFFIX = ".safetensors"
_STALE_TMP_SECONDS = 24 * 3600
_UMASK = os.umask(0)
os.umask(_UMASK)


class CacheWarning(UserWarning):
    """A cache entry was unusable and is being recomputed."""


def default_cache_dir() -> Path:
    """``$M2V_LAB_CACHE`` if set, else ``~/.cache/m2v_lab``."""
    return Path(os.environ.get("M2V_LAB_CACHE") or "~/.cache/m2v_lab").expanduser()


def resolve_cache_dir(cache_dir) -> Path | None:
    """The folder ``cache_dir=`` means (see the module docstring), or None for no caching."""
    if cache_dir is False:
        return None
    if cache_dir is True:
        return default_cache_dir()
    if cache_dir is None:
        env = os.environ.get("M2V_LAB_CACHE")
        return Path(env).expanduser() if env else None
    return Path(os.fspath(cache_dir)).expanduser()


class FeatureCache:
    """Entries under ``root/<model fingerprint[:16]>/<key[:2]>/<key>.safetensors``."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root).expanduser()
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise CacheError(f"cannot create the cache folder {self.root}: {exc}. Pass another cache_dir= "
                             "or set M2V_LAB_CACHE to a writable folder.") from exc

    def path(self, model_fingerprint: str, key: str) -> Path:
        return self.root / model_fingerprint[:16] / key[:2] / f"{key}{_SUFFIX}"

    def get(self, model_fingerprint: str, key: str, *, names=None) -> tuple[dict[str, np.ndarray], dict] | None:
        """``(tensors, meta)`` of an entry, or None when absent or unusable (then removed, with a warning).

        ``names`` reads only those tensors (e.g. ``("windows",)``), leaving large frame arrays on disk.
        """
        from safetensors import SafetensorError, safe_open

        path = self.path(model_fingerprint, key)
        if not path.exists():
            return None
        try:
            with safe_open(str(path), framework="numpy") as f:
                meta = json.loads((f.metadata() or {}).get("m2v_lab", "{}"))
                if meta.get("key") != key or meta.get("format") != CACHE_FORMAT:
                    raise ValueError("entry does not carry the key it is filed under")
                tensors = {n: f.get_tensor(n) for n in (f.keys() if names is None else names)}
        except PermissionError as exc:  # someone else's entry in a shared cache: not ours to delete
            warnings.warn(f"cache entry {path} is not readable ({exc}); computing without it.", CacheWarning,
                          stacklevel=3)
            return None
        except (SafetensorError, OSError, ValueError, KeyError) as exc:
            warnings.warn(f"cache entry {path} is unusable ({exc}); recomputing it.", CacheWarning, stacklevel=3)
            path.unlink(missing_ok=True)
            return None
        return tensors, meta

    def frames(self, model_fingerprint: str, key: str, positions=None) -> np.ndarray | None:
        """The ``frames`` tensor of an entry, only the layers at ``positions`` when given."""
        from safetensors import safe_open

        path = self.path(model_fingerprint, key)
        if not path.exists():
            return None
        with safe_open(str(path), framework="numpy") as f:
            if positions is None:
                return f.get_tensor("frames")
            sliced = f.get_slice("frames")
            return np.concatenate([sliced[p:p + 1] for p in positions])

    def put(self, model_fingerprint: str, key: str, tensors: dict[str, np.ndarray], meta: dict) -> Path:
        """Write an entry atomically (temporary file + rename) and return its path."""
        from safetensors.numpy import save_file

        path = self.path(model_fingerprint, key)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{key[:16]}.", suffix=".tmp")
            os.close(fd)
            try:
                record = dict(meta, key=key, format=CACHE_FORMAT)
                save_file({k: np.ascontiguousarray(v) for k, v in tensors.items()}, tmp,
                          metadata={"m2v_lab": json.dumps(record, default=str)})
                with open(tmp, "rb") as f:
                    os.fsync(f.fileno())
                os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; a shared cache needs others to read
                os.replace(tmp, path)
            finally:
                if os.path.exists(tmp):
                    os.unlink(tmp)
        except OSError as exc:
            raise CacheError(f"cannot write cache entry {path}: {exc}. Free disk space, or pass another "
                             "cache_dir= (or cache_dir=False to skip caching).") from exc
        return path

    def entries(self) -> list[Path]:
        return sorted(self.root.glob(f"*/*/*{_SUFFIX}"))


def _metadata(path: Path) -> dict:
    from safetensors import safe_open

    with safe_open(str(path), framework="numpy") as f:
        return f.metadata() or {}


def cache_info(cache_dir=True):
    """Entries and bytes per model in a cache folder.

    Returns
    -------
    pandas.DataFrame
        One row per model folder: ``model`` (fingerprint prefix), ``model_name``, ``entries``,
        ``bytes``; ``attrs["root"]`` is the folder and ``attrs["temporary_files"]`` counts
        leftovers of interrupted writes.
    """
    import pandas as pd

    root = resolve_cache_dir(cache_dir) or default_cache_dir()
    rows = []
    for model_dir in sorted(p for p in root.glob("*") if p.is_dir()) if root.exists() else []:
        files = list(model_dir.glob(f"*/*{_SUFFIX}"))
        name = ""
        if files:
            try:
                name = json.loads(_metadata(files[0]).get("m2v_lab", "{}")).get("model", "")
            except Exception:  # noqa: BLE001 - a broken entry only loses the display name here
                name = "?"
        rows.append({"model": model_dir.name, "model_name": name, "entries": len(files),
                     "bytes": sum(f.stat().st_size for f in files)})
    frame = pd.DataFrame(rows, columns=["model", "model_name", "entries", "bytes"])
    frame.attrs["root"] = str(root)
    frame.attrs["temporary_files"] = len(list(root.glob("*/*/*.tmp"))) if root.exists() else 0
    return frame


def clear_cache(cache_dir=True, *, model=None) -> int:
    """Delete cache entries (all, or one model's) and stale temporary files.

    ``model`` is a LoadedModel, a fingerprint, or a model name as ``cache_info()`` lists it.
    Returns the number of entries removed.  Temporary files younger than a day are left
    alone: they may belong to a run in progress.
    """
    root = resolve_cache_dir(cache_dir) or default_cache_dir()
    if not root.exists():
        return 0
    dirs = [p for p in root.glob("*") if p.is_dir()]
    if model is not None:
        fingerprint = getattr(model, "fingerprint", None)
        if fingerprint is not None:
            dirs = [root / fingerprint[:16]]
        else:
            info = cache_info(root)
            wanted = info[(info["model"] == str(model)[:16]) | (info["model_name"] == str(model))]["model"]
            if wanted.empty:
                raise CacheError(f"no cache entries for model {model!r} in {root}; cache_info() lists the "
                                 f"models there: {sorted(set(info['model_name']))}.")
            dirs = [root / m for m in wanted]
    removed = 0
    now = time.time()
    for d in dirs:
        for f in d.glob(f"*/*{_SUFFIX}"):
            f.unlink(missing_ok=True)
            removed += 1
        for tmp in d.glob("*/*.tmp"):
            if now - tmp.stat().st_mtime > _STALE_TMP_SECONDS:
                tmp.unlink(missing_ok=True)
        for sub in sorted(d.glob("*"), reverse=True):
            if sub.is_dir() and not any(sub.iterdir()):
                sub.rmdir()
        if d.exists() and not any(d.iterdir()):
            d.rmdir()
    return removed
