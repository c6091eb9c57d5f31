"""m2v_lab.features: the clip table travelling with the features, selection by label, save / load, interop."""

import numpy as np
import pandas as pd
import pytest

import m2v_lab as m2v
from m2v_lab import Features, FeaturesError, OptionError
from m2v_lab.extract import ExtractWarning

META = {"model": "toy", "fingerprint": "f" * 64, "trained": True, "num_layers": 3, "hidden_size": 4,
        "pool": "mean", "sample_rate": 16000, "frame_stride": 320, "receptive_field": 400,
        "facts": {"sample_rate": "registry"}, "cache_dir": None, "cache_hits": 0, "device": "cpu"}


def make(n=3, *, layers=(0, 1, 2, 3), frames=False, seed=0, meta=None, ids=None, **kw) -> Features:
    """Features of ``n`` clips built from random arrays, as extract builds them (no model)."""
    rng = np.random.default_rng(seed)
    names = [("pre_transformer" if i == 0 else f"block_{i}") for i in layers]
    ids = [f"clip{seed}_{i}" for i in range(n)] if ids is None else ids
    common = dict(layer_names=names, layer_indices=list(layers), clips=ids, source_index=list(range(n)),
                  meta={**META, **(meta or {})}, **kw)
    if frames:
        arrays = [rng.standard_normal((len(layers), 5 + i, 4)).astype(np.float16) for i in range(n)]
        # callables, as frames read from the cache on demand are
        return Features(frames=[(lambda a=a: a) for a in arrays],
                        windows=[np.array([[0, 1920 + 320 * i, 5 + i]], np.int64) for i in range(n)],
                        **{**common, "meta": {**common["meta"], "pool": None}})
    return Features(pooled=rng.standard_normal((len(layers), n, 4)).astype(np.float32), **common)


# -- clip_table -------------------------------------------------------------------------------------------

def test_clip_table_defaults_to_clip_id_and_source_index_indexed_by_source_index():
    feats = Features(layer_names=["pre_transformer"], layer_indices=[0], clips=["a", "c"], source_index=[0, 2],
                     meta=META, pooled=np.zeros((1, 2, 4), np.float32))
    assert list(feats.clip_table.columns) == ["clip_id", "source_index"]
    assert feats.clip_table["clip_id"].tolist() == ["a", "c"]
    assert feats.clip_table.index.tolist() == feats.clip_table["source_index"].tolist() == [0, 2]


def test_clip_table_keeps_the_given_rows_by_position_with_repeated_labels_and_sets_ids():
    rows = pd.DataFrame({"path": ["p.wav", "p.wav", "q.wav"], "clip_id": [None, None, "q"], "label": [1, 2, 3]},
                        index=[0, 0, 1])
    feats = make(3, ids=["p.wav", "p.wav#1", "q"], clip_table=rows)
    table = feats.clip_table
    assert list(table.columns) == ["path", "clip_id", "label", "source_index"]
    assert table.index.tolist() == [0, 0, 1] and table["label"].tolist() == [1, 2, 3]
    assert table["clip_id"].tolist() == feats.clips  # extract's ids, not the frame's missing ones
    assert rows["clip_id"].isna().sum() == 2, "the caller's frame is not changed"


def test_constructor_refuses_clip_tables_that_do_not_fit():
    with pytest.raises(FeaturesError, match="2 rows for 3 clips"):
        make(3, clip_table=pd.DataFrame({"x": [1, 2]}))
    with pytest.raises(FeaturesError, match="not both"):
        make(3, clip_table=pd.DataFrame({"x": [1, 2, 3]}), source_labels=[0, 1, 2])
    with pytest.raises(FeaturesError, match="pandas DataFrame"):
        make(3, clip_table={"x": [1, 2, 3]})


def test_repeated_clip_ids_are_refused():
    with pytest.raises(FeaturesError, match=r"\['a'\] occur more than once"):
        make(3, ids=["a", "b", "a"])


def test_select_and_pool_keep_the_clip_table_in_step():
    feats = make(3, frames=True, clip_table=pd.DataFrame({"label": ["x", "y", "z"]}, index=[7, 8, 9]))
    some = feats.select(clips=[2, 0], layers=["block_1"])
    assert some.clip_table["label"].tolist() == ["z", "x"] and some.clip_table.index.tolist() == [9, 7]
    pooled = some.pool("mean")
    assert pooled.clip_table["label"].tolist() == ["z", "x"]
    np.testing.assert_allclose(pooled.pooled[0, 0], feats.frames(2)[1].astype(np.float64).mean(axis=0), atol=1e-3)


# -- align ----------------------------------------------------------------------------------------------

def test_align_with_repeated_index_labels_gives_one_row_per_clip():
    """pd.concat of two frames: label 0 names p.wav twice; the middle clip (gone.wav) failed."""
    frame = pd.concat([pd.DataFrame({"path": ["p.wav", "gone.wav"], "label": ["x", "y"]}),
                       pd.DataFrame({"path": ["p.wav", "q.wav"], "label": ["z", "w"]})])
    feats = Features(layer_names=["pre_transformer"], layer_indices=[0], clips=["p.wav", "p.wav#1", "q.wav"],
                     source_index=[0, 2, 3], meta=META, pooled=np.zeros((1, 3, 4), np.float32),
                     source_labels=[0, 0, 1])  # what extract passes before clip_table is wired
    rows = feats.align(frame)
    assert rows["label"].tolist() == ["x", "z", "w"] and rows.index.tolist() == [0, 0, 1]


def test_align_finds_the_rows_of_a_filtered_frame_by_label():
    frame = pd.DataFrame({"path": list("abcd"), "label": list("abcd"), "split": ["tr", "te", "tr", "te"]})
    test = frame[frame.split == "te"]
    feats = make(2, ids=["b", "d"], clip_table=test)
    assert feats.align(test)["label"].tolist() == ["b", "d"]
    assert feats.align(frame)["label"].tolist() == ["b", "d"]


def test_align_refuses_a_frame_whose_rows_do_not_name_the_clips():
    frame = pd.DataFrame({"path": list("abcd"), "split": ["tr", "te", "tr", "te"]})
    feats = make(2, ids=["b", "d"], clip_table=frame[frame.split == "te"])
    with pytest.raises(FeaturesError, match="do not name the clips"):
        feats.align(frame.assign(path=frame.path[::-1].to_numpy()))
    with pytest.raises(FeaturesError, match="not all rows of that frame"):
        feats.align(pd.concat([frame, frame]))  # labels b, d twice each: no single row to take


# -- selecting by label ---------------------------------------------------------------------------------

def table() -> pd.DataFrame:
    return pd.DataFrame({"subset": ["notes", "chords", "notes", "notes"], "velocity": [40, 80, 100, 120],
                         "family": ["Piano", "Organ", "Guitar", None]})


def test_where_takes_a_value_a_list_or_a_callable_per_column_and_all_must_hold():
    feats = make(4, ids=list("abcd"), clip_table=table())
    assert feats.where(subset="notes").clips == ["a", "c", "d"]
    assert feats.where(family=["Piano", "Organ"]).clips == ["a", "b"]
    assert feats.where(subset="notes", velocity=lambda v: v >= 100).clips == ["c", "d"]
    assert feats.where(family=None).clips == ["d"]
    np.testing.assert_array_equal(feats.where(subset="chords").pooled, feats.pooled[:, [1]])


def test_where_and_labels_name_the_columns_there_are_when_one_is_missing():
    feats = make(4, ids=list("abcd"), clip_table=table())
    with pytest.raises(FeaturesError, match=r"no column 'pitch'.*'subset', 'velocity', 'family'"):
        feats.where(pitch="C")
    with pytest.raises(FeaturesError, match=r"no column 'pitch'.*'clip_id'"):
        feats.labels("pitch")
    with pytest.raises(FeaturesError, match="boolean mask"):
        feats.where(velocity=lambda v: v * 2)


def test_labels_is_the_column_as_an_array_in_clip_order():
    feats = make(4, ids=list("abcd"), clip_table=table()).select(clips=[3, 1])
    np.testing.assert_array_equal(feats.labels("velocity"), [120, 80])


def test_select_takes_boolean_masks_by_position_and_missing_counts_as_false():
    feats = make(4, ids=list("abcd"), clip_table=table())
    assert feats.select(clips=np.array([False, True, True, False])).clips == ["b", "c"]
    mask = pd.Series(pd.array([True, None, False, True], dtype="boolean"), index=[3, 3, 2, 0])
    assert feats.select(where=mask).clips == ["a", "d"]
    assert feats.select(where=feats.clip_table.velocity > 50).clips == ["b", "c", "d"]
    with pytest.raises(FeaturesError, match="4 entries"):
        feats.select(where=[True, False])
    with pytest.raises(OptionError, match="one of them"):
        feats.select(clips=[0], where=[True] * 4)


# -- layers, arrays, frames -------------------------------------------------------------------------------

def test_indexing_gives_one_layer_by_name_or_by_model_index():
    feats = make(3)
    np.testing.assert_array_equal(feats["block_2"], feats.pooled[2])
    np.testing.assert_array_equal(feats[2], feats.pooled[2])
    np.testing.assert_array_equal(feats[-1], feats.pooled[3])
    with pytest.raises(OptionError, match="select"):
        feats[[1, 2]]


def test_negative_layer_indices_count_from_the_end_of_the_models_states_as_extract():
    some = make(3, layers=(0, 3))  # a subset: -1 is still the model's last block
    np.testing.assert_array_equal(some.select(layers=-1).pooled, some.pooled[[1]])
    with pytest.raises(FeaturesError, match="not held"):
        some.select(layers=-2)


def test_features_are_not_iterable_and_asarray_is_the_pooled_array():
    feats = make(3)
    np.testing.assert_array_equal(np.asarray(feats), feats.pooled)
    with pytest.raises(TypeError):
        list(feats)


def test_to_torch_is_the_pooled_array_as_a_tensor_without_a_copy():
    feats = make(3)
    tensor = feats.to_torch()
    assert tuple(tensor.shape) == (4, 3, 4)
    np.testing.assert_array_equal(tensor.numpy(), feats.pooled)
    assert np.shares_memory(tensor.numpy(), feats.pooled)


def test_to_frame_is_tidy_one_row_per_layer_clip_and_dim_in_pooled_order():
    feats = make(2, ids=["a", "b"], clip_table=pd.DataFrame({"label": ["x", "y"]}))
    frame = feats.to_frame(layers=["block_1", "block_3"])
    assert list(frame.columns) == ["layer", "layer_index", "clip_id", "dim", "value"] and len(frame) == 16
    np.testing.assert_array_equal(frame["value"], feats.pooled[[1, 3]].ravel())
    assert list(frame["layer"].cat.categories) == ["block_1", "block_3"] and frame["layer"].cat.ordered
    row = frame.iloc[9]  # layer block_3, clip a, dim 1
    assert (row["layer"], row["layer_index"], row["clip_id"], row["dim"]) == ("block_3", 3, "a", 1)
    assert row["value"] == feats.pooled[3, 0, 1]
    labelled = frame.merge(feats.clip_table[["clip_id", "label"]], on="clip_id")
    assert labelled.groupby("label", observed=True).size().to_dict() == {"x": 8, "y": 8}


# -- concat -----------------------------------------------------------------------------------------------

def test_concat_joins_clips_and_tables_numbering_each_clips_source_part():
    a = make(2, seed=1, clip_table=pd.DataFrame({"label": ["x", "y"]}), failed={"bad": "not found"},
             meta={"cache_hits": 1})
    b = make(1, seed=2, ids=["bad"], clip_table=pd.DataFrame({"label": ["z"]}), meta={"cache_hits": 2})
    c = make(1, seed=3, meta={"device": "cuda:0"})
    joined = Features.concat([Features.concat([a, b]), c])
    assert joined.clips == a.clips + b.clips + c.clips
    np.testing.assert_array_equal(joined.pooled, np.concatenate([a.pooled, b.pooled, c.pooled], axis=1))
    assert joined.clip_table["source_part"].tolist() == [0, 0, 1, 2]
    assert joined.source_index.tolist() == joined.clip_table["source_index"].tolist() == [0, 1, 0, 0]
    assert joined.clip_table["label"].tolist()[:3] == ["x", "y", "z"] and pd.isna(joined.clip_table["label"].iloc[3])
    assert joined.failed == {}, "a failure another part re-ran is not a failure of the whole"
    assert joined.meta["cache_hits"] == 3 and joined.meta["device"] == ["cpu", "cuda:0"]
    assert joined.where(source_part=1).clips == ["bad"]
    inputs = pd.concat([pd.DataFrame({"label": ["x", "y"]}), pd.DataFrame({"label": ["z"]}),
                        pd.DataFrame({"label": ["q"]})])  # index 0, 1, 0, 0 as the joined table's
    with pytest.raises(FeaturesError, match="joined with Features.concat"):
        joined.align(inputs)  # positions in three inputs: rows 0, 1, 0, 0 of this frame would be wrong


def test_concat_refuses_parts_made_otherwise_naming_what_differs():
    with pytest.raises(FeaturesError, match=r"part 1 was not made like part 0: meta\['fingerprint'\] 'f+' vs 'e+'"):
        Features.concat([make(2, seed=1), make(2, seed=2, meta={"fingerprint": "e" * 64})])
    with pytest.raises(FeaturesError, match=r"layers \['pre_transformer', 'block_1', 'block_2', 'block_3'\] vs "
                                            r"\['block_3'\]"):
        Features.concat([make(2, seed=1), make(2, seed=2).select(layers=[3])])
    with pytest.raises(FeaturesError, match="pooled vs frames"):
        Features.concat([make(2, seed=1), make(2, seed=2, frames=True, meta={"pool": "mean"})])


def test_concat_refuses_a_clip_id_in_two_parts_naming_it():
    with pytest.raises(FeaturesError, match=r"clip ids \['clip1_0'\] are in more than one part"):
        Features.concat([make(2, seed=1), make(1, seed=1)])


# -- save / load --------------------------------------------------------------------------------------------

def rich_table() -> pd.DataFrame:
    """Every kind of column a clip table holds, with the values JSON or to_json(orient="table") would bend."""
    return pd.DataFrame({
        "path": pd.array(["a.wav", None, "0001"], dtype="str"),
        "n": np.array([1, -2, 2**62], dtype=np.int64),
        "x": [0.1 + 0.2, np.nan, 1 / 3],
        "small": np.array([1.5, -0.0, np.inf], dtype=np.float32),
        "flag": [True, False, True],
        "maybe": pd.array([True, None, False], dtype="boolean"),
        "velocity": pd.array([40, None, 120], dtype="Int64"),
        "family": pd.Categorical(["Piano", "Organ", "Piano"], categories=["Organ", "Piano", "Brass"], ordered=True),
        "octave": pd.Categorical([3, 4, 3]),
        "when": pd.to_datetime(["2024-01-02 03:04:05.123456789", None, "1999-12-31"], format="ISO8601"),
        "tags": np.array([["guitar", "loud"], [], None], dtype=object),
        "old": np.array(["x", np.nan, 3], dtype=object),
    }, index=pd.Index([5, 5, 2], name="row"))


def assert_same(loaded: Features, feats: Features):
    assert loaded.layer_names == feats.layer_names and loaded.clips == feats.clips
    for got, want in [(loaded.layer_indices, feats.layer_indices), (loaded.source_index, feats.source_index),
                      *zip(loaded.windows, feats.windows)]:
        assert got.dtype == want.dtype and np.array_equal(got, want)
    assert loaded.meta == feats.meta and loaded.failed == feats.failed
    pd.testing.assert_frame_equal(loaded.clip_table, feats.clip_table, check_exact=True)


def test_save_and_load_round_trip_pooled_features_and_every_kind_of_column_exactly(tmp_path):
    feats = make(3, clip_table=rich_table(), failed={"gone.wav": "audio file not found"},
                 windows=[np.array([[0, 16000, 49]], np.int64)] * 3)
    loaded = Features.load(feats.save(tmp_path / "feats.m2v"))
    assert loaded.pooled.dtype == np.float32 and loaded.pooled.tobytes() == feats.pooled.tobytes()
    assert_same(loaded, feats)
    assert loaded.clip_table["tags"].tolist()[:2] == [["guitar", "loud"], []]


def test_save_and_load_round_trip_frames_read_on_demand(tmp_path):
    feats = make(3, frames=True)
    loaded = Features.load(feats.save(tmp_path / "frames.m2v"))
    for i in range(3):
        assert loaded.frames(i).dtype == np.float16 and loaded.frames(i).tobytes() == feats.frames(i).tobytes()
    np.testing.assert_array_equal(loaded.frame_times(2), feats.frame_times(2))
    assert_same(loaded, feats)
    with pytest.raises(FeaturesError, match="pool=None"):
        loaded.pooled


def test_an_interrupted_save_leaves_the_earlier_file_whole_and_no_temporary_file(tmp_path, monkeypatch):
    import safetensors.numpy

    path = tmp_path / "feats.m2v"
    first = make(2, seed=1)
    first.save(path)
    real_save = safetensors.numpy.save_file

    def dies_half_way(arrays, filename, metadata=None):
        real_save({"pooled": arrays["pooled"]}, filename)
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(safetensors.numpy, "save_file", dies_half_way)
    with pytest.raises(FeaturesError, match="cannot write .*No space left"):
        make(2, seed=2).save(path)
    assert_same(Features.load(path), first)
    assert [p.name for p in tmp_path.iterdir()] == ["feats.m2v"]
    monkeypatch.undo()
    second = make(2, seed=2)
    second.save(path)
    assert Features.load(path).clips == second.clips


def test_save_refuses_to_replace_a_file_that_is_not_saved_features(tmp_path):
    audio = tmp_path / "take1.wav"
    audio.write_bytes(b"RIFF....WAVE")
    with pytest.raises(FeaturesError, match="take1.wav exists and is not saved Features"):
        make(2).save(audio)
    assert audio.read_bytes() == b"RIFF....WAVE"
    with pytest.raises(FeaturesError, match="is a folder"):
        make(2).save(tmp_path)


def test_save_refuses_columns_and_meta_it_cannot_store_exactly_naming_them(tmp_path):
    from pathlib import Path

    feats = make(2, clip_table=pd.DataFrame({"file": [Path("a.wav"), Path("b.wav")]}))
    with pytest.raises(FeaturesError, match=r"column or index 'file' holds PosixPath values.*astype\(str\)"):
        feats.save(tmp_path / "f.m2v")
    with pytest.raises(FeaturesError, match="feats.meta holds PosixPath values"):
        make(2, meta={"cache_dir": Path("/tmp")}).save(tmp_path / "f.m2v")
    assert not list(tmp_path.iterdir())


def test_load_of_something_that_is_not_saved_features_names_the_path_and_the_fix(tmp_path):
    from safetensors.numpy import save_file

    text = tmp_path / "notes.txt"
    text.write_text("hello")
    weights = tmp_path / "model.safetensors"
    save_file({"w": np.zeros(3, np.float32)}, str(weights))
    cut = tmp_path / "cut.m2v"
    cut.write_bytes(make(2).save(tmp_path / "whole.m2v").read_bytes()[:200])
    for path, why in [(tmp_path / "nope.m2v", "no such file"), (tmp_path, "a folder"), (text, "not saved Features"),
                      (weights, "without m2v_lab's marker"), (cut, "not saved Features")]:
        with pytest.raises(FeaturesError, match=why) as info:
            Features.load(path)
        assert str(path) in str(info.value) and "feats.save(path)" in str(info.value)


# -- display ----------------------------------------------------------------------------------------------

def test_repr_html_summarises_model_shape_failures_and_the_first_rows():
    feats = make(7, meta={"trained": False, "model": "tiny<music2vec>"}, failed={"x": "bad"},
                 clip_table=pd.DataFrame({"label": [f"<b>{i}</b>" for i in range(7)]}))
    page = feats._repr_html_()
    assert "tiny&lt;music2vec&gt;" in page and "UNTRAINED" in page
    assert "4 layers × 7 clips × 4 dims, pooled (mean), 1 failed" in page
    assert "&lt;b&gt;4&lt;/b&gt;" in page and "&lt;b&gt;5&lt;/b&gt;" not in page and "2 more clips" in page


# -- through extract ------------------------------------------------------------------------------------------

def test_extracted_frames_read_from_the_cache_survive_save_and_load(tiny, write_audio, tmp_path):
    paths = [write_audio("a.wav", 1.0), write_audio("b.wav", 1.3, seed=1)]
    feats = m2v.extract(tiny, paths, pool=None, layers=[0, 6], cache_dir=tmp_path / "cache", progress=False)
    loaded = Features.load(feats.save(tmp_path / "frames.m2v"))
    for i in range(2):
        np.testing.assert_array_equal(loaded.frames(i), feats.frames(i))
    assert_same(loaded, feats)


# NEEDS extract() TO PASS clip_table (the input frame's rows, frame.iloc[done]); fails until that is wired.
def test_extract_of_a_concatenated_frame_with_a_missing_file_keeps_every_label(tiny, write_audio, tmp_path):
    p, q = str(write_audio("p.wav", 1.0)), str(write_audio("q.wav", 1.0, seed=1))
    frame = pd.concat([pd.DataFrame({"path": [p, str(tmp_path / "gone.wav")], "label": ["x", "y"]}),
                       pd.DataFrame({"path": [p, q], "label": ["z", "w"]})])
    with pytest.warns(ExtractWarning, match="1 of 4 clips failed"):
        feats = m2v.extract(tiny, frame, progress=False)
    table = feats.clip_table
    assert feats.clips == [p, p + "#1", q] and feats.source_index.tolist() == [0, 2, 3]
    assert table.index.tolist() == [0, 0, 1] and table["label"].tolist() == ["x", "z", "w"]
    assert table["path"].tolist() == [p, p, q] and table["clip_id"].tolist() == feats.clips
    assert feats.align(frame)["label"].tolist() == ["x", "z", "w"]
    assert feats.where(label=["z", "w"]).clips == [p + "#1", q]
    assert list(feats.failed) == [str(tmp_path / "gone.wav")]


def test_repr_html_shows_file_names_not_this_machines_folders():
    feats = m2v.Features(layer_names=["a"], layer_indices=[0], clips=["x"], source_index=[0], meta={"hidden_size": 2},
                         pooled=np.zeros((1, 1, 2), np.float32),
                         clip_table=pd.DataFrame({"path": ["/home/someone/music/song.flac"]}))
    page = feats._repr_html_()
    assert "song.flac" in page and "/home/someone" not in page
