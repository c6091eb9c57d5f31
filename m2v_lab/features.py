"""The one type every analysis takes: per-layer features of a set of clips, with the clips' rows.

``Features.pooled`` is ``(layers, clips, dim)``; ``Features.frames(i)`` is
``(layers, frames, dim)`` for clip ``i``.  Layers are first everywhere, named by
:attr:`Features.layer_names` (``pre_transformer``, ``block_1`` …).  Clips that
failed are not in the arrays: they are listed in :attr:`Features.failed` with the
reason.  :attr:`Features.clip_table` holds one row per clip held, in clip-axis order:
the rows passed to :func:`m2v_lab.extract` with all their columns, so labels travel
with the features::

    >>> notes = feats.where(subset="notes")                 # a Features of those clips
    >>> probe_layers(notes, notes.labels("pitch_class"))
    >>> feats.save("teaching.m2v")                          # and later, in a new kernel:
    >>> feats = m2v.Features.load("teaching.m2v")

A saved Features is one safetensors file, written atomically (see :meth:`Features.save`).
"""

from __future__ import annotations

import html
import json
import os
import uuid
from collections import Counter
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pandas as pd

from .errors import FeaturesError, OptionError
from .layers import layer_names, resolve_layers
from .settings import ExtractSettings

__all__ = ["Features"]

FrameSource = np.ndarray | Callable[[], np.ndarray]

#: What a saved Features says it is (safetensors header metadata), and the layout version load() reads.
_FORMAT = "m2v_lab.Features"
_FORMAT_VERSION = 1
#: Meta entries that describe a run, not the numbers: parts differing only in these can be concatenated.
_RUN_KEYS = ("cache_dir", "cache_hits", "device")


class Features:
    """Per-layer features of clips, pooled over time or frame by frame, and the clips' rows.

    Built by :func:`m2v_lab.extract`; build one yourself from arrays with the keyword
    arguments below.

    Parameters
    ----------
    layer_names : sequence of str
        Name of each layer held.
    layer_indices : sequence of int
        Index of each held layer among the model's ``layers + 1`` states.
    clips : sequence of str
        Unique clip ids, in clip-axis order.
    source_index : sequence of int
        For each clip, its position in the input to ``extract``.
    meta : dict
        Model facts and every extraction parameter (``hidden_size``, ``pool`` … as ``extract`` writes them).
    failed : dict, optional
        ``{clip_id: reason}`` for clips that could not be extracted.
    pooled : np.ndarray, shape (layers, clips, dim), optional
        Time-pooled features.  Exactly one of ``pooled`` and ``frames`` is given.
    frames : sequence, optional
        Per clip, its frames ``(layers, frames, dim)``, or a callable returning them (read on demand).
    windows : sequence of np.ndarray, optional
        Per clip, ``(n_windows, 3)`` int rows ``(start_sample, n_samples, n_frames)``.
    source_labels : sequence, optional
        Each clip's row label in the input; the index of the default ``clip_table``.  Give ``clip_table``
        instead (its index holds the labels), not both.
    clip_table : pd.DataFrame, optional
        One row per clip, in clip-axis order (rows are matched by position, so duplicate index labels are
        fine); its index is each clip's row label in the input.  ``extract`` passes the input frame's rows
        (``frame.iloc[source_index]``, index kept), or for other input a ``path`` column (a path, or a
        description of an array) indexed by ``source_index``.  Columns ``clip_id`` and ``source_index`` are
        set from ``clips`` and ``source_index`` (added when missing, overwritten when present).  Default: a
        table of those two columns indexed by ``source_labels``, or else by ``source_index``.

    Attributes
    ----------
    layer_names : tuple of str
    layer_indices : np.ndarray of int
    clips : list of str
    source_index : np.ndarray of int
    clip_table : pd.DataFrame
        One row per clip held (see above).  Adding columns is fine (:meth:`where` and :meth:`labels` read
        them); to drop clips use :meth:`select`, which keeps the rows in step.
    failed : dict
    meta : dict
    windows : list of np.ndarray

    Raises
    ------
    FeaturesError
        Both or neither of ``pooled`` and ``frames``; lengths or shapes that do not agree; repeated clip ids.

    Notes
    -----
    ``feats[layer]`` is one layer's pooled features ``(clips, dim)`` while ``len(feats)`` counts clips, so a
    Features is not a sequence: iterate over ``feats.layer_names`` or ``range(len(feats))``.
    ``np.asarray(feats)`` is ``feats.pooled``.
    """

    def __init__(self, *, layer_names: Sequence[str], layer_indices: Sequence[int], clips: Sequence[str],
                 source_index: Sequence[int], meta: dict, failed: dict | None = None,
                 pooled: np.ndarray | None = None, frames: Sequence[FrameSource] | None = None,
                 windows: Sequence[np.ndarray] | None = None, source_labels: Sequence | None = None,
                 clip_table: pd.DataFrame | None = None):
        if (pooled is None) == (frames is None):
            raise FeaturesError("Features holds either pooled arrays or frames, exactly one of them.")
        self.layer_names = tuple(layer_names)
        self.layer_indices = np.asarray(layer_indices, dtype=int)
        self.clips = list(clips)
        self.source_index = np.asarray(source_index, dtype=int)
        self.meta = dict(meta)
        self.failed = dict(failed or {})
        self.windows = list(windows) if windows is not None else [np.zeros((0, 3), int)] * len(self.clips)
        self._pooled = pooled
        self._frames = list(frames) if frames is not None else None
        self._check_lengths()
        self.clip_table = self._make_table(clip_table, source_labels)

    def _check_lengths(self):
        n, layers = len(self.clips), len(self.layer_names)
        if len(self.layer_indices) != layers:
            raise FeaturesError(f"{len(self.layer_indices)} layer_indices for {layers} layer_names: give one "
                                "index per layer name.")
        for name, given in (("source_index", len(self.source_index)), ("windows", len(self.windows)),
                            ("frames", n if self._frames is None else len(self._frames))):
            if given != n:
                raise FeaturesError(f"{name} has {given} entries for {n} clips: give one per clip, in clip order.")
        if self._pooled is not None and (self._pooled.ndim != 3 or self._pooled.shape[:2] != (layers, n)):
            raise FeaturesError(f"pooled has shape {self._pooled.shape} for {layers} layers and {n} clips: it must "
                                "be (layers, clips, dim).")
        repeated = [c for c, k in Counter(self.clips).items() if k > 1]
        if repeated:
            raise FeaturesError(f"clip ids {repeated[:5]} occur more than once: clip ids must be unique.")

    def _make_table(self, given: pd.DataFrame | None, source_labels) -> pd.DataFrame:
        if given is None:
            index = self.source_index if source_labels is None else list(source_labels)
            table = pd.DataFrame(index=pd.Index(index))
        elif source_labels is not None:
            raise FeaturesError("pass clip_table= or source_labels=, not both: clip_table's index holds the "
                                "row labels.")
        elif not isinstance(given, pd.DataFrame):
            raise FeaturesError(f"clip_table is a {type(given).__name__}; pass a pandas DataFrame with one row "
                                "per clip.")
        else:
            table = given.copy()  # the caller's frame may change later; these rows must not
        if len(table) != len(self.clips):
            raise FeaturesError(f"clip_table has {len(table)} rows for {len(self.clips)} clips: pass one row per "
                                "clip held, in clip order (frame.iloc[source_index]).")
        repeated = [c for c, k in Counter(table.columns).items() if k > 1]
        if repeated:
            raise FeaturesError(f"clip_table has repeated columns {repeated}: give each column one name.")
        if "clip_id" in table.columns:
            table["clip_id"] = self.clips  # extract's ids (NaN filled, repeats numbered) are the ones to use
        else:
            table.insert(0, "clip_id", self.clips)
        table["source_index"] = self.source_index
        return table

    # -- shape ------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.clips)

    # feats[layer] is a layer while len(feats) counts clips: without this, Python would iterate over layers
    # until an error (the sequence protocol) and isinstance(feats, Iterable) would say yes.
    __iter__ = None

    @property
    def num_layers(self) -> int:
        """Layers held (``model layers + 1`` unless a subset was selected)."""
        return len(self.layer_names)

    @property
    def dim(self) -> int:
        return int(self.meta["hidden_size"])

    @property
    def pooling(self) -> str | None:
        return self.meta.get("pool")

    @property
    def settings(self) -> ExtractSettings:
        """How these features were extracted (raises OptionError for features not made by ``extract``)."""
        return ExtractSettings.from_meta(self.meta)

    @property
    def model_label(self) -> str | None:
        """Which model made these numbers, for figure titles: ``"music2vec-mini · trained"``,
        ``"tiny-music2vec · untrained"``; None for features not made by ``extract``."""
        name = self.meta.get("model")
        if name is None:
            return None
        return f"{name} · {'trained' if self.meta.get('trained', True) else 'untrained'}"

    def __repr__(self) -> str:
        kind = f"pooled {self.pooling}" if self._pooled is not None else "frames"
        failed = f", {len(self.failed)} failed" if self.failed else ""
        untrained = ", UNTRAINED model" if not self.meta.get("trained", True) else ""
        return (f"Features({self.meta.get('model')!r}{untrained}: {self.num_layers} layers x "
                f"{len(self)} clips x {self.dim} dims, {kind}{failed})")

    def _repr_html_(self) -> str:
        kind = f"pooled ({self.pooling})" if self._pooled is not None else "frames"
        untrained = (" <b style='color:#b00'>UNTRAINED</b>" if not self.meta.get("trained", True) else "")
        failed = f", {len(self.failed)} failed (<code>feats.failed</code>)" if self.failed else ""
        layers = self.layer_names if self.num_layers <= 4 else (*self.layer_names[:2], "…", self.layer_names[-1])
        more = len(self) - 5
        shown = self.clip_table.head(5)
        if "path" in shown.columns:  # a glance needs the file, not this machine's folders
            shown = shown.assign(path=[os.path.basename(str(p)) for p in shown["path"]])
        return (f"<div><b>Features</b> of <code>{html.escape(str(self.meta.get('model')))}</code>{untrained}: "
                f"{self.num_layers} layers × {len(self)} clips × {self.dim} dims, {kind}{failed}<br>"
                f"layers: {html.escape(', '.join(layers))}</div>"
                f"{shown.to_html(max_cols=12)}"
                + (f"<div>… {more} more clips (<code>feats.clip_table</code>)</div>" if more > 0 else ""))

    # -- data ---------------------------------------------------------------------
    @property
    def pooled(self) -> np.ndarray:
        """Time-pooled features, shape ``(layers, clips, dim)``, float32."""
        if self._pooled is None:
            raise FeaturesError("these features were extracted with pool=None (frames only); use "
                                "feats.frames(i), or feats.pool('mean') for pooled features.")
        return self._pooled

    def __array__(self, dtype=None, copy=None):
        return np.array(self.pooled, dtype=dtype, copy=copy)

    def __getitem__(self, layer: int | str) -> np.ndarray:
        """One layer's pooled features, shape ``(clips, dim)``: ``feats["block_6"]`` or ``feats[6]``.

        An integer is the layer's index among the model's states, as in :meth:`select`.
        """
        if isinstance(layer, (bool, np.bool_)) or not isinstance(layer, (int, np.integer, str)):
            raise OptionError(f"feats[{layer!r}]: pass one layer, an index or a name; for several use "
                              "feats.select(layers=[...]).pooled.")
        return self.pooled[self._layer_positions(layer)[0]]

    def frames(self, i: int | str) -> np.ndarray:
        """Frame-level features of clip ``i`` (index or clip id), shape ``(layers, frames, dim)``.

        Windows of a long clip follow each other along the frame axis; see
        :meth:`frame_times` for when each frame is.
        """
        if self._frames is None:
            raise FeaturesError(f"these features were pooled ({self.pooling}) at extraction; extract again "
                                "with pool=None to get frames.")
        k = self.position(i)
        source = self._frames[k]
        return source() if callable(source) else source

    def frame_times(self, i: int | str) -> np.ndarray:
        """Centre (seconds from clip start) of each frame's receptive field, shape ``(frames,)``."""
        rate = self.meta["sample_rate"]
        stride, field = self.meta["frame_stride"], self.meta["receptive_field"]
        times = [(start + np.arange(n_frames) * stride + field / 2) / rate
                 for start, _, n_frames in self.windows[self.position(i)]]
        return np.concatenate(times) if times else np.zeros(0)

    def position(self, i: int | str) -> int:
        """Position on the clip axis of clip `i` (an index, negative allowed, or a clip id)."""
        if isinstance(i, str):
            try:
                return self.clips.index(i)
            except ValueError:
                hint = " (it failed: see feats.failed)" if i in self.failed else ""
                raise FeaturesError(f"no clip {i!r} in these features{hint}.") from None
        if isinstance(i, (bool, np.bool_)) or not isinstance(i, (int, np.integer)):
            raise FeaturesError(f"clip {i!r}: pass an integer position or a clip id.")
        if not -len(self) <= i < len(self):
            raise FeaturesError(f"clip index {i} is out of range for {len(self)} clips.")
        return int(i) % len(self)

    def labels(self, column: str) -> np.ndarray:
        """One column of :attr:`clip_table` as an array, shape ``(clips,)``, in clip order.

        >>> probe_layers(feats, feats.labels("pitch_class"), groups=feats.labels("group"))
        """
        return self._column(column).to_numpy()

    def _column(self, column: str) -> pd.Series:
        if column not in self.clip_table.columns:
            raise FeaturesError(f"no column {column!r} in feats.clip_table; its columns are "
                                f"{list(self.clip_table.columns)}. Extract from a DataFrame holding it, or add it: "
                                f"feats.clip_table[{column!r}] = values (one per clip, in clip order).")
        return self.clip_table[column]

    # -- derived views ------------------------------------------------------------
    def _layer_positions(self, layers) -> list[int]:
        """Positions on the layer axis of a selection: names, or indices among the model's states
        (negative from the end, as ``extract(layers=-1)``), resolved by :func:`m2v_lab.layers.resolve_layers`."""
        if layers is None:
            return list(range(self.num_layers))
        if "num_layers" in self.meta:
            model_states = layer_names(int(self.meta["num_layers"]))
            held = {int(index): p for p, index in enumerate(self.layer_indices)}
            chosen = [model_states[i] for i in resolve_layers(model_states, layers)]
        else:  # built by hand: the held layers are all there is
            model_states, held = self.layer_names, {p: p for p in range(self.num_layers)}
            chosen = [self.layer_names[i] for i in resolve_layers(self.layer_names, layers)]
        positions = []
        for name in chosen:
            index = model_states.index(name)
            if index not in held:
                raise FeaturesError(f"layer {name!r} is not held; these features hold {list(self.layer_names)} "
                                    "(extract again with layers= including it).")
            positions.append(held[index])
        return positions

    def _mask(self, mask, what: str) -> np.ndarray:
        """A boolean mask over the clips held (positional; missing values of a nullable mask are False)."""
        if isinstance(mask, (pd.Series, pd.Index, pd.api.extensions.ExtensionArray)):
            if not pd.api.types.is_bool_dtype(mask.dtype):
                raise FeaturesError(f"{what} must be a boolean mask over the clips; got dtype {mask.dtype}.")
            mask = mask.to_numpy(dtype=bool, na_value=False)
        mask = np.asarray(mask)
        if mask.dtype != bool:
            raise FeaturesError(f"{what} must be a boolean mask over the clips; got dtype {mask.dtype} (with "
                                "missing values, fill them first: mask.fillna(False).astype(bool)).")
        if mask.shape != (len(self),):
            raise FeaturesError(f"{what}: a boolean clip mask needs {len(self)} entries, one per clip held; got "
                                f"shape {mask.shape}. Build it from feats.clip_table (e.g. "
                                "feats.clip_table.subset == 'notes').")
        return mask

    def _clip_positions(self, clips) -> list[int]:
        dtype = getattr(clips, "dtype", None)
        if (dtype is not None and pd.api.types.is_bool_dtype(dtype)) or np.asarray(clips).dtype == bool:
            return np.flatnonzero(self._mask(clips, "clips")).tolist()
        chosen = np.asarray(clips.to_numpy() if hasattr(clips, "to_numpy") else clips)
        return [self.position(c.item() if isinstance(c, np.generic) else c) for c in np.atleast_1d(chosen)]

    def select(self, *, layers=None, clips=None, where=None) -> "Features":
        """Some layers and/or clips, with their rows of :attr:`clip_table`.

        Parameters
        ----------
        layers : int, str or a sequence of them, optional
            Indices among the model's states (negative from the end, as ``extract(layers=)``) or names.
        clips : sequence, optional
            Positions, clip ids, or a boolean mask over the clips held.
        where : array_like of bool or pd.Series, optional
            A boolean mask over the clips held, matched by position (a Series' index is not used), e.g.
            ``feats.clip_table.split == "test"``; missing values count as False.

        Returns
        -------
        Features
            ``pooled`` ``(selected layers, selected clips, dim)``, frames sliced on demand.

        Raises
        ------
        OptionError
            Both ``clips`` and ``where``.
        FeaturesError
            A layer or clip not held; a mask of the wrong length.
        """
        if clips is not None and where is not None:
            raise OptionError("select(clips=..., where=...): pass one of them; clips= takes a mask too.")
        lp = self._layer_positions(layers)
        if where is not None:
            cp = np.flatnonzero(self._mask(where, "where")).tolist()
        else:
            cp = list(range(len(self))) if clips is None else self._clip_positions(clips)
        frames = None
        if self._frames is not None:
            frames = [_LayerSlice(self._frames[c], lp) for c in cp]
        return Features(
            layer_names=[self.layer_names[p] for p in lp], layer_indices=self.layer_indices[lp],
            clips=[self.clips[c] for c in cp], source_index=self.source_index[cp], meta=self.meta,
            failed=self.failed, pooled=None if self._pooled is None else self._pooled[lp][:, cp],
            frames=frames, windows=[self.windows[c] for c in cp], clip_table=self.clip_table.iloc[cp])

    def where(self, **conditions) -> "Features":
        """The clips whose :attr:`clip_table` rows meet every condition.

        Each keyword is a column; its value is one accepted value, a list (tuple, set, array) of
        accepted values, or a callable taking the column (a Series) and returning a boolean mask.
        Missing values match only a missing value given (``None`` or NaN).

        >>> feats.where(subset="notes", velocity=lambda v: v >= 80)
        >>> feats.where(instrument_family=["Piano", "Organ"])

        Raises
        ------
        FeaturesError
            A column ``clip_table`` does not have (the message lists those it has), or a callable not
            returning one boolean per clip.
        """
        keep = np.ones(len(self), dtype=bool)
        for column, accepted in conditions.items():
            values = self._column(column)
            if callable(accepted):
                keep &= self._mask(accepted(values), f"where({column}=...)")
            elif pd.api.types.is_list_like(accepted):
                keep &= values.isin(list(accepted)).to_numpy()
            else:
                keep &= values.isin([accepted]).to_numpy()
        return self.select(clips=keep)

    def pool(self, how: str = "mean") -> "Features":
        """Pool frame-level features over time per clip (``"mean"`` or ``"max"``)."""
        if self._pooled is not None:
            if how == self.pooling:
                return self
            raise FeaturesError(f"already pooled with {self.pooling!r}; extract with pool=None to re-pool.")
        if how not in ("mean", "max"):
            raise FeaturesError(f"pool={how!r}: use 'mean' or 'max'.")
        rows = []
        for i in range(len(self)):
            f = self.frames(i)
            rows.append(f.mean(axis=1, dtype=np.float64).astype(np.float32) if how == "mean" else f.max(axis=1))
        pooled = np.stack(rows, axis=1) if rows else np.zeros((self.num_layers, 0, self.dim), np.float32)
        return Features(layer_names=self.layer_names, layer_indices=self.layer_indices, clips=self.clips,
                        source_index=self.source_index, meta=dict(self.meta, pool=how), failed=self.failed,
                        pooled=pooled, windows=self.windows, clip_table=self.clip_table)

    def align(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Rows of ``frame`` (the clips passed to ``extract``) for the clips held, in clip order.

        :attr:`clip_table` already holds those rows; ``align`` finds them in a frame that has since
        gained columns, or in a larger or filtered one.  Rows are taken by position when the rows at
        ``source_index`` carry the clips' index labels (the frame given to ``extract``, duplicate labels
        and all); else by label when each clip's label is in ``frame`` exactly once (``frame`` is the
        full frame and ``df[df.split == "test"]`` was extracted).  Features joined by :meth:`concat`
        come from several frames: their rows are in :attr:`clip_table` only.

        Raises
        ------
        FeaturesError
            Not a DataFrame; the clips' rows are not found that way; or rows found whose ``clip_id``
            (or ``path``) do not name the clips extracted (a different frame).
        """
        if not isinstance(frame, pd.DataFrame):
            raise FeaturesError(f"align takes the DataFrame passed to extract (got {type(frame).__name__}); "
                                "feats.clip_table already holds its rows.")
        labels = self.clip_table.index
        # the source_index of parts joined by concat are positions in different inputs, not in one frame
        joined = "source_part" in self.clip_table.columns and self.clip_table["source_part"].nunique() > 1
        if not joined and (len(self) == 0 or self.source_index.max() < len(frame)):
            rows = frame.iloc[self.source_index]
            if rows.index.equals(labels):
                return self._check_names(rows)
        if labels.is_unique:
            rows = frame[frame.index.isin(labels)]
            if rows.index.is_unique and len(rows) == len(labels):
                return self._check_names(rows.iloc[rows.index.get_indexer(labels)])
        raise FeaturesError("these features' clips are not all rows of that frame, found by position or by a "
                            "label present once; pass the frame given to extract() (or one holding its rows), or "
                            "use feats.clip_table, which holds them (for features joined with Features.concat, "
                            "the only way).")

    def _check_names(self, rows: pd.DataFrame) -> pd.DataFrame:
        if "clip_id" in rows.columns and rows["clip_id"].notna().all():
            found = rows["clip_id"].astype(str).tolist()
        elif "path" in rows.columns:
            found = rows["path"].astype(str).tolist()
        else:
            return rows  # nothing names the clips: their index labels matched, that is the check
        for clip, name in zip(self.clips, found):
            # extract's ids are the clip_id (or path, "@start" for segments), "#n" added to repeats
            if not (clip == name or clip.startswith((name + "@", name + "#"))):
                raise FeaturesError(f"the frame's rows do not name the clips extracted (clip {clip!r} is at a row "
                                    f"naming {name!r}); pass the frame given to extract().")
        return rows

    # -- interop -----------------------------------------------------------------
    def to_torch(self):
        """:attr:`pooled` as a torch tensor ``(layers, clips, dim)``, sharing its memory (no copy)."""
        import torch

        return torch.from_numpy(self.pooled)

    def to_frame(self, *, layers=None) -> pd.DataFrame:
        """Pooled features as a tidy long frame, one row per (layer, clip, dim).

        Parameters
        ----------
        layers : int, str or a sequence of them, optional
            Only these layers (as :meth:`select`); all of them make ``layers × clips × dim`` rows.

        Returns
        -------
        pd.DataFrame
            Columns ``layer`` (ordered categorical of the layer names), ``layer_index`` (among the
            model's states), ``clip_id`` (categorical, clip order), ``dim`` and ``value`` (float32),
            in the order of ``pooled.ravel()``.  Join labels with
            ``frame.merge(feats.clip_table, on="clip_id")``.
        """
        some = self.select(layers=layers)
        values = some.pooled
        n_layers, n_clips, dim = values.shape
        return pd.DataFrame({
            "layer": pd.Categorical.from_codes(np.repeat(np.arange(n_layers), n_clips * dim),
                                               categories=list(some.layer_names), ordered=True),
            "layer_index": np.repeat(some.layer_indices, n_clips * dim),
            "clip_id": pd.Categorical.from_codes(np.tile(np.repeat(np.arange(n_clips), dim), n_layers),
                                                 categories=some.clips),
            "dim": np.tile(np.arange(dim), n_layers * n_clips),
            "value": values.ravel(),
        })

    @classmethod
    def concat(cls, parts: Sequence["Features"]) -> "Features":
        """Join Features of one model, extracted with the same settings, along the clip axis.

        ``clip_table`` rows are concatenated (a column missing from a part is NA in its rows) and gain a
        ``source_part`` column: which of ``parts`` each clip came from, so ``(source_part, source_index)``
        names its input row (``source_index`` keeps each part's own positions).  Parts that were
        concatenated before keep their ``source_part`` numbers, shifted past the previous parts', so
        ``concat([concat([a, b]), c])`` is ``concat([a, b, c])``.  ``failed`` merges the parts' failures,
        less clips another part holds (a re-run of the failures).  ``meta`` is the parts' common meta;
        ``cache_hits`` is summed, and ``cache_dir`` or ``device`` becomes the list of their distinct
        values when parts differ.

        Raises
        ------
        FeaturesError
            No parts; parts of other models, layers, pooling or settings (the message names what
            differs); a clip id in more than one part.
        """
        parts = list(parts)
        if not parts:
            raise FeaturesError("Features.concat needs at least one Features; got none.")
        for k, part in enumerate(parts):
            if not isinstance(part, Features):
                raise FeaturesError(f"part {k} is a {type(part).__name__}; Features.concat joins Features.")
        first = parts[0]
        for k, part in enumerate(parts[1:], start=1):
            differences = first._differences(part)
            if differences:
                raise FeaturesError(f"part {k} was not made like part 0: {'; '.join(differences[:3])}. Concatenate "
                                    "features of one model extracted with the same settings (and layers: "
                                    "feats.select(layers=...)).")
        repeated = [c for c, k in Counter(c for p in parts for c in p.clips).items() if k > 1]
        if repeated:
            raise FeaturesError(f"clip ids {repeated[:5]} are in more than one part; give the clips distinct ids "
                                "(a clip_id column in the frame passed to extract), or drop the repeats first "
                                "(feats.select(where=...)).")
        tables, offset = [], 0
        for part in parts:
            table = part.clip_table
            own = (table["source_part"].to_numpy(dtype=int) if "source_part" in table.columns
                   else np.zeros(len(part), dtype=int))
            tables.append(table.assign(source_part=own + offset))
            offset += int(own.max()) + 1 if len(own) else 1
        held = {c for p in parts for c in p.clips}
        meta = dict(first.meta)
        for key in (k for k in _RUN_KEYS if any(k in p.meta for p in parts)):
            values = [p.meta.get(key) for p in parts]
            if key == "cache_hits":
                meta[key] = sum(v or 0 for v in values)
                continue
            distinct = []  # flattened, so that joining joined parts lists each value once
            for value in values:
                distinct += [v for v in (value if isinstance(value, list) else [value]) if v not in distinct]
            meta[key] = distinct[0] if len(distinct) == 1 else distinct
        pooled = frames = None
        if first._pooled is not None:
            pooled = np.concatenate([p._pooled for p in parts], axis=1)
        else:
            frames = [f for p in parts for f in p._frames]
        return cls(layer_names=first.layer_names, layer_indices=first.layer_indices,
                   clips=[c for p in parts for c in p.clips],
                   source_index=np.concatenate([p.source_index for p in parts]), meta=meta,
                   failed={c: r for p in parts for c, r in p.failed.items() if c not in held},
                   pooled=pooled, frames=frames, windows=[w for p in parts for w in p.windows],
                   clip_table=pd.concat(tables))

    def _differences(self, other: "Features") -> list[str]:
        """What about ``other``'s numbers differs from these (layers, kind, meta less run facts)."""
        out = []
        if self.layer_names != other.layer_names or not np.array_equal(self.layer_indices, other.layer_indices):
            out.append(f"layers {list(self.layer_names)} vs {list(other.layer_names)}")
        if (self._pooled is None) != (other._pooled is None):
            out.append("pooled vs frames" if self._pooled is not None else "frames vs pooled")
        for key in [*self.meta, *(k for k in other.meta if k not in self.meta)]:
            mine, theirs = (repr(m[key]) if key in m else "(missing)" for m in (self.meta, other.meta))
            if key not in _RUN_KEYS and (key not in self.meta or key not in other.meta
                                         or self.meta[key] != other.meta[key]):
                out.append(f"meta[{key!r}] {mine} vs {theirs}")
        return out

    # -- persistence -------------------------------------------------------------
    def save(self, path: str | os.PathLike) -> Path:
        """Write these features, with their clip table, to one file; :meth:`load` reads it back exactly.

        The file is a safetensors file (any name; ``"feats.m2v"`` reads well).  Arrays are stored
        bit-exact: ``pooled`` ``(layers, clips, dim)`` or each clip's frames ``(layers, frames, dim)``
        (frames read on demand, e.g. from the cache, are read now), ``windows``, ``source_index``,
        ``layer_indices``, and every numeric, boolean or datetime column of ``clip_table`` (and of its
        index).  Layer names, clip ids, ``meta``, ``failed`` and the other columns are JSON in the
        file's body: strings, nullable and categorical columns come back with their dtypes; Python
        objects in object columns must be JSON values (a tuple comes back as a list, ``pd.NA`` as None).
        Never pickle.

        The file is written next to its destination under a temporary name and renamed over it, so
        an interrupted save leaves any earlier file whole; only a file written by ``save`` is replaced.
        Missing parent folders are made.

        Returns
        -------
        Path
            The file written.

        Raises
        ------
        FeaturesError
            ``path`` is a folder, or a file that is not saved Features; the disk refused the write;
            ``meta`` or a column holds values that cannot be stored exactly (the message names it).
        """
        from safetensors import SafetensorError
        from safetensors.numpy import save_file

        path = Path(path).expanduser()
        if path.is_dir():
            raise FeaturesError(f"{path} is a folder; give a file path, e.g. {path / 'feats.m2v'}.")
        if path.exists() and not _is_saved_features(path):
            raise FeaturesError(f"{path} exists and is not saved Features; save to another path, or delete it "
                                "first.")
        arrays = self._arrays()
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}.tmp")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            save_file(arrays, str(tmp), metadata={"format": _FORMAT, "version": str(_FORMAT_VERSION)})
            with open(tmp, "rb") as f:
                os.fsync(f.fileno())  # the bytes are on disk before the name points at them
            os.replace(tmp, path)
        except (OSError, SafetensorError) as exc:
            raise FeaturesError(f"cannot write {path}: {exc}. Check that its folder is writable and the disk has "
                                "free space.") from exc
        finally:
            tmp.unlink(missing_ok=True)
        return path

    def _arrays(self) -> dict[str, np.ndarray]:
        """Everything to save, as arrays; the JSON part is the ``features.json`` byte array."""
        arrays: dict[str, np.ndarray] = {}
        if self._pooled is not None:
            arrays["pooled"] = np.ascontiguousarray(self._pooled)
        else:
            for i in range(len(self)):
                arrays[f"frames.{i}"] = np.ascontiguousarray(self.frames(i))
        arrays["layer_indices"] = self.layer_indices.astype(np.int64)
        arrays["source_index"] = self.source_index.astype(np.int64)
        arrays["windows"] = (np.concatenate(self.windows).astype(np.int64).reshape(-1, 3) if self.windows
                             else np.zeros((0, 3), np.int64))
        arrays["windows.count"] = np.array([len(w) for w in self.windows], dtype=np.int64)
        table = _encode_table(self.clip_table, arrays)
        doc = {"layer_names": list(self.layer_names), "clips": self.clips, "meta": self.meta,
               "failed": self.failed, "clip_table": table}
        for name in ("meta", "failed"):
            try:
                json.dumps(doc[name], default=_json_value)
            except (TypeError, ValueError) as exc:
                raise FeaturesError(f"feats.{name} holds {exc}, which JSON cannot store; make them str, numbers, "
                                    "bools, None, lists or dicts before saving.") from None
        arrays["features.json"] = np.frombuffer(json.dumps(doc, default=_json_value).encode(), dtype=np.uint8)
        return arrays

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Features":
        """Read features written by :meth:`save`.

        Frames are read into memory.

        Raises
        ------
        FeaturesError
            No file at ``path``, or a file that is not saved Features (or was cut short), or one written
            by a newer m2v_lab.
        """
        from safetensors import SafetensorError, safe_open

        path = Path(path).expanduser()
        if not path.is_file():
            what = "a folder" if path.is_dir() else "no such file"
            raise FeaturesError(f"no saved Features at {path} ({what}); write one with feats.save(path), and pass "
                                "that file's path.")
        try:
            with safe_open(str(path), "numpy") as f:
                header = f.metadata() or {}
                arrays = {k: f.get_tensor(k) for k in f.keys()} if header.get("format") == _FORMAT else None
        except (SafetensorError, OSError, ValueError) as exc:
            raise FeaturesError(f"{path} is not saved Features ({exc}); Features.load reads files written by "
                                "feats.save(path).") from None
        if arrays is None or "features.json" not in arrays:
            raise FeaturesError(f"{path} is not saved Features (a safetensors file without m2v_lab's marker); "
                                "Features.load reads files written by feats.save(path).")
        if int(header.get("version", 0)) > _FORMAT_VERSION:
            raise FeaturesError(f"{path} was saved by a newer m2v_lab (format {header['version']}); upgrade "
                                "m2v_lab to read it.")
        doc = json.loads(arrays["features.json"].tobytes().decode())
        n = len(doc["clips"])
        ends = np.cumsum(arrays["windows.count"])
        windows = [arrays["windows"][end - count:end] for end, count in zip(ends, arrays["windows.count"])]
        return cls(layer_names=doc["layer_names"], layer_indices=arrays["layer_indices"], clips=doc["clips"],
                   source_index=arrays["source_index"], meta=doc["meta"], failed=doc["failed"],
                   pooled=arrays.get("pooled"),
                   frames=None if "pooled" in arrays else [arrays[f"frames.{i}"] for i in range(n)],
                   windows=windows, clip_table=_decode_table(doc["clip_table"], arrays))


def _is_saved_features(path: Path) -> bool:
    from safetensors import safe_open

    try:
        with safe_open(str(path), "numpy") as f:
            return (f.metadata() or {}).get("format") == _FORMAT
    except Exception:  # anything unreadable is, for this question, not saved Features
        return False


# -- clip_table <-> arrays + JSON, exactly ----------------------------------------
# DataFrame.to_json(orient="table") keeps 10 (at most 15) digits of a float, milliseconds of a time and
# drops an index with repeated labels, so numbers go into the safetensors file bit for bit and JSON
# holds only what is text (strings, nullable and object columns) plus each column's dtype.

def _json_value(value):
    if isinstance(value, np.generic):
        return value.item()
    if value is pd.NA:
        return None
    raise TypeError(f"{type(value).__name__} values")


def _encode_values(values: pd.Series | pd.Index, key: str, arrays: dict) -> dict:
    dtype = values.dtype
    if isinstance(dtype, pd.CategoricalDtype):
        cat = values.array
        arrays[key] = np.ascontiguousarray(cat.codes)
        return {"kind": "categorical", "ordered": bool(cat.ordered),
                "categories": _encode_values(cat.categories, key + ".categories", arrays)}
    if isinstance(dtype, np.dtype) and dtype.kind in "biufmM":
        data = values.to_numpy()
        arrays[key] = np.ascontiguousarray(data.view(np.int64) if dtype.kind in "mM" else data)
        return {"kind": "array", "dtype": dtype.str}
    items = values.tolist()
    try:
        json.dumps(items, default=_json_value)
    except (TypeError, ValueError) as exc:
        raise FeaturesError(f"clip_table column or index {values.name!r} holds {exc}, which save cannot store "
                            "exactly; convert it (e.g. .astype(str)) or delete the column (del "
                            "feats.clip_table[name]) before saving.") from None
    return {"kind": "json", "dtype": str(dtype), "values": items}


def _decode_values(spec: dict, key: str, arrays: dict):
    if spec["kind"] == "categorical":
        categories = pd.Index(_decode_values(spec["categories"], key + ".categories", arrays))
        return pd.Categorical.from_codes(arrays[key], categories=categories, ordered=spec["ordered"])
    if spec["kind"] == "array":
        return arrays[key].view(np.dtype(spec["dtype"]))
    if spec["dtype"] == "object":  # fromiter keeps list values whole where np.array would nest them
        return np.fromiter(spec["values"], dtype=object, count=len(spec["values"]))
    return pd.array(spec["values"], dtype=spec["dtype"])


def _encode_index(index: pd.Index, key: str, arrays: dict) -> dict:
    if isinstance(index, pd.RangeIndex):
        return {"range": [index.start, index.stop, index.step], "names": [index.name]}
    return {"names": list(index.names),
            "levels": [_encode_values(index.get_level_values(i), f"{key}.{i}", arrays) for i in range(index.nlevels)]}


def _decode_index(spec: dict, key: str, arrays: dict) -> pd.Index:
    if "range" in spec:
        return pd.RangeIndex(*spec["range"], name=spec["names"][0])
    levels = [_decode_values(s, f"{key}.{i}", arrays) for i, s in enumerate(spec["levels"])]
    if len(levels) == 1:
        return pd.Index(levels[0], dtype=levels[0].dtype, name=spec["names"][0])
    return pd.MultiIndex.from_arrays(levels, names=spec["names"])


def _encode_table(table: pd.DataFrame, arrays: dict) -> dict:
    return {"rows": len(table), "index": _encode_index(table.index, "clip_table.index", arrays),
            "columns": _encode_index(table.columns, "clip_table.columns", arrays),
            "data": [_encode_values(table.iloc[:, k], f"clip_table.{k}", arrays) for k in range(table.shape[1])]}


def _decode_table(spec: dict, arrays: dict) -> pd.DataFrame:
    columns = [_decode_values(s, f"clip_table.{k}", arrays) for k, s in enumerate(spec["data"])]
    # built on a fresh range index and labelled after, so repeated index labels are never aligned on
    table = pd.DataFrame({k: pd.Series(v, dtype=v.dtype) for k, v in enumerate(columns)},
                         index=pd.RangeIndex(spec["rows"]))
    table.index = _decode_index(spec["index"], "clip_table.index", arrays)
    table.columns = _decode_index(spec["columns"], "clip_table.columns", arrays)
    return table


class _LayerSlice:
    """Lazily take some layers of one clip's frames (which may load from the cache)."""

    def __init__(self, source: FrameSource, positions: list[int]):
        self.source, self.positions = source, positions

    def __call__(self) -> np.ndarray:
        full = self.source() if callable(self.source) else self.source
        return full[self.positions]
