"""Where a model's files come from: a local folder or the Hugging Face hub, failing fast offline.

A hub model is read from the Hugging Face cache when its files are there and downloaded into that
cache otherwise, one file at a time and only when asked for: a model refused after reading its
``config.json`` has downloaded nothing else.  Either way the files end up in one folder (the cache
snapshot of one commit), which the loaders then read as a local directory, so a first, downloading
load and a later, cached one read the same bytes.
"""

from __future__ import annotations

import json
import os
import re
import socket
import threading
from pathlib import Path
from urllib.parse import urlparse

from huggingface_hub import _CACHED_NO_EXIST, constants, hf_hub_download, try_to_load_from_cache
from huggingface_hub.errors import EntryNotFoundError, HFValidationError, LocalEntryNotFoundError

from ..errors import ModelError
from .registry import OFFLINE_MODEL

__all__ = ["ModelFiles", "read_json", "offline", "hub_address", "hub_reachable", "looks_like_hub_id"]

_SNAPSHOT = re.compile(r"^[0-9a-f]{40}$")


def read_json(path: Path) -> dict | None:
    """The JSON object in ``path``, or None when the file does not exist."""
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise ModelError(f"cannot read {path}: {exc}. Fix or delete the file.") from exc


def offline() -> bool:
    """Whether ``HF_HUB_OFFLINE`` (or ``TRANSFORMERS_OFFLINE``) asks for no network."""
    flags = (os.environ.get(v, "").strip().lower() for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))
    return any(f in {"1", "true", "yes", "on"} for f in flags)


def hub_address() -> tuple[str, int]:
    """(host, port) of the hub endpoint huggingface_hub talks to."""
    url = urlparse(constants.ENDPOINT)
    return url.hostname or "huggingface.co", url.port or (80 if url.scheme == "http" else 443)


def hub_reachable(timeout: float = 3.0) -> bool:
    """Whether the hub answers within ``timeout`` s (DNS lookups cannot be timed out directly).

    Behind a proxy the direct connection says nothing, so the hub is assumed reachable and
    huggingface_hub decides.
    """
    if any(os.environ.get(v) for v in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")):
        return True
    result = {"ok": False}

    def probe():
        try:
            with socket.create_connection(hub_address(), timeout=timeout):
                result["ok"] = True
        except OSError:
            pass

    t = threading.Thread(target=probe, daemon=True)
    t.start()
    t.join(timeout + 0.5)
    return result["ok"]


def looks_like_hub_id(key: str) -> bool:
    """``owner/name`` that is not an existing path."""
    return (key.count("/") == 1 and not key.startswith((".", "/", "~"))
            and not Path(os.path.expanduser(key)).exists())


def _commit_of(folder: Path) -> str | None:
    """The commit a Hugging Face cache snapshot folder (``…/snapshots/<sha>``) holds, else None."""
    folder = Path(folder)
    return folder.name if folder.parent.name == "snapshots" and _SNAPSHOT.match(folder.name) else None


def _unreachable_error(hub_id: str, why: str) -> ModelError:
    return ModelError(
        f"cannot load {hub_id!r}: {why}. Looked for it as a local directory ({Path(hub_id).resolve()}) "
        f"and in the Hugging Face cache ({constants.HF_HUB_CACHE}). Fixes: connect to the internet "
        f"(unset HF_HUB_OFFLINE), download it once with `hf download {hub_id}`, pass a "
        f"local directory, or use the bundled offline model: load_model({OFFLINE_MODEL!r}) "
        f"(or set M2V_LAB_MODEL={OFFLINE_MODEL} for the notebooks: a small model pre-trained by m2v_lab on a CPU, not music2vec-v1).")


class ModelFiles:
    """The files of one model: a local folder, or a hub repository pinned to one commit.

    Parameters
    ----------
    source : str or path
        A local directory, or a hub id (``owner/name``).
    revision : str, optional
        Hub branch, tag or commit; the cached commit of that revision is used when there is one.

    Raises
    ------
    ModelError
        A hub id that is not cached while the hub is unreachable or ``HF_HUB_OFFLINE`` is set
        (within seconds, naming where it looked and the offline model).
    """

    def __init__(self, source: str | os.PathLike, *, revision: str | None = None):
        path = Path(os.path.expanduser(str(source)))
        self.revision = revision
        self._reachable: bool | None = None
        self._unverified: dict[str, str] = {}
        if path.is_dir():
            self.repo, self.folder, self.commit = None, path, _commit_of(path)
            self.display = str(path)
            return
        self.repo, self.display = str(source), str(source)
        try:
            cached = try_to_load_from_cache(self.repo, "config.json", revision=revision)
        except HFValidationError as exc:
            raise ModelError(f"{self.repo!r} is neither a local directory nor a valid hub id: {exc} "
                             "Check the spelling or the path.") from exc
        self.folder = Path(cached).parent if isinstance(cached, str) else None
        self.commit = _commit_of(self.folder) if self.folder is not None else None
        if self.commit is None:
            if offline():
                raise _unreachable_error(self.repo, "it is not in the local cache and HF_HUB_OFFLINE is set")
            if not self._hub_answers():
                raise _unreachable_error(
                    self.repo, f"the hub ({hub_address()[0]}) cannot be reached and it is not cached")

    def _hub_answers(self) -> bool:
        if self._reachable is None:
            self._reachable = hub_reachable()
        return self._reachable

    def get(self, filename: str) -> Path | None:
        """Local path of ``filename`` (downloaded into the cache if needed), or None if the model has none.

        A hub file that is neither cached nor reachable also gives None; :meth:`raise_if_unverified`
        then tells a missing required file from an unreachable one.
        """
        if self.repo is None:
            path = self.folder / filename
            return path if path.is_file() else None
        cached = try_to_load_from_cache(self.repo, filename, revision=self.commit or self.revision)
        if isinstance(cached, str):
            return Path(cached)
        if cached is _CACHED_NO_EXIST:
            return None
        why = ("HF_HUB_OFFLINE is set" if offline() else
               f"the hub ({hub_address()[0]}) cannot be reached" if not self._hub_answers() else None)
        if why is not None:
            self._unverified[filename] = why
            return None
        try:
            path = Path(hf_hub_download(self.repo, filename, revision=self.commit or self.revision))
        except LocalEntryNotFoundError as exc:
            raise _unreachable_error(self.repo, f"downloading {filename} failed ({exc})") from exc
        except EntryNotFoundError:
            return None
        except Exception as exc:  # noqa: BLE001 - unknown repo, gated, HTTP: say what happened
            raise ModelError(f"{self.display}: fetching {filename} failed: {exc}. Check the id (and access "
                             f"rights for gated models: `hf auth login`).") from exc
        self.folder = path.parent
        self.commit = self.commit or _commit_of(self.folder)
        return path

    def raise_if_unverified(self, *filenames: str) -> None:
        """Raise the unreachable-hub error if none of ``filenames`` could be looked up."""
        why = [self._unverified[f] for f in filenames if f in self._unverified]
        if why:
            raise _unreachable_error(self.repo, f"{' or '.join(filenames)} is not in the local cache and {why[0]}")

    def json(self, filename: str) -> dict | None:
        """The JSON object in ``filename``, or None when the model has no such file."""
        path = self.get(filename)
        return None if path is None else read_json(path)
