"""m2v_lab.pretrain.evaluate: the generalising probes on a few synthetic notes, and the verdict's arithmetic."""

import numpy as np
import pandas as pd
import pytest

from m2v_lab import pretrain as pt
from m2v_lab.pretrain import evaluate as ev
from m2v_lab.errors import OptionError
from m2v_lab.pretrain import synth

pytest.importorskip("tinysoundfont")


def test_note_tables_of_the_two_splits_are_disjoint_and_seeded():
    assert not set(synth.TEST_PROGRAMS) & set(synth.VALIDATION_PROGRAMS)
    a = synth.note_table(synth.TEST_PROGRAMS, seed=ev.SPLIT_SEEDS["test"])
    assert len(a) == 12 * 48 and a.groupby("octave").size().tolist() == [144] * 4
    assert a.equals(synth.note_table(synth.TEST_PROGRAMS, seed=ev.SPLIT_SEEDS["test"]))
    assert not a["velocity"].equals(synth.note_table(synth.TEST_PROGRAMS, seed=1)["velocity"])


def test_probe_suite_gives_a_tidy_frame_per_model_probe_and_layer(one_torch_thread):
    table = synth.note_table((0, 40, 73), seed=5, pitches=(48, 72), seconds=0.8)
    model = pt.build_model(pt.mini_config(hidden_size=32, num_layers=2, num_heads=2, conv_dim=16), seed=0)
    res = ev.probe_suite(model, table=table, n_twins=1)
    assert set(res["model"]) == {"music2vec-mini", "random twin 1", "mfcc+chroma", "mfcc", "chroma"}
    assert set(res["probe"]) == set(ev.PROBES)
    assert len(res[res["model"] == "music2vec-mini"]) == 3 * 3  # probes x (pre_transformer, block_1, block_2)
    assert res["accuracy"].between(0, 1).all()
    octave = res[(res["model"] == "chroma") & (res["probe"] == "octave_pitch_class")]["accuracy"].item()
    assert octave > 0.8  # chroma is octave-invariant by construction
    assert {"trained", "best_twin", "chroma"} <= set(ev.summarize(res).columns)


def test_verdict_compares_with_the_best_twin_at_any_layer():
    rows = []
    for layer, (timbre, control, octave) in enumerate([(0.60, 0.99, 0.05), (0.75, 0.90, 0.25), (0.80, 0.70, 0.1)]):
        for probe, acc in (("timbre_across_pitch", timbre), ("pitch_class_across_timbre", control),
                           ("octave_pitch_class", octave)):
            rows.append({"kind": "trained", "layer": layer, "probe": probe, "accuracy": acc})
            rows.append({"kind": "random", "layer": layer, "probe": probe, "accuracy": {0: 0.62, 1: 0.64, 2: 0.6}[layer]
                         if probe == "timbre_across_pitch" else 0.05 if probe == "octave_pitch_class" else 0.98})
    v = ev.verdict(pd.DataFrame(rows))
    assert v["must_met"] and v["must_layers"] == [1]  # layer 2 has the timbre but not the control
    assert v["timbre_best_twin"] == 0.64 and v["aim_met"] and v["octave_best"] == 0.25
    assert np.isclose(v["control_at_timbre_best"], 0.70)
    # the aim also needs the twins below: 0.25 is no achievement where random init reaches 0.30
    rows = [dict(r, accuracy=0.30) if r["kind"] == "random" and r["probe"] == "octave_pitch_class" else r
            for r in rows]
    assert not ev.verdict(pd.DataFrame(rows))["aim_met"]



def _family_rows(notes, per_layer, twin=(0.62, 0.98, 0.05)):
    rows = []
    for layer, accs in enumerate(per_layer):
        for probe, acc, twin_acc in zip(("timbre_across_pitch", "pitch_class_across_timbre", "octave_pitch_class"),
                                        accs, twin):
            rows.append({"notes": notes, "kind": "trained", "layer": layer, "probe": probe, "accuracy": acc})
            rows.append({"notes": notes, "kind": "random", "layer": layer, "probe": probe, "accuracy": twin_acc})
    return rows


def test_selection_ranks_a_checkpoint_meeting_the_must_above_a_higher_score():
    # A: best-layer accuracies sum higher, but its timbre sits where the control is lost
    a = pd.DataFrame(_family_rows("soundfont", [(0.60, 0.99, 0.90), (0.80, 0.70, 0.95)])
                     + _family_rows("additive", [(0.60, 0.99, 0.90), (0.80, 0.70, 0.95)]))
    # B: lower sum, but on the additive notes timbre 0.73 >= 0.62 + 0.10 with the control 0.86 at that layer
    b = pd.DataFrame(_family_rows("soundfont", [(0.60, 0.99, 0.20), (0.65, 0.80, 0.25)])
                     + _family_rows("additive", [(0.60, 0.99, 0.20), (0.73, 0.86, 0.25)]))
    sa, sb = ev.checkpoint_summary(a), ev.checkpoint_summary(b)
    assert sa["score"] > sb["score"]
    assert (sa["must_families"], sb["must_families"]) == (0, 1)
    assert sb["val_must_additive"] and not sb["val_must"]
    assert np.isclose(sb["val_must_margin_additive"], 0.73 - 0.62 - 0.10)
    assert np.isclose(sa["val_must_margin"], 0.60 - 0.62 - 0.10)  # only layer 0 keeps the control
    assert max([dict(sa, step=900), dict(sb, step=300)], key=ev.selection_key)["step"] == 300
    # with the Must equal, the aim and then the score decide; then the later step
    assert ev.selection_key(dict(sb, step=2)) > ev.selection_key(dict(sb, step=1))


def test_teaching_folds_never_hold_out_a_whole_class():
    from sklearn.model_selection import StratifiedGroupKFold

    import m2v_lab as m2v

    chords = m2v.datasets.teaching_set("chords")
    y, groups = chords["chord_quality"].to_numpy(), chords["group"].to_numpy()
    for train, test in StratifiedGroupKFold(n_splits=5, shuffle=True, random_state=0).split(y, y, groups):
        assert set(y[test]) <= set(y[train]) and not set(groups[test]) & set(groups[train])


def test_additive_notes_are_seeded_cover_whole_octaves_and_render_exactly():
    a = synth.additive_table(seed=ev.SPLIT_SEEDS["test"])
    assert len(a) == 5 * 36 and set(a["program"]) == set(synth.ADDITIVE_TIMBRES)
    # every octave fold holds all 12 pitch classes of every timbre, so "octave held out" is well posed
    assert (a.groupby(["program", "octave"])["pitch_class"].nunique() == 12).all()
    assert a.equals(synth.additive_table(seed=ev.SPLIT_SEEDS["test"]))
    assert not a["attack"].equals(synth.additive_table(seed=1)["attack"])
    rows = a[a["pitch"].isin([45, 69])]
    waves = synth.render_additive(rows)
    assert all(w.dtype == np.float32 and len(w) == 24000 for w in waves)
    assert np.allclose([np.abs(w).max() for w in waves], rows["level"], atol=1e-6)
    for w, r in zip(waves, rows.itertuples()):  # the additive spectra peak at the fundamental (1/k roll-off)
        if r.program in ("saw", "square", "triangle"):
            peak_hz = np.argmax(np.abs(np.fft.rfft(w))) * 16000 / len(w)
            assert abs(peak_hz - 440 * 2 ** ((r.pitch - 69) / 12)) < 2
    with pytest.raises(OptionError, match="whole octaves"):
        synth.additive_table(seed=0, pitches=(45, 50))


def test_probe_suite_on_additive_notes_scores_chroma_octave_invariant(one_torch_thread):
    table = synth.additive_table(seed=3, timbres=("saw", "fm_brass"), pitches=(48, 72), seconds=0.8)
    model = pt.build_model(pt.mini_config(hidden_size=32, num_layers=2, num_heads=2, conv_dim=16), seed=0)
    res = ev.probe_suite(model, table=table, n_twins=0)
    assert set(res["notes"]) == {"additive"}
    timbre = res[res["probe"] == "timbre_across_pitch"]
    assert np.allclose(timbre["chance"], 0.5)  # chance from the labels present: two timbres
    chroma = res[(res["model"] == "chroma") & (res["probe"] == "octave_pitch_class")]["accuracy"].item()
    assert chroma > 0.8
    with pytest.raises(OptionError, match="notes="):
        ev.probe_suite(model, notes="sine", n_twins=0)


def test_cka_against_twins_pairs_the_model_with_each_twin_and_the_twins_with_each_other(one_torch_thread):
    table = synth.additive_table(seed=1, timbres=("saw", "fm_bell", "square"), pitches=(48, 60), seconds=0.6)
    model = pt.build_model(pt.mini_config(hidden_size=32, num_layers=2, num_heads=2, conv_dim=16), seed=0)
    cka = ev.cka_against_twins(model, synth.render_additive(table), n_twins=3)
    assert list(cka["pair"].unique()) == ["trained vs twin 1", "trained vs twin 2", "trained vs twin 3",
                                          "twin 1 vs twin 2", "twin 1 vs twin 3", "twin 2 vs twin 3"]
    assert cka.groupby("pair").size().eq(3).all() and cka["cka"].between(-1, 1).all()
