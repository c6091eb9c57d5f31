"""The one type every analysis takes: per-layer features of a set of clips.

``Features.pooled`` is ``(layers, clips, dim)``; ``Features.frames(i)`` is
``(layers, frames, dim)`` for clip ``i``.  Layers are first everywhere, named by
:attr:`Features.layer_names` (``pre_transformer``, ``block_1`` …).  Clips that
failed are not in the arrays: they are listed in :attr:`Features.failed` with the
reason, and :attr:`Features.source_index` maps each row back to the position of
the clip in what was passed to :func:`m2v_lab.extract`.
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from .errors import FeaturesError

__all__ = ["Features"]

FrameSource = np.ndarray | Callable[[], np.ndarray]


class Features:
    """Per-layer features of clips, pooled over time or frame by frame.

    Attributes
    ----------
    layer_names : tuple of str
        Name of each layer held, layers-first order of every array.
    layer_indices : np.ndarray of int
        Index of each held layer among the model's ``layers + 1`` states.
    clips : list of str
        Clip ids, in the order of the clip axis.
    source_index : np.ndarray of int
        For each clip, its position in the input to ``extract``.
    source_labels : list or None
        For DataFrame input, each clip's row label (index) in that frame; :meth:`align` uses it.
    failed : dict
        ``{clip_id: reason}`` for clips that could not be extracted.
    meta : dict
        Model facts and every extraction parameter (what made these numbers).
    windows : list of np.ndarray
        Per clip, ``(n_windows, 3)`` int rows ``(start_sample, n_samples, n_frames)``.
    """

    def __init__(self, *, layer_names: Sequence[str], layer_indices: Sequence[int], clips: Sequence[str],
                 source_index: Sequence[int], meta: dict, failed: dict | None = None,
                 pooled: np.ndarray | None = None, frames: Sequence[FrameSource] | None = None,
                 windows: Sequence[np.ndarray] | None = None, source_labels: Sequence | None = None):
        if (pooled is None) == (frames is None):
            raise FeaturesError("Features holds either pooled arrays or frames, exactly one of them.")
        self.layer_names = tuple(layer_names)
        self.layer_indices = np.asarray(layer_indices, dtype=int)
        self.clips = list(clips)
        self.source_index = np.asarray(source_index, dtype=int)
        self.source_labels = None if source_labels is None else list(source_labels)
        self.meta = dict(meta)
        self.failed = dict(failed or {})
        self.windows = list(windows) if windows is not None else [np.zeros((0, 3), int)] * len(self.clips)
        self._pooled = pooled
        self._frames = list(frames) if frames is not None else None

    # -- shape ------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.clips)

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

    def __repr__(self) -> str:
        kind = f"pooled {self.pooling}" if self._pooled is not None else "frames"
        failed = f", {len(self.failed)} failed" if self.failed else ""
        untrained = ", UNTRAINED model" if not self.meta.get("trained", True) else ""
        return (f"Features({self.meta.get('model')!r}{untrained}: {self.num_layers} layers x "
                f"{len(self)} clips x {self.dim} dims, {kind}{failed})")

    # -- data ---------------------------------------------------------------------
    @property
    def pooled(self) -> np.ndarray:
        """Time-pooled features, shape ``(layers, clips, dim)``, float32."""
        if self._pooled is None:
            raise FeaturesError("these features were extracted with pool=None (frames only); use "
                                "feats.frames(i), or feats.pool('mean') for pooled features.")
        return self._pooled

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

    # -- derived views ------------------------------------------------------------
    def _layer_positions(self, layers) -> list[int]:
        if layers is None:
            return list(range(self.num_layers))
        if isinstance(layers, (int, np.integer, str)):
            layers = [layers]
        positions = []
        for layer in layers:
            if isinstance(layer, str):
                if layer not in self.layer_names:
                    raise FeaturesError(f"no layer {layer!r}; layers are {list(self.layer_names)}.")
                positions.append(self.layer_names.index(layer))
            else:
                where = np.flatnonzero(self.layer_indices == int(layer))
                if where.size == 0:
                    raise FeaturesError(f"layer {layer} is not held; held layer indices: "
                                        f"{self.layer_indices.tolist()}.")
                positions.append(int(where[0]))
        return positions

    def _clip_positions(self, clips) -> list[int]:
        chosen = np.asarray(clips.to_numpy() if hasattr(clips, "to_numpy") else clips)
        if chosen.dtype == bool:
            if chosen.shape != (len(self),):
                raise FeaturesError(f"a boolean clip mask needs {len(self)} entries, one per clip held; got "
                                    f"shape {chosen.shape}. Build it from feats.align(frame).")
            return np.flatnonzero(chosen).tolist()
        return [self.position(c.item() if isinstance(c, np.generic) else c) for c in np.atleast_1d(chosen)]

    def select(self, *, layers=None, clips=None) -> "Features":
        """A view on some layers (indices among the model's states, or names) and/or clips
        (positions, clip ids, or a boolean mask over the clips held)."""
        lp = self._layer_positions(layers)
        cp = list(range(len(self))) if clips is None else self._clip_positions(clips)
        frames = None
        if self._frames is not None:
            frames = [_LayerSlice(self._frames[c], lp) for c in cp]
        return Features(
            layer_names=[self.layer_names[p] for p in lp], layer_indices=self.layer_indices[lp],
            clips=[self.clips[c] for c in cp], source_index=self.source_index[cp], meta=self.meta,
            failed=self.failed, pooled=None if self._pooled is None else self._pooled[lp][:, cp],
            frames=frames, windows=[self.windows[c] for c in cp],
            source_labels=None if self.source_labels is None else [self.source_labels[c] for c in cp])

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
                        pooled=pooled, windows=self.windows, source_labels=self.source_labels)

    def align(self, frame):
        """Rows of ``frame`` (the clips passed to ``extract``) for the clips held, in order.

        For a DataFrame given to ``extract`` rows are found by index label, so a filtered frame
        (``df[df.split == "test"]``) aligns with the full one too.

        Raises
        ------
        FeaturesError
            When the rows found are not the clips extracted (a different frame).
        """
        try:
            if self.source_labels is not None:
                rows = frame.loc[self.source_labels]
            else:
                rows = frame.iloc[self.source_index]
        except (KeyError, IndexError):
            raise FeaturesError("these features' clips are not all rows of that frame; pass the frame given "
                                "to extract() (or one holding its rows).") from None
        if "clip_id" in rows.columns and rows["clip_id"].notna().all():
            found = rows["clip_id"].astype(str).tolist()
        elif "path" in rows.columns:
            found = rows["path"].astype(str).tolist()
        else:
            return rows
        if not all(c == f or c.startswith((f + "@", f + "#")) for c, f in zip(self.clips, found)):
            raise FeaturesError("the frame's rows do not name the clips extracted (clip_id/path differ); pass the "
                                "frame given to extract().")
        return rows


class _LayerSlice:
    """Lazily take some layers of one clip's frames (which may load from the cache)."""

    def __init__(self, source: FrameSource, positions: list[int]):
        self.source, self.positions = source, positions

    def __call__(self) -> np.ndarray:
        full = self.source() if callable(self.source) else self.source
        return full[self.positions]
