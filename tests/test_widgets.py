"""Widgets driven as a user would, by setting control values, without a browser.

Features are synthetic (random numbers for real teaching-set clips, whose rows they carry as
``clip_table``) so that every test is fast; one test extracts frames with the tiny model, as
ClipBrowser does on demand.
"""

import base64
import html
import importlib.util

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

import m2v_lab as m2v
from m2v_lab.probing import ProbeResult
from m2v_lab.errors import AnalysisError, FeaturesError, OptionError
from m2v_lab.features import Features
from m2v_lab.plot import cell_colours
from m2v_lab.probing import probe_layers
from m2v_lab.projection import project
from m2v_lab.similarity import layer_similarity
from m2v_lab.widgets import ClipBrowser, LayerPicker, ProbeExplorer, SimilarityExplorer, explore
from m2v_lab.widgets._rows import probe_tasks
from m2v_lab.widgets.probing import INSTRUCTION
from m2v_lab.widgets.similarity import MAX_CELLS, widget_backend

LAYERS, DIM, RATE, N_FRAMES = 13, 12, 16000, 149
NAMES = ["pre_transformer"] + [f"block_{i}" for i in range(1, LAYERS)]


@pytest.fixture(scope="module")
def clips():
    """12 notes and 12 chords of the teaching set (3 s each)."""
    frame = m2v.datasets.teaching_set(["notes", "chords"])
    return frame.groupby("subset").head(12).reset_index(drop=True)


def _meta(**changes):
    return {**dict(model="synthetic", fingerprint="synthetic-fp", trained=False, sample_rate=RATE, hidden_size=DIM,
                   pool="mean", frame_stride=320, receptive_field=400), **changes}


@pytest.fixture(scope="module")
def feats(clips):
    rng = np.random.default_rng(0)
    pooled = rng.standard_normal((LAYERS, len(clips), DIM)).astype(np.float32)
    pooled[3:, :, 0] += 3 * (clips["subset"] == "chords").to_numpy()  # from block_3 on, layers know the subset
    return Features(layer_names=NAMES, layer_indices=range(LAYERS), clips=list(clips.clip_id),
                    source_index=range(len(clips)), meta=_meta(), pooled=pooled, clip_table=clips)


@pytest.fixture(scope="module")
def frames(clips):
    rng = np.random.default_rng(1)
    return Features(layer_names=NAMES, layer_indices=range(LAYERS), clips=list(clips.clip_id),
                    source_index=range(len(clips)), meta=_meta(pool=None),
                    frames=[rng.standard_normal((LAYERS, N_FRAMES, DIM)).astype(np.float32) for _ in range(len(clips))],
                    windows=[np.array([[0, 48000, N_FRAMES]])] * len(clips), clip_table=clips)


@pytest.fixture(scope="module")
def probe_clips():
    """Two notes of each of the 32 instruments (8 families × 4) and every chord of five roots."""
    frame = m2v.datasets.teaching_set(["notes", "chords"])
    notes = frame[frame.subset == "notes"].groupby("instrument").head(2)
    chords = frame[(frame.subset == "chords") & frame.chord_root.isin(["C", "D", "E", "F", "G"])]
    return pd.concat([notes, chords]).reset_index(drop=True)


@pytest.fixture(scope="module")
def probe_feats(probe_clips):
    """From block_3 on, layers know the instrument family (as a shift of one dimension per family)."""
    rng = np.random.default_rng(2)
    pooled = rng.standard_normal((LAYERS, len(probe_clips), DIM)).astype(np.float32)
    family = pd.factorize(probe_clips["instrument_family"])[0]
    pooled[3:, np.arange(len(probe_clips)), family] += 3.0
    return Features(layer_names=NAMES, layer_indices=range(LAYERS), clips=list(probe_clips.clip_id),
                    source_index=range(len(probe_clips)), meta=_meta(), pooled=pooled, clip_table=probe_clips)


def png(output):
    """The PNG bytes an Output shows (exactly one display of one image)."""
    assert len(output.outputs) == 1
    return base64.b64decode(output.outputs[0]["data"]["image/png"])


def titles(fig):
    return [ax.get_title() for ax in fig.axes]


def error_shown(view):
    return view.error_box.layout.display != "none" and view.error_box.value != ""


def message(output):
    """The one line of text an Output shows instead of a figure (None when it shows something else)."""
    if len(output.outputs) != 1 or "image/png" in output.outputs[0]["data"]:
        return None
    return output.outputs[0]["data"]["text/plain"]


def px(text):
    return int(text.removesuffix("px"))


# --- LayerPicker ---------------------------------------------------------------------------------

def test_layer_picker_labels_layers_as_the_figures_do_and_follows_the_slider(feats):
    picker = LayerPicker(feats)
    assert picker.selected_layers == ("block_12",) and picker.readout.value == "block 12"
    assert picker.control.continuous_update is False
    seen = []
    picker.observe(lambda change: seen.append(change["new"]), names="positions")
    picker.control.value = 0
    assert picker.selected_layers == ("pre_transformer",) and picker.readout.value == "pre-transformer"
    assert seen == [(0,)]
    picker.value = "block_4"
    assert picker.selected_positions == (4,) and picker.control.value == 4


def test_layer_picker_ranges_sets_and_held_subsets(feats):
    ranged = LayerPicker(feats, mode="range")
    assert ranged.selected_positions == tuple(range(LAYERS)) and ranged.control.continuous_update is False
    ranged.control.value = (2, 5)
    assert ranged.selected_layers == ("block_2", "block_3", "block_4", "block_5")
    assert ranged.readout.value == "block 2 … block 5 (4 layers)"
    some = LayerPicker(feats.select(layers=[0, 6, 12]), mode="multiple")
    assert [label for label, _ in some.control.options] == ["pre-transformer", "block 6", "block 12"]
    some.control.value = (1, 2)
    assert some.selected_indices == (6, 12) and some.selected_layers == ("block_6", "block_12")


@pytest.mark.parametrize("value, positions", [(-1, (2,)), (np.int64(1), (1,)), ("block_12", (2,)),
                                              ([-1, "pre_transformer"], (0, 2))])
def test_layer_picker_values_are_positions_among_the_held_layers_resolved_as_everywhere(feats, value, positions):
    some = feats.select(layers=[0, 6, 12])
    assert LayerPicker(some, mode="multiple", value=value).selected_positions == positions


@pytest.mark.parametrize("options, match", [({"value": "block_99"}, "value: no layer 'block_99'"),
                                            ({"value": 3}, r"value: index 3 is out of range; there are 3 states"),
                                            ({"value": True}, "neither a layer index nor a layer name"),
                                            ({"value": []}, "the selection is empty"),
                                            ({"mode": "slider"}, "mode='slider': use one of")])
def test_layer_picker_rejects_bad_options_with_option_errors(feats, options, match):
    with pytest.raises(OptionError, match=match):
        LayerPicker(feats.select(layers=[0, 6, 12]), **options)


def test_layer_picker_stands_upright_for_a_panel_beside_it(feats):
    picker = LayerPicker(feats, orientation="vertical", value="block_6")
    assert picker.control.orientation == "vertical" and picker.layout.flex_flow == "column"
    assert picker.readout.value == "block 6"
    picker.control.value = 5
    assert picker.selected_layers == ("block_5",)
    with pytest.raises(OptionError, match="orientation='vertical'.*sliders only"):
        LayerPicker(feats, mode="multiple", orientation="vertical")


# --- ClipBrowser -----------------------------------------------------------------------------------

def test_clip_browser_shows_the_first_clip_with_audio_and_the_chosen_layer(feats, frames, clips):
    browser = ClipBrowser(feats, clips, frames=frames)
    first = clips.clip_id[0]
    assert browser.selected_clip == first and browser.last_error is None
    assert browser.player.value[:4] == b"RIFF" and browser.player.format == "wav"
    assert browser.player.autoplay is False and browser.player.loop is False
    assert browser.wave.shape == (3 * RATE,)
    assert first in browser.info.value and "instrument" in browser.info.value
    assert "source_index" not in browser.info.value  # where the row came from is not a label
    np.testing.assert_array_equal(browser.clip_frames, frames.frames(first))
    before = png(browser.plot)
    assert titles(browser.figures["clip"]) == [first, "", "synthetic (untrained) · block 12"]

    browser.layer.control.value = 3
    assert browser.selected_layer == "block_3" and browser.renders["clip"] == 2
    assert titles(browser.figures["clip"])[2].endswith("· block 3")
    assert png(browser.plot) != before


def test_clip_browser_reads_the_clips_rows_from_the_features(feats, frames, clips):
    browser = ClipBrowser(feats, frames=frames)
    assert browser.rows["clip_id"].tolist() == clips["clip_id"].tolist()
    assert browser.wave.shape == (3 * RATE,) and browser.last_error is None  # audio from clip_table's paths
    given = ClipBrowser(feats, clips, frames=frames)
    assert list(browser.filters) == list(given.filters) and "source_index" not in browser.filters


def test_clip_browser_offers_only_labels_with_two_or_more_values_and_says_why_not(feats, frames, clips):
    odd = clips.assign(velocity=100, mood=np.nan, take=range(len(clips)))
    browser = ClipBrowser(feats, odd, frames=frames, max_levels=20)
    assert "subset" in browser.filters and not {"velocity", "mood", "take"} & set(browser.filters)
    assert browser.left_out == {"chord_quality": "one value",  # these 12 chords are all major
                                "velocity": "one value", "mood": "no values", "take": "24 values, over 20"}
    assert "no filter for" in browser.notice.value and "velocity (one value)" in browser.notice.value

    bare = Features(layer_names=NAMES, layer_indices=range(LAYERS), clips=list(clips.clip_id),
                    source_index=range(len(clips)), meta=_meta(), pooled=feats.pooled,
                    clip_table=clips[["path", "clip_id", "group"]].assign(velocity=100))
    browser = ClipBrowser(bare, frames=frames)
    assert browser.filters == {} and browser.last_error is None
    assert "no filters (label columns: velocity (one value))" in browser.notice.value


def test_clip_browser_filters_by_labels_and_selects(feats, frames, clips):
    browser = ClipBrowser(feats, clips, frames=frames)
    assert set(browser.filters) >= {"subset", "instrument", "midi_pitch"}
    browser.filters["subset"].value = "chords"
    chords = list(clips.clip_id[clips.subset == "chords"])
    assert browser.visible_clips == chords and browser.clip_select.options == tuple(chords)
    assert browser.selected_clip == chords[0] and browser.count.value == f"12 of {len(clips)} clips"
    assert titles(browser.figures["clip"])[0] == chords[0]
    browser.clip_select.value = chords[3]
    assert browser.selected_clip == chords[3] and chords[3] in browser.info.value
    browser.clip_select.value = chords[0]  # a piano chord
    renders = browser.renders["clip"]
    browser.filters["instrument"].value = "Acoustic Grand Piano"  # the selection still matches: kept, not redrawn
    assert browser.selected_clip == chords[0] and browser.renders["clip"] == renders
    assert browser.visible_clips == [c for c in chords if "piano" in c]
    browser.filters["instrument"].value = "(all)"
    browser.filters["subset"].value = "notes"  # the chord is filtered out
    assert browser.selected_clip == browser.visible_clips[0] and browser.selected_clip.startswith("notes/")
    browser.filters["instrument"].value = "Drawbar Organ"  # no organ among these notes
    assert browser.visible_clips == [] and browser.selected_clip is None
    assert "no clip matches" in browser.info.value and browser.plot.outputs == ()
    renders = browser.renders["clip"]
    browser.select(chords[5])  # clears the filters hiding it, and loads only that clip
    assert browser.selected_clip == chords[5] and all(f.value == "(all)" for f in browser.filters.values())
    assert browser.renders["clip"] == renders + 1 and len(browser.visible_clips) == len(clips)


def _boxes(widget):
    """Every box inside ``widget`` (itself included)."""
    children = getattr(widget, "children", ())
    return [widget] * bool(children) + [box for child in children for box in _boxes(child)]


def test_clip_browser_shows_a_few_filters_and_the_rest_on_demand(feats, frames, clips):
    browser = ClipBrowser(feats, clips, frames=frames)
    shown = browser.shown_filters
    assert shown[0] == "subset" and 1 < len(shown) <= 4 and set(shown) < set(browser.filters)
    assert "gm_program" not in shown  # it only renames the instrument
    assert browser.more_filters.description == f"more filters ({len(browser.filters) - len(shown)})"
    browser.more_filters.value = True
    assert browser.shown_filters[:len(shown)] == shown and set(browser.shown_filters) == set(browser.filters)
    browser.more_filters.value = False
    assert browser.shown_filters == shown
    hidden = next(c for c in browser.filters if c not in shown)
    browser.filters[hidden].value = browser.filters[hidden].options[1]  # set from code, as notebook 04 does
    assert browser.shown_filters == [*shown, hidden]  # a filter in use is always on screen
    browser.filters[hidden].value = "(all)"
    assert browser.shown_filters == shown

    chosen = ClipBrowser(feats, clips, frames=frames, filters=["instrument", "subset"])
    assert chosen.shown_filters == ["instrument", "subset"]
    assert ClipBrowser(feats, clips, frames=frames, max_filters=2).shown_filters == shown[:2]
    with pytest.raises(OptionError, match=r"filters=\['tempo'\]: give a list of columns among the filters"):
        ClipBrowser(feats, clips, frames=frames, filters=["tempo"])


def test_clip_browser_fits_a_laptop_screen_with_the_layer_slider_beside_its_panel(feats, frames, clips):
    browser = ClipBrowser(feats, clips, frames=frames)
    assert browser.layer.control.orientation == "vertical"
    beside = [box for box in _boxes(browser) if browser.plot in box.children]
    assert len(beside) == 1 and list(beside[0].children) == [browser.plot, browser.layer]
    image = png(browser.plot)
    assert int.from_bytes(image[16:20], "big") <= px(browser.plot.layout.max_width)  # the figure fits its area
    side = next(box for box in _boxes(browser) if browser.clip_select in box.children)
    widest = px(side.layout.width) + px(side.layout.margin.split()[1]) + px(browser.plot.layout.max_width) + px(
        browser.layer.layout.width)
    filters = sum(px(browser.filters[c].layout.width) for c in browser.shown_filters) + px(
        browser.more_filters.layout.width)
    assert max(widest, filters) <= px(browser.layout.max_width) <= 1100  # a 1280 px screen, less JupyterLab's margins
    assert browser.plot.layout.min_width == "0"  # on a narrower screen the figure shrinks, the slider stays


def test_clip_browser_refuses_frames_of_other_layers_than_the_features(feats, frames):
    # the picked position would name one layer in feats and draw another from frames
    with pytest.raises(FeaturesError, match="extract both with the same layers="):
        ClipBrowser(feats, frames=frames.select(layers=[0, 6, 12]))


def test_clip_browser_without_frames_shows_audio_and_says_how_to_get_features(feats, clips):
    browser = ClipBrowser(feats, clips)
    assert browser.clip_frames is None and len(browser.figures["clip"].axes) == 2
    assert "pass model=" in titles(browser.figures["clip"])[1]
    assert browser.layer.layout.display == "none"  # no frames to move through


def test_clip_browser_extracts_frames_on_demand_as_the_features_were_made(tiny, clips, monkeypatch):
    few = clips.iloc[[0, 12]].reset_index(drop=True)
    pooled = m2v.extract(tiny, few, window=2.0, normalize_scope="window", progress=False)  # not the defaults
    calls, shown, views = [], [], []

    def spy(model, rows, **options):
        calls.append(options)
        shown.append(message(views[0].plot) if views else None)
        return m2v.extract(model, rows, **options)

    monkeypatch.setattr("m2v_lab.widgets.clips.extract", spy)
    browser = ClipBrowser(pooled, model=tiny, layer="block_2")
    # the settings travel with the features (like=), not rebuilt from meta entries
    assert calls[0]["like"] is pooled and calls[0]["pool"] is None
    assert not {"window", "min_last", "do_normalize", "normalize_scope", "layers"} & set(calls[0])
    expected = m2v.extract(tiny, few.iloc[[0]], pool=None, window=2.0, normalize_scope="window", progress=False)
    np.testing.assert_array_equal(browser.clip_frames, expected.frames(0))
    np.testing.assert_allclose(browser.frame_times, expected.frame_times(0))
    np.testing.assert_allclose(browser.clip_frames.mean(axis=1), pooled.pooled[:, 0], atol=1e-5)
    views.append(browser)
    browser.clip_select.value = few.clip_id[1]
    # while the model runs, the previous clip's figure is not left beside the new clip's name
    assert shown[1] == f"extracting the frames of {few.clip_id[1]} with {tiny.name}…"
    assert titles(browser.figures["clip"])[0] == few.clip_id[1] and message(browser.plot) is None
    browser.clip_select.value = few.clip_id[0]
    assert len(calls) == 2 and list(browser._frame_cache) == list(few.clip_id)  # each clip extracted once
    other = m2v.random_twin(tiny)
    with pytest.raises(FeaturesError, match="not the model these features came from"):
        ClipBrowser(pooled, few, model=other)


def test_errors_in_callbacks_are_shown_and_kept_not_swallowed(feats, frames, clips, monkeypatch):
    browser = ClipBrowser(feats, clips, frames=frames)
    assert not error_shown(browser)

    def broken(*args, **kwargs):
        raise RuntimeError("cannot draw this layer")

    monkeypatch.setattr("m2v_lab.widgets.clips.frame_image", broken)
    browser.layer.control.value = 2
    assert isinstance(browser.last_error, RuntimeError) and error_shown(browser)
    assert "drawing the layer" in browser.error_box.value and "cannot draw this layer" in browser.error_box.value
    assert "Traceback" in browser.error_box.value
    # a failure inside a nested callback stays visible after the outer action ends
    browser.filters["subset"].value = "chords"
    assert isinstance(browser.last_error, RuntimeError) and error_shown(browser)
    monkeypatch.undo()
    browser.layer.control.value = 5
    assert browser.last_error is None and not error_shown(browser)


def test_widgets_leave_no_pyplot_figures_behind(probe_feats):
    before = plt.get_fignums()
    view = explore(probe_feats, label="instrument_family")
    view.clips.layer.control.value = 1
    view.similarity.layer_a.control.value = 2
    view.similarity.cells[4][5].click()
    view.probing.layers.control.value = (3, 5)
    view.probing.run()
    assert view.errors == {} and view.probing.result is not None
    assert plt.get_fignums() == before


# --- SimilarityExplorer ------------------------------------------------------------------------------

def colours_of(view):
    return [[cell.style.button_color for cell in row] for row in view.cells]


def picked(view):
    """The cells outlined as picked, as (row, column)."""
    return [(a, b) for a, row in enumerate(view.cells) for b, cell in enumerate(row) if cell.layout.border != "0px"]


def test_similarity_explorer_maps_layers_and_projects_the_picked_pair(feats, clips):
    view = SimilarityExplorer(feats, clips)
    np.testing.assert_allclose(view.result.values, layer_similarity(feats).values)
    assert view.pair == ("pre_transformer", "block_12") and view.label.value == "subset"
    assert titles(view.figures["projections"])[:2] == ["A: pre-transformer · PCA", "B: block 12 · PCA"]
    # the map is a grid of cells coloured as the figure colours them, row 0 at the bottom as there
    assert view.heatmap_mode == "cells" and [len(row) for row in view.cells] == [LAYERS] * LAYERS
    assert colours_of(view) == cell_colours(view.result.values).tolist()
    assert view._cell_grid.children[1] is view.cells[LAYERS - 1][0]
    assert view.cells[0][12].tooltip == f"A pre-transformer × B block 12: {view.result.values[0, 12]:.3f}"
    assert picked(view) == [(0, 12)]  # the picked cell, outlined
    assert view.caption.value.count(f"A pre_transformer × B block_12: {view.result.values[0, 12]:.3f}") == 1
    assert "CKA (linear, debiased)" in view.caption.value

    view.layer_a.control.value = 5
    assert view.pair == ("block_5", "block_12") and view.renders == {"heatmap": 2, "projections": 2}
    assert picked(view) == [(5, 12)]
    np.testing.assert_allclose(view.projections[0].coords, project(feats.pooled[5]).coords)

    view.label.value = "instrument"  # recolours only
    assert view.renders == {"heatmap": 2, "projections": 3}
    legend = view.figures["projections"].axes[1].get_legend()
    assert legend.get_title().get_text() == "instrument"

    view.pick_cell("block_3", 7)  # both layers at once: drawn once
    assert view.pair == ("block_3", "block_7") and view.renders == {"heatmap": 3, "projections": 4}
    view.method.value = "tsne"
    assert [p.method for p in view.projections] == ["tsne", "tsne"]
    view.measure.value = "rsa"
    assert view.result.measure == "rsa" and "<br>RSA (spearman)" in view.caption.value
    assert colours_of(view) == cell_colours(view.result.values).tolist()
    assert view.last_error is None


def test_clicking_a_cell_picks_its_two_layers(feats, clips):
    view = SimilarityExplorer(feats, clips)
    before = dict(view.renders)
    view.cells[3][7].click()
    assert view.pair == ("block_3", "block_7") and picked(view) == [(3, 7)]
    assert view.renders == {"heatmap": before["heatmap"] + 1, "projections": before["projections"] + 1}
    np.testing.assert_allclose(view.projections[1].coords, project(feats.pooled[7]).coords)
    view.cells[3][7].click()  # the cell already shown: nothing to redraw
    assert view.renders["projections"] == before["projections"] + 1
    view.cells[0][0].click()
    assert view.pair == ("pre_transformer", "pre_transformer") and view.last_error is None
    # one short line says how the map is used, as it is not a clickable figure
    assert "Click a cell to pick layer A (its row) and B (its column)" in view.banner.value
    assert view.banner.layout.display is None and "<br" not in view.banner.value and len(view.banner.value) < 200


def test_a_recomputed_map_or_projection_never_shows_the_stale_one(feats, clips, monkeypatch):
    view = SimilarityExplorer(feats, clips)
    seen = []

    def spy_map(*args, **kwargs):
        seen.append((view._cell_grid.layout.display, message(view.heatmap), view.caption.value))
        return layer_similarity(*args, **kwargs)

    def spy_projection(*args, **kwargs):
        seen.append(message(view.scatter))
        return project(*args, **kwargs)

    monkeypatch.setattr("m2v_lab.widgets.similarity.layer_similarity", spy_map)
    monkeypatch.setattr("m2v_lab.widgets.similarity.project", spy_projection)
    view.measure.value = "rsa"
    assert seen == [("none", f"computing RSA between {LAYERS} layers…", "")]
    assert view._cell_grid.layout.display is None and view.heatmap.outputs == () and "RSA" in view.caption.value
    view.method.value = "tsne"
    assert seen[1:] == ["projecting 2 layer(s) with TSNE…"] * 2
    assert message(view.scatter) is None and titles(view.figures["projections"])[0].endswith("t-SNE")


def test_big_maps_fall_back_to_a_static_image_and_say_so_in_one_line():
    n = MAX_CELLS + 2
    data = np.random.default_rng(3).standard_normal((n, 12, 4)).astype(np.float32)
    big = Features(layer_names=["pre_transformer"] + [f"block_{i}" for i in range(1, n)], layer_indices=range(n),
                   clips=[f"c{i}" for i in range(12)], source_index=range(12), meta={"hidden_size": 4, "pool": "mean"},
                   pooled=data)
    view = SimilarityExplorer(big)
    assert view.heatmap_mode == "image" and view.cells is None and len(png(view.heatmap)) > 0
    heat = view.figures["heatmap"].axes[0]
    assert [(p.get_x(), p.get_y()) for p in heat.patches] == [(n - 1 - 0.5, -0.5)]
    assert heat.get_title().endswith(f"A pre_transformer × B block_{n - 1}: {view.result.values[0, n - 1]:.3f}")
    assert "too many cells to click; pick layers A and B with the sliders" in view.banner.value
    view.layer_a.control.value = 4
    assert [(p.get_x(), p.get_y()) for p in view.figures["heatmap"].axes[0].patches] == [(n - 1 - 0.5, 3.5)]
    assert SimilarityExplorer(big.select(layers=[0, 1, 2]), heatmap="image").cells is None
    with pytest.raises(OptionError, match=r"heatmap='svg'"):
        SimilarityExplorer(big, heatmap="svg")


def test_the_canvas_map_needs_ipympl_and_is_chosen_under_its_backend(feats, clips, monkeypatch):
    assert widget_backend() is False  # these tests run on Agg
    if importlib.util.find_spec("ipympl") is None:
        with pytest.raises(OptionError, match=r"heatmap='canvas' needs ipympl"):
            SimilarityExplorer(feats, clips, heatmap="canvas")
        return
    monkeypatch.setattr("m2v_lab.widgets.similarity.widget_backend", lambda: True)
    assert SimilarityExplorer(feats, clips).heatmap_mode == "canvas"


def test_with_ipympl_a_click_on_the_figure_picks_the_cell(feats, clips):
    pytest.importorskip("ipympl")
    from matplotlib.backend_bases import MouseEvent

    view = SimilarityExplorer(feats, clips, heatmap="canvas")
    assert view.cells is None and view.banner.layout.display == "none"
    view.canvas.draw()
    ax = view.figures["heatmap"].axes[0]
    x, y = ax.transData.transform((7, 3))
    view.canvas.callbacks.process("button_press_event", MouseEvent("button_press_event", view.canvas, x, y, 1))
    assert view.pair == ("block_3", "block_7") and view.last_error is None
    assert [(p.get_x(), p.get_y()) for p in view.figures["heatmap"].axes[0].patches] == [(6.5, 2.5)]


def test_similarity_explorer_checks_a_given_result(feats, clips):
    other = layer_similarity(feats.select(layers=[0, 1, 2]))
    with pytest.raises(FeaturesError, match="pass the result of layer_similarity"):
        SimilarityExplorer(feats, clips, result=other)
    given = layer_similarity(feats, measure="procrustes")
    assert SimilarityExplorer(feats, clips, result=given, measure="procrustes").result is given


# --- ProbeExplorer -----------------------------------------------------------------------------------

def notebook_04_clips():
    """The clips notebook 04 explores: 4 notes of each instrument (rotating pitches), every second chord."""
    teaching = m2v.datasets.teaching_set(["notes", "chords"])
    notes, chords = teaching[teaching.subset == "notes"], teaching[teaching.subset == "chords"]
    keep = (notes["midi_pitch"] + notes.groupby("instrument").ngroup()) % 3 == 0
    return pd.concat([notes[keep], chords.iloc[::2]]).reset_index(drop=True)


def test_notebook_04s_instrument_family_is_probed_over_the_notes_only():
    offered, left_out = probe_tasks(notebook_04_clips(), groups="group", cv=5)
    # chord instruments play every root (the chords' groups): mixed in, a fold would test instruments it trained on
    assert [task.text for task in offered["instrument_family"]] == ["notes · 128 clips · 32 groups (instrument)"]
    assert left_out["instrument_family over all clips or chords"].startswith("leaks: follows instrument, and ")
    assert [task.text for task in offered["chord_quality"]] == ["chords · 90 clips · 12 groups (chord_root)"]
    assert [task.scope for task in offered["instrument"]] == ["chords"]  # over the notes, one group per instrument
    assert left_out["chord_root"] == "'A' is in one group only" and "subset" in left_out
    assert {"pitch_class", "octave"} <= set(offered)


def test_probe_explorer_says_what_to_do_before_the_first_run(probe_feats):
    view = ProbeExplorer(probe_feats)
    assert view.result is None and view.button.disabled is False
    assert message(view.plot) == INSTRUCTION and INSTRUCTION.startswith("Choose a label and press Run probes")


def test_probe_explorer_offers_only_labels_a_grouped_probe_can_take_with_their_clips(probe_feats):
    view = ProbeExplorer(probe_feats, cv=5)
    assert {"instrument_family", "chord_quality", "octave"} <= set(view.tasks)
    assert not {"subset", "chord_root"} & set(view.tasks)
    assert list(view.label.options) == list(view.tasks)
    view.label.value = "instrument_family"
    assert view.scope.options == (("notes · 64 clips · 32 groups (instrument)", "notes"),) and view.scope.disabled
    view.label.value = "chord_quality"
    assert view.scope.options == (("chords · 75 clips · 5 groups (chord_root)", "chords"),)
    assert view.left_out["chord_root"] == "'C' is in one group only"
    note = html.unescape(view.note.value)
    assert note.startswith("<small>not offered: ") and "chord_root ('C' is in one group only)" in note
    assert "instrument_family over all clips or chords (leaks: follows instrument" in note

    with pytest.raises(FeaturesError, match=r"label='chord_root' cannot be probed with 5 folds over 'group': "
                                            r"'C' is in one group only; choose from \["):
        ProbeExplorer(probe_feats, label="chord_root")
    with pytest.raises(FeaturesError, match=r"scope='chords': 'instrument_family' can be probed over \['notes'\] "
                                            r"\(leaks: follows instrument"):
        ProbeExplorer(probe_feats, label="instrument_family", scope="chords")
    with pytest.raises(FeaturesError, match="label='no_such_column' cannot be probed .*not a label column of clips"):
        ProbeExplorer(probe_feats, label="no_such_column")
    with pytest.raises(OptionError, match=r"cv=11"):
        ProbeExplorer(probe_feats, cv=11)


def test_the_labels_offered_follow_the_number_of_folds(probe_feats):
    view = ProbeExplorer(probe_feats, label="chord_quality", cv=5)
    view.cv.value = 6  # the chords have 5 roots: too few groups for 6 folds
    assert "chord_quality" not in view.tasks and view.left_out["chord_quality"] == "5 groups, fewer than 6 folds"
    assert view.label.value == next(iter(view.tasks)) and "chord_quality" not in view.label.options
    assert "chord_quality (5 groups, fewer than 6 folds)" in html.unescape(view.note.value)
    view.cv.value = 5
    assert "chord_quality" in view.label.options and view.last_error is None


def test_probe_explorer_runs_the_chosen_layers_over_the_clips_of_its_task_and_keeps_a_table(
        probe_feats, probe_clips, monkeypatch):
    runs = []

    def spy(feats, y, **options):
        runs.append((list(feats.clips), list(y), list(options["groups"])))
        return probe_layers(feats, y, **options)

    monkeypatch.setattr("m2v_lab.widgets.probing.probe_layers", spy)
    view = ProbeExplorer(probe_feats, label="instrument_family", cv=3)
    view.layers.control.value = (2, 6)
    view.button.click()
    assert view.last_error is None and view.button.disabled is False
    notes = probe_clips[probe_clips.subset == "notes"]  # not the chords: their instruments span the roots
    assert runs == [(list(notes.clip_id), list(notes.instrument_family), list(notes.group))]
    assert view.result.layer_names == ("block_2", "block_3", "block_4", "block_5", "block_6")
    assert view.result.n_samples == 64 and "over 32 groups" in view.result.cv
    assert (view.progress.value, view.progress.max, view.progress.bar_style) == (5, 5, "success")
    assert "best layer" in view.status.value and len(png(view.plot)) > 0
    assert titles(view.figures["curve"]) == ["instrument_family over notes · synthetic (untrained)"]
    assert set(view.table["label"]) == {"instrument_family"} and set(view.table["scope"]) == {"notes"}
    assert set(view.table["layer_name"]) == set(view.result.layer_names)

    view.label.value = "chord_quality"  # only the chords carry it
    view.control_task.value = True
    view.run()
    assert view.last_error is None
    assert view.result.n_samples == 75 and "control" in view.result.sources
    assert list(view.table.drop_duplicates("label")["label"]) == ["instrument_family", "chord_quality"]
    assert repr(view) == f"ProbeExplorer(ridge probe for 'chord_quality' over chords, {len(view.table)} summary rows)"


def test_a_run_clears_the_previous_curve_while_it_runs(probe_feats, monkeypatch):
    view = ProbeExplorer(probe_feats, label="instrument_family", cv=3)
    view.layers.control.value = (3, 4)
    view.run()
    assert len(png(view.plot)) > 0
    seen = []

    def spy(*args, **kwargs):
        seen.append(message(view.plot))
        return probe_layers(*args, **kwargs)

    monkeypatch.setattr("m2v_lab.widgets.probing.probe_layers", spy)
    view.label.value = "octave"
    view.run()
    assert seen == ["Probing octave over notes: the curve appears when the 2 layers are done."]
    assert titles(view.figures["curve"]) == ["octave over notes · synthetic (untrained)"]
    assert message(view.plot) is None


def test_layer_by_layer_runs_merge_into_the_single_call_result(feats, clips):
    y, groups = clips["subset"], clips["group"].to_numpy()
    names = ["block_1", "block_4", "block_9"]
    parts = [probe_layers(feats.select(layers=[n]), y, groups=groups, cv=3, control_task=True) for n in names]
    merged = ProbeResult.concat(parts, layer_names=names)
    whole = probe_layers(feats.select(layers=names), y, groups=groups, cv=3, control_task=True)
    for attr in ("scores", "params"):
        a, b = getattr(merged, attr), getattr(whole, attr)
        keys = [c for c in a.columns if c != "value"]
        pd.testing.assert_frame_equal(a.sort_values(keys, ignore_index=True), b.sort_values(keys, ignore_index=True))
    pd.testing.assert_frame_equal(merged.summary(), whole.summary())
    assert merged.best_layer() == whole.best_layer() and merged.layer_names == whole.layer_names


def test_probe_errors_show_in_the_view_and_the_button_comes_back(probe_feats, monkeypatch):
    def broken(*args, **kwargs):
        raise AnalysisError("these folds cannot be filled")

    monkeypatch.setattr("m2v_lab.widgets.probing.probe_layers", broken)
    view = ProbeExplorer(probe_feats, label="octave", cv=3)
    view.run()
    assert isinstance(view.last_error, AnalysisError) and error_shown(view)
    assert view.progress.bar_style == "danger" and "failed" in view.status.value
    assert view.button.disabled is False and view.result is None
    assert message(view.plot).startswith("No curve: the run failed (see the error above). Choose a label")


def test_with_nothing_to_probe_the_tab_says_so_and_cannot_run(feats, clips):
    view = ProbeExplorer(feats, clips)  # 12 notes of one instrument and 12 chords of 4 roots: nothing for 5 folds
    assert view.tasks == {} and view.button.disabled and view.label.disabled and view.label.value is None
    assert message(view.plot).startswith("Nothing to probe: no label can be probed with 5 grouped folds")
    assert view.left_out["instrument_family"] == "'Guitar' has 3 clips, fewer than 5 folds"
    view.run()
    assert isinstance(view.last_error, FeaturesError) and "nothing to probe" in str(view.last_error)


# --- explore ---------------------------------------------------------------------------------------------

def test_explore_puts_the_three_views_in_tabs(feats, frames, clips):
    view = explore(feats, clips, frames=frames, label="instrument")
    assert view.titles == ("Clips", "Similarity", "Probing")
    assert view.children == (view.clips, view.similarity, view.probing)
    assert view.similarity.label.value == "instrument"
    assert view.probing.tasks == {} and "instrument" in view.probing.left_out  # says why, and does not fail
    assert view.errors == {} and view.clips.selected_clip == clips.clip_id[0]


def test_explore_probes_the_label_when_a_grouped_probe_can_take_it(probe_feats):
    view = explore(probe_feats, label="instrument_family")
    assert view.similarity.label.value == "instrument_family"
    assert (view.probing.label.value, view.probing.scope.value) == ("instrument_family", "notes")
    other = explore(probe_feats, label="chord_root")  # colours the projections; cannot be probed
    assert other.similarity.label.value == "chord_root" and other.probing.label.value == next(iter(other.probing.tasks))
    assert "chord_root ('C' is in one group only)" in html.unescape(other.probing.note.value)
    assert other.errors == {}


def test_frame_level_features_feed_every_view(frames, clips):
    view = explore(frames, clips)
    np.testing.assert_array_equal(view.clips.clip_frames, frames.frames(0))
    np.testing.assert_allclose(view.similarity.feats.pooled, frames.pool("mean").pooled)
    assert view.errors == {}


def test_explore_takes_the_clips_rows_from_the_features(feats, frames, clips):
    view = explore(feats, frames=frames, label="instrument")
    assert view.errors == {} and view.clips.selected_clip == clips.clip_id[0]
    assert "instrument" in view.clips.filters and view.similarity.label.value == "instrument"
    failed = feats.select(clips=list(range(1, len(clips))))  # as if the first clip had failed
    assert explore(failed, label="subset").clips.selected_clip == clips.clip_id[1]
