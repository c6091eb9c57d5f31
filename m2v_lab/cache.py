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
caches nothing otherwise; False never caches.  A folder on a shared filesystem (NFS, Lustre …)
serves a whole cluster.  A URI (``s3://bucket/m2v``, ``gs://…``, ``hdfs://…``, ``file:///…``) is
opened with ``pyarrow.fs`` (pyarrow: ``pip install 'm2v_lab[ray]'``) and holds the same files in the
same layout; an object store writes each object whole, and a local URI writes by temporary file and
rename as a folder does.
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

__all__ = ["FeatureCache", "ArrowFeatureCache", "CacheWarning", "default_cache_dir", "resolve_cache_dir",
           "open_cache", "is_uri", "cache_info", "clear_cache"]

CACHE_FORMAT = "2"
_SUFFIX = ".safetensors"
_HEAD = re.compile(r"^[0-9a-f]{64}\.safetensors$")
_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]+://")
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


def is_uri(location) -> bool:
    """Whether ``location`` is a filesystem URI (``s3://…``, ``file:///…``) rather than a local path."""
    return isinstance(location, str) and bool(_URI.match(location))


def resolve_cache_dir(cache_dir) -> Path | str | None:
    """The folder (or URI) ``cache_dir=`` means (see the module docstring), or None for no caching."""
    if cache_dir is False:
        return None
    if cache_dir is True:
        cache_dir = os.environ.get("M2V_LAB_CACHE") or default_cache_dir()
    elif cache_dir is None:
        cache_dir = os.environ.get("M2V_LAB_CACHE")
        if not cache_dir:
            return None
    if is_uri(cache_dir):
        return cache_dir.rstrip("/")
    return Path(os.fspath(cache_dir)).expanduser()


def open_cache(cache_dir) -> "FeatureCache | None":
    """The cache ``cache_dir=`` means: a :class:`FeatureCache` on a folder, an :class:`ArrowFeatureCache`
    on a URI, or None for no caching."""
    root = resolve_cache_dir(cache_dir)
    if root is None:
        return None
    return ArrowFeatureCache(root) if is_uri(root) else FeatureCache(root)


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
                meta = _checked_meta(f.metadata(), key)
                tensors = _checked_tensors(meta, f.keys() if names is None else names, f.get_tensor)
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
        data = _serialise(key, tensors, meta)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name[:20]}.", suffix=".tmp")
            try:
                with os.fdopen(fd, "wb") as f:
                    f.write(data)
                    f.flush()
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

    # -- listing (cache_info, clear_cache) ----------------------------------------------
    def _listing(self) -> list[tuple[str, int, float]]:
        """``(path relative to the root, bytes, mtime)`` of every file two folders down."""
        if not self.root.exists():
            return []
        out = []
        for f in self.root.glob("*/*/*"):
            try:
                st = f.stat()
            except FileNotFoundError:  # removed meanwhile (a temporary file renamed into place)
                continue
            if f.is_file():
                out.append((f.relative_to(self.root).as_posix(), st.st_size, st.st_mtime))
        return out

    def _meta_of(self, rel: str) -> dict:
        from safetensors import safe_open

        with safe_open(str(self.root / rel), framework="numpy") as f:
            return f.metadata() or {}

    def _remove(self, rel: str) -> None:
        (self.root / rel).unlink(missing_ok=True)

    def _prune(self, model_dir: str) -> None:
        d = self.root / model_dir
        for sub in sorted(d.glob("*"), reverse=True):
            if sub.is_dir() and not any(sub.iterdir()):
                sub.rmdir()
        if d.exists() and not any(d.iterdir()):
            d.rmdir()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.root)!r})"


def _serialise(key: str, tensors: dict[str, np.ndarray], meta: dict) -> bytes:
    """An entry's file bytes: safetensors with the m2v_lab record (key, format, per-tensor sha256)."""
    from safetensors.numpy import save

    tensors = {k: np.ascontiguousarray(v) for k, v in tensors.items()}
    record = dict(meta, key=key, format=CACHE_FORMAT, digests={k: _digest(v) for k, v in tensors.items()})
    return save(tensors, metadata={"m2v_lab": json.dumps(record, default=str)})


def _checked_meta(metadata: dict | None, key: str) -> dict:
    meta = json.loads((metadata or {}).get("m2v_lab", "{}"))
    if meta.get("key") != key or meta.get("format") != CACHE_FORMAT:
        raise _Corrupt("it does not carry the key it is filed under")
    return meta


def _checked_tensors(meta: dict, names, get) -> dict[str, np.ndarray]:
    digests = meta.get("digests", {})
    tensors = {}
    for name in names:
        tensors[name] = get(name)
        if digests.get(name) != _digest(tensors[name]):
            raise _Corrupt(f"tensor {name!r} does not match its stored sha256")
    return tensors


def _header(data: bytes) -> dict:
    """The JSON header of a safetensors file's bytes."""
    if len(data) < 8:
        raise _Corrupt("it is shorter than a safetensors header")
    n = int.from_bytes(data[:8], "little")
    if n > len(data) - 8:
        raise _Corrupt("its header runs past its end")
    return json.loads(data[8:8 + n])


class ArrowFeatureCache(FeatureCache):
    """:class:`FeatureCache` on a ``pyarrow.fs`` URI (``s3://bucket/prefix``, ``gs://…``, ``file:///…``):
    the same files, names, bytes and digests, so a cluster can fill an object store that notebooks read.

    Writes are atomic as the store makes them: a local filesystem gets a temporary file and a rename, an
    object store a single object that appears whole or not at all.
    """

    def __init__(self, uri: str):
        try:
            from pyarrow import fs as pafs
        except ImportError as exc:
            raise CacheError(f"cache_dir={uri!r} is a URI, which needs pyarrow: pip install 'm2v_lab[ray]' "
                             "(or pyarrow alone), or pass a local folder.") from exc
        self.uri = uri.rstrip("/")
        try:
            self.fs, base = pafs.FileSystem.from_uri(self.uri)
            self.base = base.rstrip("/")
            self.fs.create_dir(self.base, recursive=True)
        except (OSError, ValueError) as exc:  # pyarrow's ArrowInvalid is a ValueError, ArrowIOError an OSError
            raise CacheError(f"cannot open the cache at {self.uri}: {exc}. Check the URI and the credentials, "
                             "or pass a local folder.") from exc
        self.root = self.uri
        self._rename = self.fs.type_name == "local"

    def path(self, model_fingerprint: str, key: str, layer: int | None = None) -> str:
        name = key if layer is None else f"{key}.L{int(layer):02d}"
        return f"{self.base}/{model_fingerprint[:16]}/{key[:2]}/{name}{_SUFFIX}"

    def _exists(self, path: str) -> bool:
        from pyarrow import fs as pafs

        return self.fs.get_file_info(path).type != pafs.FileType.NotFound

    def _read(self, path: str, key: str, names) -> tuple[dict[str, np.ndarray], dict] | None:
        from safetensors import SafetensorError
        from safetensors.numpy import load

        try:
            if not self._exists(path):
                return None
            with self.fs.open_input_file(path) as f:
                data = f.readall()
        except FileNotFoundError:
            return None
        except OSError as exc:
            warnings.warn(f"cache entry {path} is not readable ({exc}); computing without it.", CacheWarning,
                          stacklevel=4)
            return None
        try:
            meta = _checked_meta(_header(data).get("__metadata__"), key)
            stored = load(data)
            tensors = _checked_tensors(meta, stored if names is None else names, stored.__getitem__)
        except (SafetensorError, ValueError, KeyError) as exc:
            warnings.warn(f"cache entry {path} is unusable ({exc}); recomputing it.", CacheWarning, stacklevel=4)
            try:
                self.fs.delete_file(path)
            except OSError:
                pass
            return None
        return tensors, meta

    def missing_layers(self, model_fingerprint: str, key: str, layers) -> list[int]:
        return [int(p) for p in layers if not self._exists(self.path(model_fingerprint, key, p))]

    def _write(self, path: str, key: str, tensors: dict[str, np.ndarray], meta: dict) -> str:
        import uuid

        data = _serialise(key, tensors, meta)
        folder, name = path.rsplit("/", 1)
        try:
            self.fs.create_dir(folder, recursive=True)
            target = f"{folder}/.{name[:20]}.{uuid.uuid4().hex[:12]}.tmp" if self._rename else path
            with self.fs.open_output_stream(target) as out:
                out.write(data)
            if self._rename:
                try:
                    self.fs.move(target, path)
                finally:
                    if self._exists(target):
                        self.fs.delete_file(target)
        except OSError as exc:
            raise CacheError(f"cannot write cache entry {path}: {exc}. Check the store's space and "
                             "permissions, or pass another cache_dir=.") from exc
        return path

    def entries(self) -> list[str]:
        return sorted(f"{self.base}/{rel}" for rel, _, _ in self._listing() if _HEAD.match(rel.rsplit("/", 1)[-1]))

    def _listing(self) -> list[tuple[str, int, float]]:
        from pyarrow import fs as pafs

        infos = self.fs.get_file_info(pafs.FileSelector(self.base, recursive=True, allow_not_found=True))
        out = []
        for info in infos:
            if info.type != pafs.FileType.File:
                continue
            rel = info.path[len(self.base):].lstrip("/")
            if rel.count("/") == 2:
                mtime = info.mtime.timestamp() if info.mtime is not None else time.time()
                out.append((rel, int(info.size or 0), mtime))
        return out

    def _meta_of(self, rel: str) -> dict:
        with self.fs.open_input_file(f"{self.base}/{rel}") as f:
            head = f.read(8)
            return _header(head + f.read(int.from_bytes(head, "little"))).get("__metadata__") or {}

    def _remove(self, rel: str) -> None:
        try:
            self.fs.delete_file(f"{self.base}/{rel}")
        except FileNotFoundError:
            pass

    def _prune(self, model_dir: str) -> None:
        if self._rename:  # object stores have no folders to remove
            from pyarrow import fs as pafs

            d = f"{self.base}/{model_dir}"
            for info in sorted(self.fs.get_file_info(pafs.FileSelector(d, recursive=True, allow_not_found=True)),
                               key=lambda i: i.path, reverse=True):
                if info.type == pafs.FileType.Directory and not self.fs.get_file_info(
                        pafs.FileSelector(info.path)):
                    self.fs.delete_dir(info.path)
            if self._exists(d) and not self.fs.get_file_info(pafs.FileSelector(d)):
                self.fs.delete_dir(d)


def _open_for_listing(cache_dir) -> FeatureCache | None:
    """The cache at ``cache_dir`` (default folder for None/True) without creating a missing folder."""
    root = resolve_cache_dir(cache_dir) or default_cache_dir()
    if is_uri(root):
        return ArrowFeatureCache(root)
    cache = FeatureCache.__new__(FeatureCache)
    cache.root = Path(root)
    return cache


def cache_info(cache_dir=True):
    """Entries and bytes per model in a cache folder (or URI).

    Returns
    -------
    pandas.DataFrame
        One row per model folder: ``model`` (fingerprint prefix), ``model_name``, ``entries``
        (clips × settings), ``layer_files`` (stored frame layers), ``bytes`` (all files);
        ``attrs["root"]`` is the folder and ``attrs["temporary_files"]`` counts leftovers of
        interrupted writes.
    """
    import pandas as pd

    cache = _open_for_listing(cache_dir)
    files = cache._listing()
    by_model: dict[str, list] = {}
    for rel, size, _ in files:
        by_model.setdefault(rel.split("/", 1)[0], []).append((rel, size))
    rows = []
    for model in sorted(by_model):
        entries = [(rel, size) for rel, size in by_model[model] if rel.endswith(_SUFFIX)]
        heads = [rel for rel, _ in entries if _HEAD.match(rel.rsplit("/", 1)[-1])]
        name = ""
        if heads:
            try:
                name = json.loads(cache._meta_of(sorted(heads)[0]).get("m2v_lab", "{}")).get("model", "")
            except Exception:  # noqa: BLE001 - a broken entry only loses the display name here
                name = "?"
        rows.append({"model": model, "model_name": name, "entries": len(heads),
                     "layer_files": len(entries) - len(heads), "bytes": sum(size for _, size in entries)})
    frame = pd.DataFrame(rows, columns=["model", "model_name", "entries", "layer_files", "bytes"])
    frame.attrs["root"] = str(cache.root)
    frame.attrs["temporary_files"] = sum(rel.endswith(".tmp") for rel, _, _ in files)
    return frame


def clear_cache(cache_dir=True, *, model=None) -> int:
    """Delete cache entries (all, or one model's) and stale temporary files.

    ``model`` is a LoadedModel, a fingerprint, or a model name as ``cache_info()`` lists it.
    Returns the number of entries (heads) removed; their layer files go with them.  Temporary
    files younger than a day are left alone: they may belong to a run in progress.
    """
    cache = _open_for_listing(cache_dir)
    files = cache._listing()
    if not files and not (isinstance(cache.root, Path) and cache.root.exists()):
        return 0
    models = sorted({rel.split("/", 1)[0] for rel, _, _ in files})
    if model is not None:
        fingerprint = getattr(model, "fingerprint", None)
        if fingerprint is not None:
            models = [fingerprint[:16]]
        else:
            info = cache_info(cache_dir)
            wanted = info[(info["model"] == str(model)[:16]) | (info["model_name"] == str(model))]["model"]
            if wanted.empty:
                raise CacheError(f"no cache entries for model {model!r} in {cache.root}; cache_info() lists the "
                                 f"models there: {sorted(set(info['model_name']))}.")
            models = list(wanted)
    removed = 0
    now = time.time()
    chosen = set(models)
    for rel, _, mtime in files:
        if rel.split("/", 1)[0] not in chosen:
            continue
        if rel.endswith(_SUFFIX):
            removed += bool(_HEAD.match(rel.rsplit("/", 1)[-1]))
            cache._remove(rel)
        elif rel.endswith(".tmp") and now - mtime > _STALE_TMP_SECONDS:
            cache._remove(rel)
    for m in models:
        cache._prune(m)
    return removed
