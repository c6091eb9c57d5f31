"""Widgets driven as a user would, by setting control values, without a browser.

Features are synthetic (random numbers for real teaching-set clips, whose rows they carry as
``clip_table``) so that every test is fast; one test extracts frames with the tiny model, as
ClipBrowser does on demand.
"""

import base64

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

import m2v_lab as m2v
from m2v_lab.probing import ProbeResult
from m2v_lab.errors import FeaturesError, OptionError
from m2v_lab.features import Features
from m2v_lab.probing import probe_layers
from m2v_lab.projection import project
from m2v_lab.similarity import layer_similarity
from m2v_lab.widgets import ClipBrowser, LayerPicker, ProbeExplorer, SimilarityExplorer, explore

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


def png(output):
    """The PNG bytes an Output shows (exactly one display of one image)."""
    assert len(output.outputs) == 1
    return base64.b64decode(output.outputs[0]["data"]["image/png"])


def titles(fig):
    return [ax.get_title() for ax in fig.axes]


def error_shown(view):
    return view.error_box.layout.display != "none" and view.error_box.value != ""


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


def test_clip_browser_refuses_frames_of_other_layers_than_the_features(feats, frames):
    # the picked position would name one layer in feats and draw another from frames
    with pytest.raises(FeaturesError, match="extract both with the same layers="):
        ClipBrowser(feats, frames=frames.select(layers=[0, 6, 12]))


def test_clip_browser_without_frames_shows_audio_and_says_how_to_get_features(feats, clips):
    browser = ClipBrowser(feats, clips)
    assert browser.clip_frames is None and len(browser.figures["clip"].axes) == 2
    assert "pass model=" in titles(browser.figures["clip"])[1]


def test_clip_browser_extracts_frames_on_demand_as_the_features_were_made(tiny, clips, monkeypatch):
    few = clips.iloc[[0, 12]].reset_index(drop=True)
    pooled = m2v.extract(tiny, few, window=2.0, normalize_scope="window", progress=False)  # not the defaults
    calls = []

    def spy(model, rows, **options):
        calls.append(options)
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
    browser.clip_select.value = few.clip_id[1]
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


def test_widgets_leave_no_pyplot_figures_behind(feats, frames, clips):
    before = plt.get_fignums()
    view = explore(feats, clips, frames=frames)
    view.clips.layer.control.value = 1
    view.similarity.layer_a.control.value = 2
    view.probing.run()
    assert plt.get_fignums() == before


# --- SimilarityExplorer ------------------------------------------------------------------------------

def test_similarity_explorer_maps_layers_and_projects_the_picked_pair(feats, clips):
    view = SimilarityExplorer(feats, clips)
    np.testing.assert_allclose(view.result.values, layer_similarity(feats).values)
    assert view.pair == ("pre_transformer", "block_12") and view.label.value == "subset"
    assert titles(view.figures["projections"])[:2] == ["A: pre-transformer · PCA", "B: block 12 · PCA"]
    heat = view.figures["heatmap"].axes[0]
    assert heat.get_title().endswith(f"A pre_transformer × B block_12: {view.result.values[0, 12]:.3f}")
    assert [(p.get_x(), p.get_y()) for p in heat.patches] == [(11.5, -0.5)]  # the picked cell, outlined

    view.layer_a.control.value = 5
    assert view.pair == ("block_5", "block_12") and view.renders == {"heatmap": 2, "projections": 2}
    assert [(p.get_x(), p.get_y()) for p in view.figures["heatmap"].axes[0].patches] == [(11.5, 4.5)]
    np.testing.assert_allclose(view.projections[0].coords, project(feats.pooled[5]).coords)

    view.label.value = "instrument"  # recolours only
    assert view.renders == {"heatmap": 2, "projections": 3}
    legend = view.figures["projections"].axes[1].get_legend()
    assert legend.get_title().get_text() == "instrument"

    view.pick_cell("block_3", 7)
    assert view.pair == ("block_3", "block_7")
    view.method.value = "tsne"
    assert [p.method for p in view.projections] == ["tsne", "tsne"]
    view.measure.value = "rsa"
    assert view.result.measure == "rsa" and view.figures["heatmap"].axes[0].get_title().startswith("RSA")
    assert view.last_error is None


def test_similarity_explorer_checks_a_given_result(feats, clips):
    other = layer_similarity(feats.select(layers=[0, 1, 2]))
    with pytest.raises(FeaturesError, match="pass the result of layer_similarity"):
        SimilarityExplorer(feats, clips, result=other)
    given = layer_similarity(feats, measure="procrustes")
    assert SimilarityExplorer(feats, clips, result=given, measure="procrustes").result is given


# --- ProbeExplorer -----------------------------------------------------------------------------------

def test_probe_explorer_runs_the_chosen_layers_and_keeps_a_table(feats, clips):
    clips = clips.assign(chord_instrument=clips["instrument"].where(clips["subset"] == "chords"))
    view = ProbeExplorer(feats, clips, label="subset", cv=3)
    assert view.result is None and view.plot.outputs == ()
    view.layers.control.value = (2, 6)
    view.button.click()
    assert view.last_error is None and view.button.disabled is False
    assert view.result.layer_names == ("block_2", "block_3", "block_4", "block_5", "block_6")
    assert (view.progress.value, view.progress.max, view.progress.bar_style) == (5, 5, "success")
    assert "best layer" in view.status.value and len(png(view.plot)) > 0
    assert titles(view.figures["curve"]) == ["subset · synthetic (untrained)"]
    assert set(view.table["label"]) == {"subset"} and set(view.table["layer_name"]) == set(view.result.layer_names)

    view.label.value = "chord_instrument"  # missing for notes: only the 12 chords are probed
    view.control_task.value = True
    view.run()
    assert view.last_error is None
    assert view.result.n_samples == 12 and "control" in view.result.sources
    assert list(view.table.drop_duplicates("label")["label"]) == ["subset", "chord_instrument"]


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


def test_probe_errors_show_in_the_view_and_the_button_comes_back(feats, clips):
    view = ProbeExplorer(feats, clips, label="midi_pitch", cv=3)  # 1 clip per pitch: too few for 3 folds
    view.run()
    assert view.last_error is not None and error_shown(view)
    assert view.progress.bar_style == "danger" and "failed" in view.status.value
    assert view.button.disabled is False and view.result is None
    with pytest.raises(FeaturesError, match="choose from"):
        ProbeExplorer(feats, clips, label="no_such_column")


# --- explore ---------------------------------------------------------------------------------------------

def test_explore_puts_the_three_views_in_tabs(feats, frames, clips):
    view = explore(feats, clips, frames=frames, label="instrument")
    assert view.titles == ("Clips", "Similarity", "Probing")
    assert view.children == (view.clips, view.similarity, view.probing)
    assert view.similarity.label.value == "instrument" and view.probing.label.value == "instrument"
    assert view.errors == {} and view.clips.selected_clip == clips.clip_id[0]


def test_frame_level_features_feed_every_view(frames, clips):
    view = explore(frames, clips)
    np.testing.assert_array_equal(view.clips.clip_frames, frames.frames(0))
    np.testing.assert_allclose(view.similarity.feats.pooled, frames.pool("mean").pooled)
    assert view.errors == {}


def test_explore_takes_the_clips_rows_from_the_features(feats, frames, clips):
    view = explore(feats, frames=frames, label="instrument")
    assert view.errors == {} and view.clips.selected_clip == clips.clip_id[0]
    assert "instrument" in view.clips.filters and view.probing.label.value == "instrument"
    assert view.similarity.label.value == "instrument"
    failed = feats.select(clips=list(range(1, len(clips))))  # as if the first clip had failed
    assert explore(failed, label="subset").clips.selected_clip == clips.clip_id[1]
