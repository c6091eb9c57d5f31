"""ClipBrowser: filter clips by their labels, pick one, hear it, see it and one layer's frames over time."""

from __future__ import annotations

import html
import io
from collections import OrderedDict

import ipywidgets as widgets
import numpy as np
import pandas as pd
import soundfile as sf

from .. import audio
from ..errors import FeaturesError, OptionError
from ..extract import extract
from ..layers import layer_label
from ..plot.clips import spectrogram, waveform
from ..plot.features import frame_image
from ._rows import aligned_rows, label_report
from ._view import View, new_figure
from .layers import LayerPicker

__all__ = ["ClipBrowser", "wav_bytes"]

ALL = "(all)"
#: clip_table columns shown in the clip's description as they are, not as labels
_NOT_DESCRIBED = ("path", "clip_id", "source_index", "source_part")


def wav_bytes(wave: np.ndarray, sample_rate: int) -> bytes:
    """16-bit PCM WAV of a mono float signal, peak-normalised when it would clip."""
    peak = float(np.max(np.abs(wave))) if wave.size else 0.0
    buffer = io.BytesIO()
    sf.write(buffer, wave / peak if peak > 1 else wave, sample_rate, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


def _text(value) -> str:
    """A label as filter text; missing labels are empty."""
    return "" if pd.isna(value) else str(value)


class ClipBrowser(View):
    """Browse the clips behind some features: filter, listen, and look at one layer over time.

    Parameters
    ----------
    feats : Features
        Pooled or frame-level features of the clips (from :func:`m2v_lab.extract`); the clips'
        rows come from ``feats.clip_table`` (audio from its ``path``, filters from its labels).
    clips : DataFrame, optional
        The frame passed to ``extract``, for label columns added to it since; default
        ``feats.clip_table``.
    model : LoadedModel, optional
        The model that made ``feats``.  When ``feats`` is pooled and no ``frames`` are given, the
        selected clip's frames are extracted with it on demand, as ``extract(model, row,
        like=feats, pool=None)`` (the settings ``feats`` were made with).
    frames : Features, optional
        Frame-level features (``pool=None``) of the same clips, used instead of extracting.
    cache_dir : path, bool or None
        Passed to :func:`m2v_lab.extract` for on-demand extraction.
    layer : int or str
        Initial layer (position among the held layers, or name).
    max_levels : int
        Label columns with more distinct values than this get no filter.
    filters : sequence of str, optional
        The filters shown at first; default ``subset`` and the label columns that split the clips
        most evenly (up to ``max_filters`` in all, none with more than 16 values, none that only
        renames another).  The others sit behind the "more filters" toggle; a filter in use is
        always shown.
    max_filters : int
        How many filters are shown at first when ``filters`` is not given.

    Raises
    ------
    FeaturesError
        ``model`` did not make ``feats``; ``frames`` are pooled or hold other layers; ``clips`` do
        not hold the clips.
    OptionError
        ``layer`` is not a layer of ``feats``; ``filters`` names a column that has no filter.

    Attributes
    ----------
    rows : DataFrame
        One row per clip of ``feats``, in feature order.
    filters : dict of str to ipywidgets.Dropdown
        One per label column with 2 to ``max_levels`` distinct values, shown or not; value
        ``"(all)"`` or a label (as text).
    more_filters : ipywidgets.ToggleButton
        Shows the filters that are not shown at first.
    shown_filters : list of str
        The filters on screen.
    left_out : dict of str to str
        Label columns that got no filter, and why (``"one value"`` …).
    notice : ipywidgets.HTML
        Under the filters: ``left_out``, or what to do when no column can be a filter.
    clip_select : ipywidgets.Select
        The clips passing the filters; its value is the selected clip id.
    layer : LayerPicker
        A vertical slider, beside the layer's panel (the bottom of the figure).
    player : ipywidgets.Audio
        The selected clip as WAV at the model's rate, never autoplayed or looped.
    visible_clips : list of str
    selected_clip : str or None
    wave : ndarray, shape (samples,)
        The selected clip's audio as the model hears it (before normalisation).
    clip_frames : ndarray, shape (layers, frames, dim), or None
        The selected clip's frame features (None without a way to get them).
    frame_times : ndarray, shape (frames,)
    """

    def __init__(self, feats, clips=None, *, model=None, frames=None, cache_dir=None, layer=-1, max_levels: int = 40,
                 filters=None, max_filters: int = 4):
        self.feats, self.model, self.frame_feats, self.cache_dir = feats, model, frames, cache_dir
        self.rows = aligned_rows(feats, clips)
        self.sample_rate = int(feats.meta["sample_rate"])
        if model is not None and model.fingerprint != feats.meta.get("fingerprint"):
            raise FeaturesError(f"model={model.name!r} is not the model these features came from "
                                f"({feats.meta.get('model')!r}, another fingerprint): pass the model given to extract.")
        if frames is not None and frames.pooling is not None:
            raise FeaturesError("frames= must be frame-level features (extract with pool=None).")
        if frames is not None and frames.layer_names != feats.layer_names:
            # the layer picked is a position in feats: it must be the same layer in frames
            raise FeaturesError(f"frames= hold layers {list(frames.layer_names)}, feats {list(feats.layer_names)}: "
                                "extract both with the same layers=.")
        report = label_report(self.rows, max_levels=max_levels)
        self.left_out = {column: why for column, why in report.items() if why is not None}
        self._texts = {c: self.rows[c].map(_text) for c, why in report.items() if why is None}
        self._frame_cache: OrderedDict[str, tuple] = OrderedDict()
        self._relisting = False
        self.visible_clips: list[str] = []
        self.selected_clip: str | None = None
        self.wave = np.zeros(0, np.float32)
        self.clip_frames: np.ndarray | None = None
        self.frame_times = np.zeros(0)

        self.filters = {}
        for column, texts in self._texts.items():
            levels = sorted({t for t in texts if t}, key=_level_key)
            # the name in full, then room for a value: filters are as wide as their names need
            name = 8 + 7 * len(column)
            self.filters[column] = widgets.Dropdown(options=[ALL, *levels], value=ALL, description=column,
                                                    layout=widgets.Layout(width=f"{name + 130}px"),
                                                    style={"description_width": f"{name}px"})
        if filters is None:
            self._first_filters = _informative(self.rows, list(self._texts), max_filters)
        else:
            unknown = [c for c in filters if c not in self.filters]
            if isinstance(filters, str) or unknown:
                raise OptionError(f"filters={filters!r}: give a list of columns among the filters "
                                  f"{list(self.filters)}.")
            self._first_filters = list(dict.fromkeys(filters))
        extra = len(self.filters) - len(self._first_filters)
        self.more_filters = widgets.ToggleButton(value=False, description=f"more filters ({extra})", icon="filter",
                                                 layout=widgets.Layout(width="180px",
                                                                       display=None if extra else "none"))
        self.more_filters.add_class("m2v-clip-more")
        self._filter_grid = widgets.HBox(layout=widgets.Layout(flex_flow="row wrap", flex="0 1 auto"))
        self._filter_grid.add_class("m2v-clip-filters")
        self.notice = widgets.HTML(_notice(self._texts, self.left_out))
        self.notice.add_class("m2v-clip-notice")
        self.count = widgets.Label()
        self.clip_select = widgets.Select(options=[], rows=12, layout=widgets.Layout(width="260px"))
        self.clip_select.add_class("m2v-clip-select")
        self.layer = LayerPicker(feats, mode="single", value=layer, description="layer", orientation="vertical")
        self.layer.add_class("m2v-clip-layer")
        if feats.pooling is not None and frames is None and model is None:
            self.layer.layout.display = "none"  # no frames to show: the figure says how to get them
        self.player = widgets.Audio(format="wav", autoplay=False, loop=False, controls=True,
                                    layout=widgets.Layout(width="260px"))
        self.info = widgets.HTML(layout=widgets.Layout(width="260px"))
        self.info.add_class("m2v-clip-info")
        # at most the figure's width; narrower screens shrink the image rather than hide the slider
        self.plot = widgets.Output(layout=widgets.Layout(max_width=f"{_FIGURE_PX}px", flex="1 1 auto", min_width="0"))
        self.plot.add_class("m2v-clip-plot")

        side = widgets.VBox([self.count, self.clip_select, self.player, self.info],
                            layout=widgets.Layout(width="266px", margin="0 8px 0 0", flex="0 0 auto"))
        # the layer's slider stands beside the layer's panel, the bottom of the figure
        figure = widgets.HBox([self.plot, self.layer], layout=widgets.Layout(align_items="flex-end", flex="1 1 auto",
                                                                              min_width="0"))
        super().__init__([widgets.HBox([self._filter_grid, self.more_filters], layout=widgets.Layout(
                             align_items="flex-start")), self.notice,
                          widgets.HBox([side, figure], layout=widgets.Layout(align_items="flex-start"))],
                         css_class="m2v-clip-browser")
        self.layout.max_width = "1100px"
        self._lay_out_filters()

        for control in self.filters.values():
            self.watch(control, "filtering clips", self._on_filter)
        self.watch(self.more_filters, "showing the filters", self._lay_out_filters)
        self.watch(self.clip_select, "loading the clip", self._on_select)
        self.watch(self.layer, "drawing the layer", self._draw, names="positions")
        with self.reporting("showing the first clip"):
            self._refilter()

    def __repr__(self) -> str:
        return (f"ClipBrowser({len(self.visible_clips)} of {len(self.rows)} clips shown, selected "
                f"{self.selected_clip!r}, layer {self.selected_layer!r})")

    # -- state ---------------------------------------------------------------------
    @property
    def shown_filters(self) -> list[str]:
        return [control.description for control in self._filter_grid.children]

    def _lay_out_filters(self):
        """The first filters, any filter in use, and the rest when "more filters" is down."""
        shown = [c for c in self.filters if c in self._first_filters or self.more_filters.value
                 or self.filters[c].value != ALL]
        order = [c for c in self._first_filters if c in shown] + [c for c in shown if c not in self._first_filters]
        children = tuple(self.filters[c] for c in order)
        if self._filter_grid.children != children:
            self._filter_grid.children = children

    @property
    def selected_layer(self) -> str:
        return self.layer.selected_layers[0]

    def select(self, clip_id: str):
        """Select a clip by id, clearing the filters when they hide it."""
        if clip_id not in self.feats.clips:
            raise FeaturesError(f"no clip {clip_id!r} in these features.")
        if clip_id not in self.visible_clips:
            self._relisting = True  # one refilter for all the cleared filters, not one each
            try:
                for control in self.filters.values():
                    control.value = ALL
            finally:
                self._relisting = False
            self._refilter(target=clip_id)
        self.clip_select.value = clip_id

    def _on_filter(self):
        self._lay_out_filters()
        self._refilter()

    def _refilter(self, target: str | None = None):
        if self._relisting:
            return
        keep = np.ones(len(self.rows), dtype=bool)
        for column, control in self.filters.items():
            if control.value != ALL:
                keep &= (self._texts[column] == control.value).to_numpy()
        self.visible_clips = [self.feats.clips[k] for k in np.flatnonzero(keep)]
        self.count.value = f"{len(self.visible_clips)} of {len(self.rows)} clips"
        keep_selected = [c for c in (target, self.selected_clip) if c in self.visible_clips]
        # New options reset the value on the way: load only the clip finally selected.
        self._relisting = True
        try:
            self.clip_select.options = self.visible_clips
            self.clip_select.value = keep_selected[0] if keep_selected else (
                self.visible_clips[0] if self.visible_clips else None)
        finally:
            self._relisting = False
        if self.clip_select.value != self.selected_clip:
            self._load_clip()

    def _on_select(self):
        if not self._relisting:
            self._load_clip()

    def _load_clip(self):
        clip_id = self.clip_select.value
        self.selected_clip = clip_id
        if clip_id is None:
            self.wave, self.clip_frames, self.frame_times = np.zeros(0, np.float32), None, np.zeros(0)
            self.player.value = b""
            self.info.value = "<i>no clip matches these filters</i>"
            self.plot.outputs = ()
            return
        k = self.feats.position(clip_id)
        row = self.rows.iloc[[k]]
        if self._extracting(clip_id):  # the model runs: no figure of the previous clip meanwhile
            self.show_message(self.plot, f"extracting the frames of {clip_id} with {self.model.name}…", busy=True)
        self.wave = audio.load(row, sample_rate=self.sample_rate)
        self.player.value = wav_bytes(self.wave, self.sample_rate)
        self.clip_frames, self.frame_times = self._frames_of(clip_id, k)
        labels = " · ".join(f"<b>{html.escape(c)}</b> {html.escape(_text(row.iloc[0][c]))}"
                            for c in self.rows.columns if c not in _NOT_DESCRIBED and _text(row.iloc[0][c]))
        self.info.value = (f"<div style='font-size:12px;line-height:1.45'><b>{html.escape(clip_id)}</b> · "
                           f"{self.wave.size / self.sample_rate:.2f} s<br>{labels}</div>")
        self._draw()

    def _extracting(self, clip_id: str) -> bool:
        """Whether showing this clip runs the model (pooled features, no frames given, not extracted yet)."""
        return (self.feats.pooling is not None and self.frame_feats is None and self.model is not None
                and clip_id not in self._frame_cache)

    def _frames_of(self, clip_id: str, k: int):
        """(layers, frames, dim) and frame times of a clip, from the features, ``frames=`` or the model."""
        if self.feats.pooling is None:
            return self.feats.frames(k), self.feats.frame_times(k)
        if self.frame_feats is not None:
            return self.frame_feats.frames(clip_id), self.frame_feats.frame_times(clip_id)
        if self.model is None:
            return None, np.zeros(0)
        if clip_id not in self._frame_cache:
            one = extract(self.model, self.rows.iloc[[k]], like=self.feats, pool=None, cache_dir=self.cache_dir,
                          on_error="raise", progress=False)
            self._frame_cache[clip_id] = (one.frames(0), one.frame_times(0))
            while len(self._frame_cache) > 8:
                self._frame_cache.popitem(last=False)
        return self._frame_cache[clip_id]

    # -- drawing ---------------------------------------------------------------------
    def _draw(self):
        if self.selected_clip is None:
            return
        position = self.layer.selected_positions[0]
        rows = 3 if self.clip_frames is not None else 2
        fig = new_figure(_FIGURE_PX / 96, 1.4 + 1.8 * (rows - 1))
        axes = fig.subplots(rows, 1, sharex=True, height_ratios=[0.6] + [1] * (rows - 1))
        waveform(self.wave, self.sample_rate, ax=axes[0], title=f"{self.selected_clip}")
        spectrogram(self.wave, self.sample_rate, ax=axes[1])
        if self.clip_frames is not None:
            untrained = "" if self.feats.meta.get("trained", True) else " (untrained)"
            frame_image(self.clip_frames[position], self.frame_times, ax=axes[2], colorbar=False,
                        title=f"{self.feats.meta.get('model')}{untrained} · {layer_label(self.selected_layer)}")
        else:
            axes[1].set_title("frame features: pass model= or frame-level features to see a layer", fontsize=9)
        for ax in axes[:-1]:
            ax.set_xlabel("")
        self.show_figure(self.plot, fig, name="clip")


def _notice(filtered: dict, left_out: dict) -> str:
    """Which label columns got no filter and why; with no filter at all, what would give one."""
    reasons = ", ".join(f"{column} ({why})" for column, why in left_out.items())
    if filtered:
        return f"<small>no filter for {html.escape(reasons)}</small>" if reasons else ""
    found = f"label columns: {reasons}" if reasons else "feats.clip_table has no label columns"
    return (f"<i>no filters ({html.escape(found)}): a filter needs a label column with two or more values; "
            "extract from a DataFrame with label columns, or add one to feats.clip_table.</i>")


#: Width of the clip's figure in pixels (at the 96 dpi it is drawn with).
_FIGURE_PX = 700
#: A filter is shown at first only when it has at most this many values (a long list is no quick filter).
_QUICK_LEVELS = 16


def _informative(rows: pd.DataFrame, columns: list[str], limit: int) -> list[str]:
    """``subset``, then the columns that split the clips most evenly (coverage × entropy of their values),
    up to ``limit``, leaving out columns with many values and columns that rename one already chosen."""
    chosen = ["subset"] if "subset" in columns and limit > 0 else []
    scores = {}
    for column in columns:
        values = rows[column].dropna()
        levels = values.nunique()
        if column in chosen or levels > _QUICK_LEVELS or values.empty:
            continue
        share = values.value_counts(normalize=True).to_numpy()
        scores[column] = len(values) / len(rows) * float(-(share * np.log2(share)).sum())
    for column in sorted(scores, key=lambda c: -scores[c]):
        if len(chosen) >= limit:
            break
        if not any(_same_split(rows, column, other) for other in chosen):
            chosen.append(column)
    return chosen


def _same_split(rows: pd.DataFrame, a: str, b: str) -> bool:
    """Whether two columns split the clips the same way (one renames the other: instrument, gm_program)."""
    both = rows[[a, b]].dropna()
    if len(both) != rows[a].notna().sum() or len(both) != rows[b].notna().sum():
        return False
    return bool(both.groupby(a)[b].nunique().max() == 1 and both.groupby(b)[a].nunique().max() == 1)


def _level_key(text: str):
    """Numbers in numeric order, then text."""
    try:
        return (0, float(text), "")
    except ValueError:
        return (1, 0.0, text)
