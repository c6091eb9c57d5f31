"""m2v_lab.pretrain.classroom: the helpers of notebooks/08_pretraining.ipynb, on tiny models and synthetic features."""

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch

from m2v_lab import pretrain as pt
from m2v_lab.errors import OptionError
from m2v_lab.pretrain import classroom
from m2v_lab.pretrain import evaluate as ev
from m2v_lab.pretrain import synth


@pytest.fixture(autouse=True)
def _threads(one_torch_thread):
    yield


def tiny_model(seed=0):
    return pt.build_model(pt.mini_config(hidden_size=32, num_layers=2, num_heads=2, conv_dim=16), seed=seed)


@pytest.fixture(scope="module")
def corpus_and_books():
    return classroom.phrase_corpus(4, notes_per_clip=3, note_seconds=0.5, codebooks=(("logmel", 6), ("chroma", 4)))


# -- melodies ----------------------------------------------------------------------------------------

def test_phrases_are_seeded_melodies_of_back_to_back_notes():
    waves, notes = classroom.phrases(3, seed=5, notes_per_clip=4, note_seconds=0.5)
    assert len(waves) == 3 and all(w.dtype == np.float32 and w.shape == (4 * 8000,) for w in waves)
    assert len(notes) == 12 and notes.groupby("melody").size().tolist() == [4, 4, 4]
    assert notes["start"].tolist()[:4] == [0.0, 0.5, 1.0, 1.5] and (notes["end"] - notes["start"] == 0.5).all()
    assert set(notes["program"]) <= set(synth.ADDITIVE_TIMBRES)
    assert (notes["pitch"] % 12 == notes["pitch_class"]).all()
    again, notes_again = classroom.phrases(3, seed=5, notes_per_clip=4, note_seconds=0.5)
    assert all(np.array_equal(a, b) for a, b in zip(waves, again)) and notes.equals(notes_again)
    other, _ = classroom.phrases(3, seed=6, notes_per_clip=4, note_seconds=0.5)
    assert not np.array_equal(waves[0], other[0])
    with pytest.raises(OptionError):
        classroom.phrases(0)


def test_phrase_corpus_carries_the_codes_of_every_codebook(corpus_and_books):
    corpus, books = corpus_and_books
    assert [b.name for b in books] == ["logmel", "chroma"] and [b.k for b in books] == [6, 4]
    for book in books:
        codes = corpus.targets[book.name]
        assert len(codes) == len(corpus) and all(len(c) == corpus.frames(t) for t, c in enumerate(codes))
        assert max(int(c.max()) for c in codes) < book.k


# -- the objectives on one batch -----------------------------------------------------------------------

def test_fixed_batches_share_crops_across_objectives_and_draw_each_objectives_mask(corpus_and_books):
    corpus, books = corpus_and_books
    model = tiny_model()
    d2v, mlm = pt.Data2VecObjective(model, top_k=2), pt.MLMObjective(model, books)
    a = classroom.fixed_batch(corpus, d2v, batch_size=3, crop_seconds=0.5, seed=1)
    b = classroom.fixed_batch(corpus, mlm, batch_size=3, crop_seconds=0.5, seed=1)
    assert torch.equal(a.input_values, b.input_values) and a.refs == b.refs
    assert a.targets == {} and set(b.targets) == {"logmel", "chroma"}
    assert a.mask.shape == b.mask.shape == (3, pt.frame_count(8000))
    assert torch.equal(classroom.fixed_batch(corpus, mlm, batch_size=3, crop_seconds=0.5, seed=1).mask, b.mask)
    assert not torch.equal(classroom.fixed_batch(corpus, mlm, batch_size=3, crop_seconds=0.5, seed=2).input_values,
                           b.input_values)


def test_objective_losses_compare_each_loss_with_a_know_nothing_predictor(corpus_and_books):
    corpus, books = corpus_and_books
    model = tiny_model()
    model.train()
    objectives = {"data2vec": pt.Data2VecObjective(model, top_k=1), "mlm": pt.MLMObjective(model, books),
                  "both": pt.CombinedObjective([pt.MLMObjective(model, books), pt.Data2VecObjective(model, top_k=2)])}
    before = [p.detach().clone() for p in model.parameters()]
    table = classroom.objective_losses(model, objectives, corpus, batch_size=3, crop_seconds=0.5)
    assert model.training  # the mode is given back
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))  # nothing trained
    assert table["objective"].tolist() == ["data2vec", "mlm", "both"]
    assert table["mask"].tolist() == ["0.65 × 10", "0.8 × 10", "0.8 × 10"]
    assert table["masked_share"].between(0, 1).all() and table["expected_share"].between(0, 1).all()
    rows = table.set_index("objective")
    assert rows.loc["mlm", "reference_loss"] == pytest.approx(np.log(6) + np.log(4))
    # one instance-normed block: variance 1 per dimension over a crop, so predicting 0 costs about dim / sqrt(dim)
    assert rows.loc["data2vec", "reference_loss"] == pytest.approx(np.sqrt(32), rel=0.25)
    assert rows.loc["both", "reference_loss"] > rows.loc["mlm", "reference_loss"]  # the sum of its members' references
    # codewords depend on the audio only: (almost) no variance explained by frame position
    assert rows.loc["mlm", "target_position_share"] < 0.2
    assert np.isfinite(rows["loss"]).all()


# -- codewords of one clip -----------------------------------------------------------------------------

def test_codewords_of_one_clip_sit_on_the_frame_grid_and_follow_its_notes():
    waves, notes = classroom.phrases(1, seed=3, notes_per_clip=3, note_seconds=0.6)
    codes, book = classroom.clip_codewords(waves[0], "chroma", k=4, seed=0)
    assert codes.shape == (pt.frame_count(len(waves[0])),) and codes.dtype == np.int64 and book.k == 4
    again, _ = classroom.clip_codewords(waves[0], "chroma", k=4, seed=0)
    assert np.array_equal(codes, again)
    note_of_frame = classroom.frame_notes(notes, len(codes))
    assert set(np.unique(note_of_frame)) <= {-1, 0, 1, 2}
    assert note_of_frame[0] == 0 and note_of_frame[len(codes) // 2] == 1 and note_of_frame[-1] == 2
    assert 0.5 < classroom.note_purity(codes, note_of_frame) <= 1.0


def test_frame_notes_uses_the_receptive_fields_centre_and_marks_gaps():
    notes = pd.DataFrame({"start": [0.0, 0.5], "end": [0.3, 1.0]})
    out = classroom.frame_notes(notes, 50)
    centre = (np.arange(50) * 320 + 200) / 16000
    assert np.array_equal(out == 0, centre < 0.3)
    assert np.array_equal(out == -1, (centre >= 0.3) & (centre < 0.5))
    assert np.array_equal(out == 1, centre >= 0.5)


def test_note_purity_counts_frames_on_their_notes_most_common_codeword():
    codes = np.array([1, 1, 2, 5, 5, 5, 0, 9])
    notes = np.array([0, 0, 0, 1, 1, 1, -1, -1])
    assert classroom.note_purity(codes, notes) == pytest.approx(5 / 6)
    assert classroom.note_purity(np.zeros(4, int), np.zeros(4, int)) == 1.0
    assert np.isnan(classroom.note_purity(codes, np.full(8, -1)))
    with pytest.raises(OptionError):
        classroom.note_purity(codes, notes[:-1])


# -- probes on pooled features ---------------------------------------------------------------------------

def small_table():
    return synth.additive_table(seed=1, timbres=("saw", "square", "fm_bell"), pitches=(48, 84), seconds=0.5)


def features(table, *, layers=2, what="pitch_class", noise=0.1, seed=0):
    """(layers, notes, >= 16): layer 0 shows ``what`` one-hot plus noise, the others noise only."""
    rng = np.random.default_rng(seed)
    values = pd.factorize(table[what])[0]
    X = noise * rng.standard_normal((layers, len(table), max(16, values.max() + 1)))
    X[0, :, :values.max() + 1] += np.eye(values.max() + 1)[values]
    return X


def test_random_folds_and_plain_cv():
    folds = classroom.random_folds(23, 5, seed=0)
    assert sorted(np.bincount(folds).tolist()) == [4, 4, 5, 5, 5]
    assert np.array_equal(folds, classroom.random_folds(23, 5, seed=0))
    with pytest.raises(OptionError):
        classroom.random_folds(3, 5)
    table = small_table()
    acc = classroom.plain_cv(features(table), table["pitch_class"])
    assert acc.shape == (2,) and acc[0] > 0.95 and acc[1] < 0.4


def test_generalising_probes_match_probe_suite_rows_and_feed_the_verdict():
    table = small_table()
    names = ["pre_transformer", "block_1"]
    stacks = {"music2vec-mini": features(table, what="program"), "random twin 1": features(table, seed=1),
              "random twin 2": features(table, seed=2)}
    res = classroom.generalising_probes(stacks, table, names)
    assert set(res["kind"]) == {"trained", "random"} and len(res) == 3 * 3 * 2
    assert sorted(res.loc[res["kind"] == "random", "twin_seed"].unique().tolist()) == [1, 2]
    assert (res["split"] == "test").all() and (res["notes"] == "additive").all()
    assert set(res.columns) >= {"model", "kind", "probe", "layer", "layer_name", "accuracy", "n_folds", "chance"}
    timbre = res[(res["model"] == "music2vec-mini") & (res["probe"] == "timbre_across_pitch") & (res["layer"] == 0)]
    assert timbre["accuracy"].item() > 0.95 and timbre["chance"].item() == pytest.approx(1 / 3)
    X, y = stacks["music2vec-mini"][0], table["program"].to_numpy()
    assert timbre["accuracy"].item() == ev.probe_accuracy(X, y, table["pitch"].to_numpy() % 6)[0]
    verdict = ev.verdict(res)
    assert verdict["timbre_best"] > verdict["timbre_best_twin"]
    base = classroom.generalising_probes({"chroma": features(table, layers=1)}, table, ["features"],
                                         kinds={"chroma": "baseline"})
    assert set(base["kind"]) == {"baseline"} and base["twin_seed"].isna().all()
    with pytest.raises(OptionError, match="shape"):
        classroom.generalising_probes({"x": features(table)[:, :10]}, table, names)
    with pytest.raises(OptionError, match="unknown probes"):
        classroom.generalising_probes(stacks, table, names, probes=("nope",))
    with pytest.raises(OptionError, match="kind"):
        classroom.generalising_probes(stacks, table, names, kinds={"music2vec-mini": "pretrained"})


def _results(trained, twins):
    rows = []
    for probe, acc in trained.items():
        rows += [{"model": "m", "kind": "trained", "probe": probe, "layer": layer, "layer_name": f"L{layer}",
                  "accuracy": a, "chance": 0.1} for layer, a in enumerate(acc)]
        for t, twin in enumerate(twins[probe]):
            rows += [{"model": f"random twin {t + 1}", "kind": "random", "probe": probe, "layer": layer,
                      "layer_name": f"L{layer}", "accuracy": a, "chance": 0.1} for layer, a in enumerate(twin)]
    return pd.DataFrame(rows)


def test_twin_comparison_places_the_best_layer_against_every_twin():
    res = _results({"up": [0.2, 0.9], "down": [0.3, 0.1], "same": [0.5, 0.45]},
                   {"up": [[0.5, 0.6], [0.4, 0.7]], "down": [[0.5, 0.6], [0.4, 0.7]], "same": [[0.4, 0.3], [0.6, 0.2]]})
    out = classroom.twin_comparison(res)
    assert out.loc["up", "verdict"] == "above every twin" and out.loc["up", "trained_layer"] == "L1"
    assert out.loc["up", "twins_best"] == 0.7 and out.loc["up", "difference"] == pytest.approx(0.2)
    assert out.loc["down", "verdict"] == "below every twin" and out.loc["down", "twins_lowest_best"] == 0.6
    assert out.loc["same", "verdict"] == "within the twins"
    with pytest.raises(OptionError):
        classroom.twin_comparison(res[res["kind"] == "trained"])


def test_first_last_averages_the_ends_of_a_history():
    history = pd.DataFrame({"loss": [4.0, 3.0, 2.0, 1.0, 1.0, 0.0, 0.0, 0.0]})
    assert classroom.first_last(history) == (3.5, 0.0)
    assert classroom.first_last(history, share=0.5) == (2.5, 0.25)
    with pytest.raises(OptionError, match="no column"):
        classroom.first_last(history, "d2v")


# -- the exercise's solution -------------------------------------------------------------------------------

def test_octave_gap_is_plain_cv_minus_octave_held_out():
    table = small_table()
    transfers = features(table, what="pitch_class")   # the pitch class itself: transfers across octaves
    memorised = features(table, what="pitch")           # the MIDI note: nothing carries to an unseen octave
    gap_t, gap_m = classroom.octave_gap(transfers, table), classroom.octave_gap(memorised, table)
    assert gap_t.shape == gap_m.shape == (2,)
    assert abs(gap_t[0]) < 0.1 and gap_m[0] > 0.5
    expected = classroom.plain_cv(memorised, table["pitch_class"]) - np.array(
        [ev.probe_accuracy(x, table["pitch_class"].to_numpy(), table["octave"].to_numpy())[0] for x in memorised])
    np.testing.assert_array_equal(gap_m, expected)


def test_the_module_imports_no_plotting_or_widgets():
    code = ("import sys, m2v_lab.pretrain.classroom; "
            "bad = [m for m in ('matplotlib', 'ipywidgets') if m in sys.modules]; assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)
