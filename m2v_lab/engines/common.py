"""What both engines share: the job, its summary, and SRC (folder, file list, CSV) read into clips."""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .. import audio
from ..errors import DatasetError, OptionError

__all__ = ["ExtractJob", "RunSummary", "read_sources", "load_job_model"]

_TEXT_LIST_HINT = "one path per line (relative to the list's folder; blank lines and lines starting with # skipped)"


@dataclass(frozen=True)
class ExtractJob:
    """One extraction run: the model, the options that change the numbers, and how to run it.

    Attributes
    ----------
    model : str
        Registry alias, hub id or local directory (as :func:`m2v_lab.load_model` takes).
    revision, device, dtype, trust_remote_code
        Passed to :func:`m2v_lab.load_model`.
    pool, layers, window, min_last, frames_dtype
        As :func:`m2v_lab.extract` takes them (None: its default).
    batch_size : int
        Windows per forward pass; windows of one clip only share a batch.
    cache_dir : str, path or None
        Cache folder or ``pyarrow.fs`` URI; None: ``$M2V_LAB_CACHE``, else ``~/.cache/m2v_lab``.
    threads : int or None
        torch CPU threads (None: torch's default locally, the actor's CPUs under Ray).  On the CPU
        float rounding can depend on it, so bit-identical entries across engines need the same count.
    mix_clips : bool
        Let windows of different clips share a batch (see :func:`m2v_lab.extract.store_clips`): faster
        for many short clips on a GPU; entries then agree across engines and reruns only to rounding.
    progress : bool
        Show progress bars (False also silences transformers' weight-loading bar).
    """

    model: str
    revision: str | None = None
    device: str = "auto"
    dtype: str | None = None
    trust_remote_code: bool = False
    pool: str | None = "mean"
    layers: tuple | None = None
    window: float | None = None
    min_last: float = 1.0
    frames_dtype: str = "float32"
    batch_size: int = 8
    cache_dir: str | None = None
    threads: int | None = None
    mix_clips: bool = False
    progress: bool = True

    def __post_init__(self):
        for name, least in (("batch_size", 1), ("threads", 1)):
            value = getattr(self, name)
            if value is None and name == "threads":
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value < least:
                raise OptionError(f"{name}={value!r} must be an integer >= {least}.")

    def extract_options(self) -> dict:
        """Keyword arguments of :func:`m2v_lab.extract.resolve_settings`."""
        options = dict(pool=self.pool, layers=None if self.layers is None else list(self.layers),
                       min_last=self.min_last, frames_dtype=self.frames_dtype if self.pool is None else "float32")
        if self.window is not None:
            options["window"] = self.window
        return options

    def model_options(self) -> dict:
        """Keyword arguments of :func:`m2v_lab.load_model` (besides the name)."""
        return dict(revision=self.revision, device=self.device, dtype=self.dtype,
                    trust_remote_code=self.trust_remote_code)

    def cache_location(self) -> str:
        """The cache folder or URI this job writes to, as a string every worker can open."""
        from ..cache import resolve_cache_dir

        root = resolve_cache_dir(True if self.cache_dir is None else self.cache_dir)
        return str(root) if isinstance(root, str) else str(Path(root).resolve())

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class RunSummary:
    """What an engine did.

    Attributes
    ----------
    engine : str
    total : int
        Clips in SRC.
    computed : int
        Entries computed and written in this run.
    cached : int
        Clips whose entry the cache already held (nothing computed).
    duplicates : int
        Clips with the same content and settings as an earlier clip of SRC (one entry serves both).
    failed : dict of str to str
        ``clip_id -> reason``.
    audio_seconds : float
        Seconds of audio computed in this run.
    wall_seconds : float
        Wall time of the run, model loading included.
    cache : str
        The cache folder or URI.
    model, fingerprint : str
        The model's name and fingerprint (the first folder level of its entries).
    """

    engine: str
    total: int
    computed: int = 0
    cached: int = 0
    duplicates: int = 0
    failed: dict = field(default_factory=dict)
    audio_seconds: float = 0.0
    wall_seconds: float = 0.0
    cache: str = ""
    model: str = ""
    fingerprint: str = ""
    stored_ids: list = field(default_factory=list)

    @property
    def clips_per_second(self) -> float:
        return self.computed / self.wall_seconds if self.wall_seconds > 0 else math.nan

    @property
    def audio_seconds_per_second(self) -> float:
        return self.audio_seconds / self.wall_seconds if self.wall_seconds > 0 else math.nan

    def headline(self) -> str:
        parts = [f"{self.computed} computed", f"{self.cached} already cached"]
        if self.duplicates:
            parts.append(f"{self.duplicates} duplicates")
        parts.append(f"{len(self.failed)} failed")
        return (f"{self.total} clips: {', '.join(parts)}; {self.audio_seconds:.1f} s of audio in "
                f"{self.wall_seconds:.1f} s ({self.audio_seconds_per_second:.2f} audio-s/s, "
                f"{self.clips_per_second:.2f} clips/s; engine {self.engine}); cache {self.cache}")


def load_job_model(job: ExtractJob, *, device=None):
    """``(model, positions, settings)`` of a job, with its torch thread count applied."""
    import torch

    from ..extract import resolve_settings
    from ..models import load_model

    if job.threads is not None:
        torch.set_num_threads(job.threads)
    options = job.model_options()
    if device is not None:
        options["device"] = device
    model = load_model(job.model, **options)
    positions, settings = resolve_settings(model, **job.extract_options())
    return model, positions, settings


def read_sources(src: str | os.PathLike) -> list[audio.AudioSource]:
    """The clips SRC names.

    - a folder: every audio file below it (recursive, hidden names skipped, extensions of
      :data:`m2v_lab.audio.AUDIO_EXTENSIONS`), clip ids relative to the folder, as
      :func:`m2v_lab.datasets.from_folder` lists them (files are not opened here: an unreadable one
      fails at extraction, with its reason);
    - a ``.csv`` file with a ``path`` column (relative to the CSV's folder, or absolute) and
      optional ``clip_id``, ``start``, ``duration`` columns (other columns, e.g. labels, are ignored);
    - one audio file;
    - any other file: a list, one path per line, relative to the list's folder (blank lines and lines
      starting with ``#`` are skipped).

    Raises
    ------
    DatasetError
        SRC missing, empty, or a CSV without a ``path`` column or with empty paths.
    """
    import pandas as pd

    from ..datasets import from_folder

    path = Path(src).expanduser()
    if not path.exists():
        raise DatasetError(f"SRC {path} does not exist (resolved from {os.getcwd()}); pass a folder of audio, "
                           f"a CSV with a 'path' column, or a text file list ({_TEXT_LIST_HINT}).")
    if path.is_dir():
        frame = from_folder(path, check_audio=False)
        return audio.as_sources(frame[["path", "clip_id"]])
    base = path.resolve().parent
    if path.suffix.lower() in audio.AUDIO_EXTENSIONS:
        return audio.as_sources([path])
    if path.suffix.lower() == ".csv":
        try:
            table = pd.read_csv(path, dtype={"path": str, "clip_id": str})
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
            raise DatasetError(f"cannot read {path} as CSV: {exc}") from exc
        if "path" not in table.columns:
            raise DatasetError(f"{path} has no 'path' column (columns: {list(table.columns)}); add one with each "
                               "file's path, relative to the CSV's folder or absolute.")
        blank = table["path"].isna() | (table["path"].astype(str).str.strip() == "")
        if blank.any():
            lines = [str(i + 2) for i in table.index[blank][:20]]
            raise DatasetError(f"{path}: empty 'path' on line(s) {', '.join(lines)}; fill them in or drop the rows.")
        written = table["path"].astype(str).str.strip()
        frame = pd.DataFrame({"path": [str(base / p) for p in written]})
        frame["clip_id"] = table["clip_id"] if "clip_id" in table.columns else written
        for column in ("start", "duration"):
            if column in table.columns:
                frame[column] = pd.to_numeric(table[column], errors="coerce")
        if "clip_id" in table.columns:  # rows without an id get the path as written
            frame["clip_id"] = frame["clip_id"].where(frame["clip_id"].notna(), written)
        return audio.as_sources(frame)
    try:
        lines = path.read_text().splitlines()
    except UnicodeDecodeError as exc:
        raise DatasetError(f"{path} is neither a folder, a CSV, an audio file nor a text list ({_TEXT_LIST_HINT}): "
                           f"{exc}") from exc
    entries = [line.strip() for line in lines if line.strip() and not line.strip().startswith("#")]
    if not entries:
        raise DatasetError(f"file list {path} names no files; write {_TEXT_LIST_HINT}.")
    return audio.as_sources([audio.AudioSource(clip_id=e, path=str(base / Path(e).expanduser())) for e in entries])
