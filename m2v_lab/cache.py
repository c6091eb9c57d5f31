"""An opt-in, content-addressed disk cache of extracted features.

Each clip and setting has a *head* entry, a safetensors file (no pickle) whose name is the
sha256 of everything that changes the numbers — the model fingerprint (config, weights,
revision), the audio content hash and every extraction parameter.  The head holds the
clip's windows and, for pooled settings, every layer's pooled vector (pooling all layers
costs nothing next to the forward pass, so any later layer subset is a hit).  Frame-level
features are stored one file per layer beside the head (``<key>.L07.safetensors``): a
request for some layers writes and reads only those, and a later request for others
computes only what is missing.

Every tensor's sha256 is stored in its file and checked on read: safetensors itself checks
only the header and the size, so a flipped byte in the data would otherwise be served.
Files are written to a temporary file in the same folder and renamed into place, so a killed
run or two kernels writing the same entry never leave a half-written one; an entry that
fails to load (truncated, corrupt, wrong digest) is removed with a warning and recomputed.

Where: ``cache_dir=`` in :func:`m2v_lab.extract`; ``True`` means the default folder,
``$M2V_LAB_CACHE`` or else ``~/.cache/m2v_lab``; None uses ``$M2V_LAB_CACHE`` when set and
caches nothing otherwise; False never caches.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

from .errors import CacheError

__all__ = ["FeatureCache", "CacheWarning", "default_cache_dir", "resolve_cache_dir", "cache_info", "clear_cache"]

CACHE_FORMAT = "2"
_SUFFIX = ".safetensors"
_HEAD = re.compile(r"^[0-9a-f]{64}\.safetensors$")
_STALE_TMP_SECONDS = 24 * 3600
_UMASK = os.umask(0)
os.umask(_UMASK)


class CacheWarning(UserWarning):
    """A cache entry was unusable and is being recomputed."""


class _Corrupt(ValueError):
    """A file's content does not match what it says it holds."""


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


def _digest(array: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(array).reshape(-1).view(np.uint8)).hexdigest()


class FeatureCache:
    """Files under ``root/<model fingerprint[:16]>/<key[:2]>/``: ``<key>.safetensors`` (head) and
    ``<key>.L<layer>.safetensors`` (one layer's frames)."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root).expanduser()
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise CacheError(f"cannot create the cache folder {self.root}: {exc}. Pass another cache_dir= "
                             "or set M2V_LAB_CACHE to a writable folder.") from exc

    def path(self, model_fingerprint: str, key: str, layer: int | None = None) -> Path:
        """The head file of an entry, or the file of one layer's frames."""
        name = key if layer is None else f"{key}.L{int(layer):02d}"
        return self.root / model_fingerprint[:16] / key[:2] / f"{name}{_SUFFIX}"

    # -- reading ------------------------------------------------------------------
    def _read(self, path: Path, key: str, names) -> tuple[dict[str, np.ndarray], dict] | None:
        from safetensors import SafetensorError, safe_open

        try:
            with safe_open(str(path), framework="numpy") as f:
                meta = json.loads((f.metadata() or {}).get("m2v_lab", "{}"))
                if meta.get("key") != key or meta.get("format") != CACHE_FORMAT:
                    raise _Corrupt("it does not carry the key it is filed under")
                digests = meta.get("digests", {})
                tensors = {}
                for name in (f.keys() if names is None else names):
                    tensors[name] = f.get_tensor(name)
                    if digests.get(name) != _digest(tensors[name]):
                        raise _Corrupt(f"tensor {name!r} does not match its stored sha256")
        except FileNotFoundError:
            return None
        except PermissionError as exc:  # someone else's entry in a shared cache: not ours to delete
            warnings.warn(f"cache entry {path} is not readable ({exc}); computing without it.", CacheWarning,
                          stacklevel=4)
            return None
        except (SafetensorError, OSError, ValueError, KeyError) as exc:
            warnings.warn(f"cache entry {path} is unusable ({exc}); recomputing it.", CacheWarning, stacklevel=4)
            path.unlink(missing_ok=True)
            return None
        return tensors, meta

    def get(self, model_fingerprint: str, key: str, *, names=None) -> tuple[dict[str, np.ndarray], dict] | None:
        """``(tensors, meta)`` of a head entry, or None when absent or unusable (then removed, with a warning).

        ``names`` reads (and verifies) only those tensors, e.g. ``("windows",)``.
        """
        return self._read(self.path(model_fingerprint, key), key, names)

    def get_layer(self, model_fingerprint: str, key: str, layer: int) -> np.ndarray | None:
        """One layer's frames ``(frames, dim)``, verified; None when absent or unusable (then removed)."""
        entry = self._read(self.path(model_fingerprint, key, layer), key, ("frames",))
        return None if entry is None else entry[0]["frames"]

    def missing_layers(self, model_fingerprint: str, key: str, layers) -> list[int]:
        """Those of ``layers`` that have no frames file (presence only: contents are verified on read)."""
        return [int(p) for p in layers if not self.path(model_fingerprint, key, p).exists()]

    # -- writing ------------------------------------------------------------------
    def _write(self, path: Path, key: str, tensors: dict[str, np.ndarray], meta: dict) -> Path:
        from safetensors.numpy import save_file

        tensors = {k: np.ascontiguousarray(v) for k, v in tensors.items()}
        record = dict(meta, key=key, format=CACHE_FORMAT, digests={k: _digest(v) for k, v in tensors.items()})
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name[:20]}.", suffix=".tmp")
            os.close(fd)
            try:
                save_file(tensors, tmp, metadata={"m2v_lab": json.dumps(record, default=str)})
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

    def put(self, model_fingerprint: str, key: str, tensors: dict[str, np.ndarray], meta: dict) -> Path:
        """Write a head entry atomically (temporary file + rename) and return its path."""
        return self._write(self.path(model_fingerprint, key), key, tensors, meta)

    def put_layer(self, model_fingerprint: str, key: str, layer: int, frames: np.ndarray) -> Path:
        """Write one layer's frames ``(frames, dim)`` of an entry atomically."""
        return self._write(self.path(model_fingerprint, key, layer), key, {"frames": frames}, {"layer": int(layer)})

    def entries(self) -> list[Path]:
        """Head files (one per clip and setting)."""
        return sorted(p for p in self.root.glob(f"*/*/*{_SUFFIX}") if _HEAD.match(p.name))


def _metadata(path: Path) -> dict:
    from safetensors import safe_open

    with safe_open(str(path), framework="numpy") as f:
        return f.metadata() or {}


def cache_info(cache_dir=True):
    """Entries and bytes per model in a cache folder.

    Returns
    -------
    pandas.DataFrame
        One row per model folder: ``model`` (fingerprint prefix), ``model_name``, ``entries``
        (clips × settings), ``layer_files`` (stored frame layers), ``bytes`` (all files);
        ``attrs["root"]`` is the folder and ``attrs["temporary_files"]`` counts leftovers of
        interrupted writes.
    """
    import pandas as pd

    root = resolve_cache_dir(cache_dir) or default_cache_dir()
    rows = []
    for model_dir in sorted(p for p in root.glob("*") if p.is_dir()) if root.exists() else []:
        files = list(model_dir.glob(f"*/*{_SUFFIX}"))
        heads = [f for f in files if _HEAD.match(f.name)]
        name = ""
        if heads:
            try:
                name = json.loads(_metadata(heads[0]).get("m2v_lab", "{}")).get("model", "")
            except Exception:  # noqa: BLE001 - a broken entry only loses the display name here
                name = "?"
        rows.append({"model": model_dir.name, "model_name": name, "entries": len(heads),
                     "layer_files": len(files) - len(heads), "bytes": sum(f.stat().st_size for f in files)})
    frame = pd.DataFrame(rows, columns=["model", "model_name", "entries", "layer_files", "bytes"])
    frame.attrs["root"] = str(root)
    frame.attrs["temporary_files"] = len(list(root.glob("*/*/*.tmp"))) if root.exists() else 0
    return frame


def clear_cache(cache_dir=True, *, model=None) -> int:
    """Delete cache entries (all, or one model's) and stale temporary files.

    ``model`` is a LoadedModel, a fingerprint, or a model name as ``cache_info()`` lists it.
    Returns the number of entries (heads) removed; their layer files go with them.  Temporary
    files younger than a day are left alone: they may belong to a run in progress.
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
            removed += bool(_HEAD.match(f.name))
            f.unlink(missing_ok=True)
        for tmp in d.glob("*/*.tmp"):
            if now - tmp.stat().st_mtime > _STALE_TMP_SECONDS:
                tmp.unlink(missing_ok=True)
        for sub in sorted(d.glob("*"), reverse=True):
            if sub.is_dir() and not any(sub.iterdir()):
                sub.rmdir()
        if d.exists() and not any(d.iterdir()):
            d.rmdir()
    return removed
