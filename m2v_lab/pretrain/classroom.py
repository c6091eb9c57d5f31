"""Helpers of the notebook "pre-training at classroom scale" (``notebooks/08_pretraining.ipynb``).

The notebook asks one question — what does pre-training add to a network that already identifies
notes? — and needs a few pieces the package does not have as single calls:

- :func:`phrases` / :func:`phrase_corpus`: short melodies of additive notes (rendered in a blink, from a
  seed of their own, never the probe notes) as an :class:`~m2v_lab.pretrain.AudioCorpus` with codewords;
- :func:`fixed_batch` and :func:`objective_losses`: the objectives side by side on one batch;
- :func:`clip_codewords`, :func:`frame_notes`, :func:`note_purity`: k-means codewords of one clip and how
  well they follow its notes;
- :func:`plain_cv`, :func:`generalising_probes`, :func:`twin_comparison`: the probes from pooled features
  extracted once (so the same features also feed a CKA map);
- :func:`octave_gap`: the reference solution of the notebook's exercise.

Pure computation: nothing here imports matplotlib or ipywidgets.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import pandas as pd
import torch

from .. import audio as m2v_audio
from ..errors import OptionError
from . import evaluate as ev
from . import synth
from .config import FRAME_HOP, FRAME_WINDOW, SAMPLE_RATE
from .data import AudioCorpus, Batch, CropSampler
from .forward import front_end, unwrap
from .monitor import collapse_stats
from .objectives import CombinedObjective, Data2VecObjective, MLMObjective, Objective
from .targets import Codebook, frame_features
from .train import _batch

__all__ = ["phrases", "phrase_corpus", "fixed_batch", "objective_losses", "clip_codewords", "frame_notes",
           "note_purity", "random_folds", "plain_cv", "generalising_probes", "twin_comparison", "first_last",
           "octave_gap"]

#: Seed of the notebook's training melodies (the probe splits use :data:`~m2v_lab.pretrain.evaluate.SPLIT_SEEDS`).
PHRASE_SEED = 7


# --- melodies of additive notes ---------------------------------------------------------------------

def phrases(n_clips: int, *, seed: int = PHRASE_SEED, notes_per_clip: int = 4, note_seconds: float = 0.75,
            timbres: Sequence[str] = synth.ADDITIVE_TIMBRES) -> tuple[list[np.ndarray], pd.DataFrame]:
    """Short melodies: ``notes_per_clip`` additive/FM notes of ``note_seconds`` each, back to back.

    Notes are drawn (with replacement) from :func:`~m2v_lab.pretrain.synth.additive_table` rendered with
    ``seed`` — give a seed other than the probe splits' (20251, 20252) and the melodies never repeat a
    probe note.

    Parameters
    ----------
    n_clips : int
        Melodies.
    seed : int
        Note parameters and the choice of notes.
    notes_per_clip : int
    note_seconds : float
        Length of each note (each has its own attack and release, so the melody is articulated).
    timbres : sequence of str
        Among :data:`~m2v_lab.pretrain.synth.ADDITIVE_TIMBRES`.

    Returns
    -------
    waves : list of ndarray
        ``n_clips`` mono float32 clips at 16 kHz, ``notes_per_clip * round(note_seconds * 16000)`` samples.
    notes : DataFrame
        One row per note: ``melody`` (its clip), ``index`` (position in the clip), ``start``, ``end`` (seconds), and the
        note's ``program`` (timbre), ``pitch``, ``pitch_class``.
    """
    if n_clips < 1 or notes_per_clip < 1:
        raise OptionError(f"phrases needs n_clips >= 1 and notes_per_clip >= 1 (got {n_clips}, {notes_per_clip}).")
    table = synth.additive_table(seed=seed, timbres=tuple(timbres), seconds=note_seconds)
    picks = np.random.default_rng(seed).integers(0, len(table), size=(n_clips, notes_per_clip))
    rendered = synth.render_additive(table.iloc[np.unique(picks)])
    by_row = dict(zip(np.unique(picks).tolist(), rendered))
    waves, rows = [], []
    for c, row_ids in enumerate(picks):
        waves.append(np.concatenate([by_row[int(r)] for r in row_ids]).astype(np.float32))
        for i, r in enumerate(row_ids):
            note = table.iloc[int(r)]
            rows.append({"melody": c, "index": i, "start": i * note_seconds, "end": (i + 1) * note_seconds,
                         "program": note["program"], "pitch": int(note["pitch"]),
                         "pitch_class": int(note["pitch_class"])})
    return waves, pd.DataFrame(rows)


def phrase_corpus(n_clips: int, *, seed: int = PHRASE_SEED, codebooks: Sequence[tuple[str, int]] = (("logmel", 16),
                  ("chroma", 12)), codebook_seed: int = 0, **phrase_options) -> tuple[AudioCorpus, list[Codebook]]:
    """:func:`phrases` as an :class:`~m2v_lab.pretrain.AudioCorpus` with k-means codewords attached.

    Parameters
    ----------
    n_clips, seed, **phrase_options
        Passed to :func:`phrases`.
    codebooks : sequence of (kind, k)
        One :class:`~m2v_lab.pretrain.Codebook` per feature kind, named after the kind, fitted on the corpus.
    codebook_seed : int

    Returns
    -------
    (AudioCorpus, list of Codebook)
        The corpus carries every codebook's codes (``corpus.targets[kind]``).
    """
    waves, _ = phrases(n_clips, seed=seed, **phrase_options)
    corpus = AudioCorpus.from_arrays(waves, source=f"additive melodies (seed {seed})")
    books = []
    for kind, k in codebooks:
        book = corpus.fit_codebook(kind, kind, k=int(k), seed=codebook_seed)
        corpus.add_codes(book)
        books.append(book)
    return corpus, books


# --- the objectives on one batch ----------------------------------------------------------------------

def fixed_batch(corpus: AudioCorpus, objective: Objective, *, batch_size: int = 4, crop_seconds: float = 1.0,
                seed: int = 0) -> Batch:
    """One batch as :func:`~m2v_lab.pretrain.pretrain` draws it: crops, the objective's targets and mask.

    The crops depend on ``seed`` only (not on the objective), so two objectives given the same seed see
    the same audio; each draws the mask of its own :class:`~m2v_lab.pretrain.MaskConfig` after the crops.

    Returns
    -------
    Batch
    """
    rng = np.random.default_rng(seed)
    return _batch(CropSampler(corpus, crop_seconds=crop_seconds), objective, batch_size, rng, rng, "cpu")


def _members(objective: Objective) -> list[Objective]:
    return list(objective.members) if isinstance(objective, CombinedObjective) else [objective]


@torch.no_grad()
def _reference_loss(model, objective: Objective, batch: Batch) -> float:
    """The loss of a predictor that knows nothing: uniform codeword guesses, or all-zero regression."""
    total = 0.0
    for member, w in zip(_members(objective), getattr(objective, "weights", [1.0])):
        if isinstance(member, MLMObjective):
            total += w * sum(float(np.log(k)) for k in member.sizes.values())
            if member.recon is not None:
                y = batch.targets[member.cqt_name].float()
                total += w * member.cqt_weight * float(y.square().mean(-1)[batch.mask].mean())
        elif isinstance(member, Data2VecObjective):
            y = member.targets(front_end(unwrap(model), batch.input_values))
            total += w * float((y[batch.mask].square().sum(-1) * member.loss_scale).mean())
        else:
            return float("nan")
    return total


@torch.no_grad()
def objective_losses(model, objectives: Mapping[str, Objective], corpus: AudioCorpus, *, batch_size: int = 4,
                     crop_seconds: float = 1.0, seed: int = 0) -> pd.DataFrame:
    """Each objective's loss on one fixed batch of ``corpus``, with what a know-nothing predictor scores.

    The model and the objectives run in eval mode without gradients (their modes are given back); nothing
    is trained.

    Parameters
    ----------
    model : LoadedModel or transformers module
    objectives : mapping of str to Objective
        Built on ``model``; ``corpus`` must carry their targets.
    corpus : AudioCorpus
    batch_size, crop_seconds, seed
        :func:`fixed_batch` (the same crops for every objective).

    Returns
    -------
    DataFrame
        One row per objective: ``objective``, ``mask`` (``"p × span"``), ``masked_share`` (of this batch's
        frames), ``expected_share`` (:meth:`~m2v_lab.pretrain.MaskConfig.expected_fraction`), ``loss``,
        ``reference_loss`` (uniform codeword guesses: Σ ln k; data2vec: predicting 0 for the instance-normed
        targets), and ``target_position_share`` (:func:`~m2v_lab.pretrain.collapse_stats` of the targets:
        the one-hot codes or data2vec's teacher targets).
    """
    module = unwrap(model)
    was_training = module.training
    module.eval()
    rows = []
    try:
        for name, objective in objectives.items():
            objective_was_training = objective.training
            objective.eval()
            batch = fixed_batch(corpus, objective, batch_size=batch_size, crop_seconds=crop_seconds, seed=seed)
            loss, _ = objective(module, batch, 0)
            objective.train(objective_was_training)
            position = []
            for member in _members(objective):
                if isinstance(member, Data2VecObjective):
                    position.append(collapse_stats(member.targets(front_end(module, batch.input_values)))
                                    ["position_share"])
                elif isinstance(member, MLMObjective):
                    position += [collapse_stats(torch.nn.functional.one_hot(batch.targets[n], k).float())
                                 ["position_share"] for n, k in member.sizes.items()]
            frames = batch.mask.shape[1]
            rows.append({"objective": name, "mask": f"{objective.mask.prob:g} × {objective.mask.span}",
                         "masked_share": float(batch.mask.float().mean()),
                         "expected_share": objective.mask.expected_fraction(frames), "loss": float(loss),
                         "reference_loss": _reference_loss(module, objective, batch),
                         "target_position_share": float(np.mean(position)) if position else float("nan")})
    finally:
        module.train(was_training)
    return pd.DataFrame(rows)


# --- codewords of one clip ----------------------------------------------------------------------------

def clip_codewords(wave: np.ndarray, kind: str, *, k: int, seed: int = 0) -> tuple[np.ndarray, Codebook]:
    """k-means codewords of one clip's own frames: what MERT-style MLM would ask the model to predict.

    Parameters
    ----------
    wave : ndarray
        Mono, 16 kHz; z-normalised here, as the model sees it.
    kind : str
        A :data:`~m2v_lab.pretrain.FEATURE_KINDS` kind or a sum (``"logmel+chroma"``).
    k : int
        Codewords (at most the clip's frame count).
    seed : int

    Returns
    -------
    codes : ndarray of int64, shape (frames,)
        One codeword per model frame (50 per second).
    book : Codebook
    """
    feats = frame_features(m2v_audio.normalize(np.asarray(wave, np.float32)), kind)
    book = Codebook.fit(kind, kind, [feats], k=k, seed=seed, max_frames=len(feats))
    return book.assign(feats), book


def frame_notes(notes: pd.DataFrame, n_frames: int) -> np.ndarray:
    """Which note each model frame belongs to (by the centre of its receptive field); -1 between notes.

    Parameters
    ----------
    notes : DataFrame
        ``start`` and ``end`` in seconds (one clip's rows of :func:`phrases`).
    n_frames : int

    Returns
    -------
    ndarray of int, shape (n_frames,)
        Row position in ``notes``.
    """
    centre = (np.arange(n_frames) * FRAME_HOP + FRAME_WINDOW / 2) / SAMPLE_RATE
    out = np.full(n_frames, -1)
    for i, (start, end) in enumerate(zip(notes["start"], notes["end"])):
        out[(centre >= start) & (centre < end)] = i
    return out


def note_purity(codes: np.ndarray, note_of_frame: np.ndarray) -> float:
    """Share of frames (inside notes) whose codeword is their note's most frequent codeword.

    1.0 when every note is one codeword throughout; low when codewords change within notes.
    """
    codes, note_of_frame = np.asarray(codes), np.asarray(note_of_frame)
    if codes.shape != note_of_frame.shape:
        raise OptionError(f"codes {codes.shape} and note_of_frame {note_of_frame.shape} differ in shape.")
    inside = note_of_frame >= 0
    if not inside.any():
        return float("nan")
    hits = sum(int(np.bincount(codes[note_of_frame == n]).max()) for n in np.unique(note_of_frame[inside]))
    return hits / int(inside.sum())


# --- probes on pooled features extracted once -----------------------------------------------------------

def random_folds(n: int, n_folds: int = 5, *, seed: int = 0) -> np.ndarray:
    """Fold of each of ``n`` samples: a seeded permutation dealt into ``n_folds`` near-equal folds (plain CV)."""
    if not 2 <= n_folds <= n:
        raise OptionError(f"n_folds={n_folds} must be between 2 and n={n}.")
    return np.random.default_rng(seed).permutation(n) % n_folds


def plain_cv(stack: np.ndarray, labels, *, n_folds: int = 5, seed: int = 0, C: float = 1.0) -> np.ndarray:
    """Accuracy per layer of the probe of :func:`~m2v_lab.pretrain.evaluate.probe_accuracy` under plain CV.

    Plain (ungrouped) folds put notes of the same pitch, timbre and octave on both sides of the split, so
    this measures what a layer lets a probe *recognise*, not what it lets it generalise.

    Parameters
    ----------
    stack : ndarray (layers, clips, dim)
        Pooled features (``feats.pooled`` or :func:`~m2v_lab.pretrain.evaluate.pooled_layers`).
    labels : array-like (clips,)
    n_folds, seed : int
        :func:`random_folds`.

    Returns
    -------
    ndarray (layers,)
    """
    stack = np.asarray(stack)
    y = np.asarray(labels)
    folds = random_folds(len(y), n_folds, seed=seed)
    return np.array([ev.probe_accuracy(layer, y, folds, C=C)[0] for layer in stack])


def generalising_probes(stacks: Mapping[str, np.ndarray], table: pd.DataFrame, layer_names: Sequence[str], *,
                        kinds: Mapping[str, str] | None = None, probes: Sequence[str] = tuple(ev.PROBES),
                        split: str = "test", C: float = 1.0) -> pd.DataFrame:
    """:func:`~m2v_lab.pretrain.evaluate.probe_suite`'s rows, from features already extracted.

    Parameters
    ----------
    stacks : mapping of str to ndarray (layers, clips, dim)
        Features per model (a baseline's: ``(1, clips, dim)`` with one layer name).
    kinds : mapping of str to str, optional
        ``"trained"``, ``"random"`` or ``"baseline"`` per name; by default names starting ``"random twin"``
        are random twins (the seed read from the name's end) and every other name is trained.
    table : DataFrame
        The notes, rows in the stacks' clip order (:func:`~m2v_lab.pretrain.synth.additive_table` or
        :func:`~m2v_lab.pretrain.synth.note_table`).
    layer_names : sequence of str
    probes : sequence of str
        Keys of :data:`~m2v_lab.pretrain.evaluate.PROBES`.
    split : str
        Written to the ``split`` column.

    Returns
    -------
    DataFrame
        The columns of :func:`~m2v_lab.pretrain.evaluate.probe_suite`; :func:`~m2v_lab.pretrain.evaluate.verdict`
        and :func:`~m2v_lab.pretrain.evaluate.summarize` take it.
    """
    unknown = sorted(set(probes) - set(ev.PROBES))
    if unknown:
        raise OptionError(f"unknown probes {unknown}; choose from {sorted(ev.PROBES)}.")
    rows = []
    for name, stack in stacks.items():
        stack = np.asarray(stack)
        if stack.ndim != 3 or stack.shape[0] != len(layer_names) or stack.shape[1] != len(table):
            raise OptionError(f"{name!r}: features of shape {stack.shape} for {len(layer_names)} layers and "
                              f"{len(table)} notes.")
        kind = (kinds or {}).get(name) or ("random" if name.startswith("random twin") else "trained")
        if kind not in ("trained", "random", "baseline"):
            raise OptionError(f"kind {kind!r} of {name!r} must be 'trained', 'random' or 'baseline'.")
        last = name.split()[-1]
        seed = int(last) if kind == "random" and last.isdigit() else None
        rows += ev._rows_for(name, kind, stack, list(layer_names), table, probes, C, seed=seed)
    out = pd.DataFrame(rows)
    out["split"] = split
    out["notes"] = "additive" if "fm_index" in table else "soundfont"
    return out


def twin_comparison(results: pd.DataFrame) -> pd.DataFrame:
    """Per probe: the trained model's best layer against the random twins.

    Parameters
    ----------
    results : DataFrame
        :func:`generalising_probes` or :func:`~m2v_lab.pretrain.evaluate.probe_suite` rows with one
        ``kind="trained"`` model and at least one ``kind="random"`` twin.

    Returns
    -------
    DataFrame
        Indexed by probe: ``chance``, ``trained_best``, ``trained_layer`` (its layer name),
        ``twins_best`` (the best twin at its best layer), ``twins_lowest_best`` (the weakest twin at its best
        layer), ``difference`` (``trained_best - twins_best``), and ``verdict``: ``"above every twin"`` when
        ``trained_best > twins_best``, ``"below every twin"`` when ``trained_best < twins_lowest_best``,
        else ``"within the twins"``.
    """
    trained = results[results["kind"] == "trained"]
    random = results[results["kind"] == "random"]
    if trained["model"].nunique() != 1 or random.empty:
        raise OptionError("twin_comparison needs exactly one trained model and at least one random twin.")
    rows = {}
    for probe, part in trained.groupby("probe", sort=False):
        best = part.loc[part["accuracy"].idxmax()]
        per_twin = random[random["probe"] == probe].groupby("model")["accuracy"].max()
        hi, lo = float(per_twin.max()), float(per_twin.min())
        acc = float(best["accuracy"])
        verdict = "above every twin" if acc > hi else "below every twin" if acc < lo else "within the twins"
        rows[probe] = {"chance": float(best["chance"]), "trained_best": acc, "trained_layer": best["layer_name"],
                       "twins_best": hi, "twins_lowest_best": lo, "difference": acc - hi, "verdict": verdict}
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis("probe")


def first_last(history: pd.DataFrame, column: str = "loss", *, share: float = 0.25) -> tuple[float, float]:
    """Mean of ``column`` over the first and the last ``share`` of a training history's rows."""
    if column not in history:
        raise OptionError(f"the history has no column {column!r}; it has {sorted(history.columns)}.")
    values = history[column].to_numpy(dtype=float)
    n = max(1, int(round(share * len(values))))
    return float(np.mean(values[:n])), float(np.mean(values[-n:]))


# --- the exercise's reference solution ------------------------------------------------------------------

def octave_gap(stack: np.ndarray, table: pd.DataFrame, *, n_folds: int = 5, seed: int = 0) -> np.ndarray:
    """Exercise solution: per layer, plain-CV pitch-class accuracy minus octave-held-out accuracy.

    How much of a layer's "knowing the pitch class" is recognising notes it has heard in that octave:
    0 when the pitch class transfers across octaves as well as it is recognised, large when it does not.

    Parameters
    ----------
    stack : ndarray (layers, clips, dim)
    table : DataFrame
        ``pitch_class`` and ``octave`` columns, rows in the stack's clip order.
    n_folds, seed : int
        Plain CV's folds (:func:`random_folds`).

    Returns
    -------
    ndarray (layers,)
    """
    y = table["pitch_class"].to_numpy()
    recognised = plain_cv(stack, y, n_folds=n_folds, seed=seed)
    held_out = np.array([ev.probe_accuracy(layer, y, table["octave"].to_numpy())[0] for layer in np.asarray(stack)])
    return recognised - held_out
