"""Pre-train music2vec-mini: a small music2vec (Data2VecAudioModel) trained with the m-a-p family's objectives.

Recipes (``--recipe``):

``mlm``           MERT-style masked prediction: one codebook of k-means codewords of log-mel frames and one
                  of chroma frames (HuBERT iteration 1 / MERT-v0 style), cross-entropy at masked frames.
``mlm-chroma``    the chroma codebook only.
``mlm+cqt``       ``mlm`` plus MERT's CQT reconstruction head (standardised log-CQT of masked frames).
``data2vec``      music2vec-v1's paradigm: an EMA teacher's top-K feed-forward outputs, instance-normed.
``mlm+data2vec``  both, sharing one student pass.

Data (real music first; nothing the notebooks evaluate on):

- **Wesnoth's soundtrack** — 41 orchestral OGG tracks, 2.14 h, GNU GPL v2+ (Debian/Ubuntu package
  ``wesnoth-1.16-music``, version 1:1.16.9-1: ``sudo apt-get install wesnoth-1.16-music``; the tracks land in
  ``/usr/share/games/wesnoth/1.16/data/core/music``).  ``silence.ogg`` is left out; 3 tracks, chosen with the
  seed, are held out for the validation loss.  Any other folder of audio works (``--corpus DIR``, repeatable).
- **Fresh MIDI renders** — notes, phrases, chords, drum loops, Bach-chorale excerpts that are *not* in the
  teaching set, and small "band" clips, rendered with the teaching set's SoundFont and synthesiser
  (``data/make_teaching_set.py``) from ``--synth-seed`` (not the teaching set's seed 0).  The GM programs of the
  evaluation notes (``m2v_lab.pretrain.synth``: test and validation programs) are left out of them, and every
  render is checked not to be byte-identical to a teaching clip.  They make ``--synthetic-fraction`` (25 %) of
  the crops.

Checkpoints are chosen on *validation* probes only (``m2v_lab.pretrain.evaluate``, ``split="validation"``:
other programs and seed than the test notes); the test probes and the teaching-set probes are run once, on the
chosen checkpoint, for the model card.  Everything is a function of ``--seed`` and ``--synth-seed`` (model
initialisation, crops, masks, k-means, heads), up to floating-point differences between machines.

Usage::

    python data/train_music2vec_mini.py --recipe mlm --steps 600 --seed 0 --work ~/.cache/m2v_lab/mini
    python data/train_music2vec_mini.py --recipe mlm --steps 3000 --seed 0 --out data/models/music2vec-mini \\
        --select-every 500 --test

``--minutes`` caps the training time of one call; the run checkpoints and a second call with the same options
continues it (bit for bit on the same machine and thread count).
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import platform
import shlex
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))  # m2v_lab from this checkout, also when not installed

from m2v_lab import pretrain as pt  # noqa: E402
from m2v_lab.pretrain import evaluate as ev  # noqa: E402
from m2v_lab.pretrain import synth as probe_synth  # noqa: E402

WESNOTH = Path("/usr/share/games/wesnoth/1.16/data/core/music")
RECIPES = ("mlm", "mlm-chroma", "mlm+cqt", "data2vec", "mlm+data2vec")
RENDER_RATE = 24000
MELODIC = tuple(p for p in range(112) if p not in set(probe_synth.TEST_PROGRAMS) | set(probe_synth.VALIDATION_PROGRAMS))
PAD = tuple(p for p in MELODIC if p < 8 or 16 <= p < 32 or 40 <= p < 72 or 80 <= p < 96)
BASS = tuple(p for p in range(32, 40) if p in MELODIC)
DRUM_KITS = (0, 8, 16, 24, 25, 32, 40, 48)
CHORD_SHAPES = {"maj": (0, 4, 7), "min": (0, 3, 7), "dim": (0, 3, 6), "aug": (0, 4, 8), "dom7": (0, 4, 7, 10),
                "maj7": (0, 4, 7, 11), "min7": (0, 3, 7, 10), "m7b5": (0, 3, 6, 10), "sus2": (0, 2, 7),
                "sus4": (0, 5, 7), "6": (0, 4, 7, 9)}
SCALES = {"major": (0, 2, 4, 5, 7, 9, 11), "minor": (0, 2, 3, 5, 7, 8, 10)}


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


# --- synthetic renders ---------------------------------------------------------------------------

def teaching_script(seconds: float):
    """``data/make_teaching_set.py`` as a module, its clip length set to ``seconds``."""
    spec = importlib.util.spec_from_file_location("make_teaching_set", HERE / "make_teaching_set.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    module.CLIP_SECONDS = float(seconds)
    return module


def _notes(mts, seed, n):
    for i in range(n):
        cid = f"notes/{i:05d}"
        rng = mts.clip_rng(seed, cid)
        program = int(rng.choice(MELODIC))
        low, high = (28, 55) if program in BASS else (36, 90)
        count = int(rng.choice([1, 1, 2, 3, 4, 6]))
        t, notes = float(rng.uniform(0.0, 0.4)), []
        for _ in range(count):
            length = rng.uniform(0.4, 3.0) if count == 1 else rng.uniform(0.15, 0.9)
            notes.append((int(rng.integers(low, high + 1)), int(rng.integers(30, 128)), t,
                          min(t + length, mts.CLIP_SECONDS)))
            t += length + rng.uniform(0.0, 0.15)
            if t > mts.CLIP_SECONDS - 0.2:
                break
        yield cid, mts.single_track(program, notes)


def _chords(mts, seed, n):
    for i in range(n):
        cid = f"chords/{i:05d}"
        rng = mts.clip_rng(seed, cid)
        program = int(rng.choice(PAD))
        count = int(rng.choice([1, 2, 3, 4]))
        span = mts.CLIP_SECONDS / count
        arpeggio = rng.random() < 0.3
        notes = []
        for c in range(count):
            start = c * span + rng.uniform(0.0, 0.2)
            end = min(start + rng.uniform(0.6, 1.0) * span + 0.2, mts.CLIP_SECONDS)
            shape = CHORD_SHAPES[str(rng.choice(list(CHORD_SHAPES)))]
            root = int(rng.integers(40, 66))
            inversion = int(rng.integers(0, len(shape)))
            pitches = sorted(root + k + (12 if j < inversion else 0) for j, k in enumerate(shape))
            if rng.random() < 0.5:
                pitches.insert(0, root - 12)
            velocity = int(rng.integers(50, 121))
            step = rng.uniform(0.06, 0.2) if arpeggio else 0.0
            notes += [(p, velocity, min(start + j * step, end - 0.05), end) for j, p in enumerate(pitches)]
        yield cid, mts.single_track(program, notes)


def _rhythm(mts, seed, n):
    for i in range(n):
        cid = f"rhythm/{i:05d}"
        rng = mts.clip_rng(seed, cid)
        yield cid, mts.drum_loop(str(rng.choice(list(mts.DRUM_PATTERNS))), float(rng.uniform(70, 170)),
                                 int(rng.choice(DRUM_KITS)), rng)


def _chorales(mts, seed, pieces, per_piece, exclude):
    from music21 import corpus

    paths = [p for p, title in mts.music_candidates(seed)
             if title is None and f"Chorale {Path(p).stem.upper().replace('BWV', 'BWV ')}" not in exclude][:pieces]
    pm_mod = mts.pretty_midi
    for path in paths:
        notes = []
        for k, part in enumerate(corpus.parse(path).stripTies().parts):
            for el in part.flatten().notes:
                ql = float(el.duration.quarterLength)
                if ql > 0:
                    notes += [(p.midi, int(el.volume.velocity or 80), float(el.offset), float(el.offset) + ql, k)
                              for p in el.pitches]
        if not notes:
            continue
        onsets = sorted({n[2] for n in notes})
        parts = max(n[4] for n in notes) + 1
        for r in range(per_piece):
            cid = f"music/{Path(path).stem}_{r}"
            rng = mts.clip_rng(seed, cid)
            spq = 60.0 / rng.uniform(60.0, 140.0)
            t0 = float(rng.choice(onsets[:max(1, len(onsets) - 8)]))
            transpose = int(rng.integers(-6, 6))
            programs = ([int(rng.choice(PAD))] * parts if rng.random() < 0.5
                        else [int(rng.choice(PAD)) for _ in range(parts)])
            pm = pm_mod.PrettyMIDI()
            for part in range(parts):
                inst = pm_mod.Instrument(program=programs[part])
                for pitch, vel, s, e, p in notes:
                    s, e = (s - t0) * spq, (e - t0) * spq
                    if p == part and 0 <= s < mts.CLIP_SECONDS and 0 <= pitch + transpose <= 127:
                        inst.notes.append(pm_mod.Note(velocity=vel, pitch=pitch + transpose, start=s, end=e))
                pm.instruments.append(inst)
            yield cid, pm


def _band(mts, seed, n):
    pm_mod = mts.pretty_midi
    for i in range(n):
        cid = f"band/{i:05d}"
        rng = mts.clip_rng(seed, cid)
        tonic, scale = int(rng.integers(0, 12)), SCALES[str(rng.choice(list(SCALES)))]
        beat = 60.0 / rng.uniform(70.0, 150.0)
        chord_beats = int(rng.choice([2, 4]))
        degrees = [0] + [int(d) for d in rng.integers(0, 7, size=8)]
        pad = pm_mod.Instrument(program=int(rng.choice(PAD)))
        bass = pm_mod.Instrument(program=int(rng.choice(BASS)))
        t, k = 0.0, 0
        while t < mts.CLIP_SECONDS:
            d = degrees[k % len(degrees)]
            triad = [tonic + scale[(d + j) % 7] + 12 * ((d + j) // 7) for j in (0, 2, 4)]
            end = t + chord_beats * beat
            for p in triad:
                pad.notes.append(pm_mod.Note(velocity=int(rng.integers(50, 100)), pitch=57 + (p - 57) % 12,
                                             start=t, end=end))
            for b in range(chord_beats):
                bass.notes.append(pm_mod.Note(velocity=int(rng.integers(70, 115)), pitch=36 + triad[0] % 12,
                                              start=t + b * beat, end=t + (b + 0.9) * beat))
            t, k = end, k + 1
        pm = pm_mod.PrettyMIDI()
        pm.instruments += [pad, bass]
        if rng.random() < 0.7:
            mel = pm_mod.Instrument(program=int(rng.choice(MELODIC)))
            t, step = 0.0, int(rng.integers(0, 7))
            while t < mts.CLIP_SECONDS:
                length = beat * float(rng.choice([0.5, 0.5, 1.0, 1.5, 2.0]))
                step = int(np.clip(step + rng.integers(-2, 3), -3, 10))
                mel.notes.append(pm_mod.Note(velocity=int(rng.integers(60, 120)),
                                             pitch=60 + tonic + scale[step % 7] + 12 * (step // 7),
                                             start=t, end=t + 0.95 * length))
                t += length
            pm.instruments.append(mel)
        if rng.random() < 0.6:
            pm.instruments += mts.drum_loop(str(rng.choice(list(mts.DRUM_PATTERNS))), 60.0 / beat,
                                            int(rng.choice(DRUM_KITS)), rng).instruments
        yield cid, pm


def render_synthetic(seed: int, n_clips: int, seconds: float, cache: Path) -> pt.AudioCorpus:
    """``n_clips`` renders (notes 30 %, chords 20 %, drums 15 %, chorales 15 %, band 20 %), 16 kHz, cached."""
    path = cache / f"synthetic_seed{seed}_n{n_clips}_{seconds:g}s.npz"
    if path.is_file():
        data = np.load(path)
        log(f"synthetic renders from {path}")
        return pt.AudioCorpus(list(data["audio"]), [str(c) for c in data["ids"]], source=f"MIDI renders (seed {seed})")
    import soundfile as sf
    import soxr

    from m2v_lab.audio import normalize

    mts = teaching_script(seconds)
    teaching = pd.read_csv(HERE / "labels.csv")
    forbidden = set()
    for p in teaching["path"]:
        forbidden.add(hashlib.sha256(sf.read(HERE / p, dtype="int16")[0].tobytes()).hexdigest())
    share = {"notes": 0.30, "chords": 0.20, "rhythm": 0.15, "band": 0.20}
    counts = {k: int(round(v * n_clips)) for k, v in share.items()}
    per_piece = 4
    pieces = max(1, (n_clips - sum(counts.values())) // per_piece)
    sources = [_notes(mts, seed, counts["notes"]), _chords(mts, seed, counts["chords"]),
               _rhythm(mts, seed, counts["rhythm"]),
               _chorales(mts, seed, pieces, per_piece, set(teaching["piece"].dropna())), _band(mts, seed, counts["band"])]
    n_samples = int(round(seconds * RENDER_RATE))
    ids, waves, seen, dropped = [], [], set(), 0
    started = time.perf_counter()
    for source in sources:
        for cid, pm in source:
            samples = mts.finish(mts.render_midi(pm, n_samples=n_samples, sample_rate=RENDER_RATE), None, RENDER_RATE)
            digest = hashlib.sha256(samples.tobytes()).hexdigest()
            if digest in seen or digest in forbidden or not samples.any():
                dropped += 1
                continue
            seen.add(digest)
            wave = soxr.resample(samples.astype(np.float32) / 32768.0, RENDER_RATE, 16000, quality="HQ")
            ids.append(cid)
            waves.append(normalize(wave))
    log(f"rendered {len(ids)} synthetic clips ({dropped} dropped as duplicates or silent) in "
        f"{time.perf_counter() - started:.0f} s")
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, audio=np.stack(waves), ids=np.array(ids))
    tmp.replace(path)
    return pt.AudioCorpus(waves, ids, source=f"MIDI renders (seed {seed})")


# --- targets ---------------------------------------------------------------------------------------

def corpus_key(corpora) -> str:
    h = hashlib.sha256()
    for c in corpora:
        for name, w in zip(c.names, c.waves):
            h.update(f"{name}|{len(w)}|".encode())
            h.update(hashlib.sha256(w[:: max(1, len(w) // 4096)].tobytes()).digest())
    return h.hexdigest()[:16]


def attach_targets(args, train, others, cache: Path) -> dict:
    """Fit (or read) the recipe's codebooks on the training corpora; attach codes to every corpus."""
    wanted = {"mlm": [("logmel", "logmel", args.k_logmel), ("chroma", "chroma", args.k_chroma)],
              "mlm+cqt": [("logmel", "logmel", args.k_logmel), ("chroma", "chroma", args.k_chroma)],
              "mlm+data2vec": [("logmel", "logmel", args.k_logmel), ("chroma", "chroma", args.k_chroma)],
              "mlm-chroma": [("chroma", "chroma", args.k_chroma)], "data2vec": []}[args.recipe]
    if args.codebooks and args.recipe != "data2vec":
        wanted = [(kind, kind, int(k)) for kind, k in (item.split(":") for item in args.codebooks.split(","))]
    key = corpus_key(train)
    books = []
    for name, kind, k in wanted:
        path = cache / f"codebook_{kind}_k{k}_seed{args.seed}_{key}.json"
        if path.is_file():
            book = pt.Codebook.load(path)
        else:
            started = time.perf_counter()
            feats = [f for c in train for f in c.features(kind)]
            book = pt.Codebook.fit(name, kind, feats, k=k, seed=args.seed, max_frames=args.kmeans_frames)
            book.save(path)
            log(f"codebook {name}: k={k} on {book.stats['frames']} frames, {book.stats['used']} used, largest "
                f"{book.stats['largest_share']:.1%}, entropy {book.stats['entropy_bits']:.2f} bits "
                f"({time.perf_counter() - started:.0f} s)")
        books.append(book)
        for c in list(train) + list(others):
            c.add_codes(book)
    cqt = None
    if args.recipe == "mlm+cqt":
        cqt = pt.FrameStandardizer.fit("cqt", [f for c in train for f in c.features("cqt")], seed=args.seed)
        for c in list(train) + list(others):
            c.add_frames("cqt", cqt)
    for c in list(train) + list(others):
        c.drop_features()
    return {"codebooks": books, "cqt": cqt}


def weights_arg(text: str):
    """``--unmasked-weight`` / ``--codebook-weights``: one number, or ``NAME:W,...`` per codebook."""
    if ":" not in text:
        return float(text)
    try:
        return {name.strip(): float(w) for name, w in (item.split(":") for item in text.split(","))}
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: give one number or NAME:WEIGHT,... (e.g. chroma:1,mfcc:0.3)")


def _weights_text(value) -> str:
    return f"{value:g}" if not isinstance(value, dict) else ", ".join(f"{k} {v:g}" for k, v in value.items())


def _any_positive(value) -> bool:
    return any(v > 0 for v in value.values()) if isinstance(value, dict) else value > 0


def make_objective(args, model, targets):
    books = targets["codebooks"]
    d2v = lambda: pt.Data2VecObjective(model, top_k=args.top_k, ema_start=args.ema[0], ema_end=args.ema[1],  # noqa: E731
                                       ema_anneal_steps=int(args.ema[2]), seed=args.seed)
    if args.recipe == "data2vec":
        return d2v()
    mlm = pt.MLMObjective(model, books, cqt_dim=72 if targets["cqt"] is not None else None,
                          cqt_weight=args.cqt_weight, unmasked_weight=args.unmasked_weight,
                          codebook_weights=args.codebook_weights or None, seed=args.seed)
    if args.recipe == "mlm+data2vec":
        return pt.CombinedObjective([mlm, d2v()], weights=[1.0, args.d2v_weight])
    return mlm


# --- selection, evaluation, model card --------------------------------------------------------------

def versions() -> dict:
    from importlib.metadata import version

    names = ("torch", "transformers", "numpy", "scikit-learn", "librosa", "soxr", "soundfile", "pretty_midi",
             "tinysoundfont", "music21", "safetensors")
    out = {"python": platform.python_version()}
    for n in names:
        try:
            out[n] = version(n)
        except Exception:  # noqa: BLE001
            out[n] = "?"
    return out


def hardware() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gpu = f", {torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else ""
    return f"{cpu}, torch threads {torch.get_num_threads()}{gpu}"


def md_table(df: pd.DataFrame, floatfmt="{:.2f}") -> str:
    cols = list(df.columns)
    lines = ["| " + " | ".join(map(str, cols)) + " |", "|" + "---|" * len(cols)]
    for row in df.itertuples(index=False):  # keeps each column's type (iterrows would make integers floats)
        lines.append("| " + " | ".join(floatfmt.format(v) if isinstance(v, float) else str(v) for v in row) + " |")
    return "\n".join(lines)


def probe_table(res: pd.DataFrame) -> str:
    """Per probe: rows = layers, columns = trained, twins 1..n, baselines."""
    parts = []
    for probe in ev.PROBES if "octave_pitch_class" in set(res["probe"]) else sorted(set(res["probe"])):
        sub = res[res["probe"] == probe]
        wide = sub[sub["kind"] != "baseline"].pivot_table(index="layer_name", columns="model", values="accuracy",
                                                          sort=False)
        for _, b in sub[sub["kind"] == "baseline"].iterrows():
            wide[b["model"]] = b["accuracy"]
        wide = wide.reset_index().rename(columns={"layer_name": "layer"})
        parts.append(f"**{probe}** (chance {sub['chance'].iloc[0]:.2f})\n\n{md_table(wide)}")
    return "\n\n".join(parts)


NOTES_TITLES = {
    "soundfont": "General MIDI notes (12 SoundFont programs, C2–B5, seed 20252)",
    "additive": "Additive/FM notes (5 timbres, MIDI 45–80, seed 20252: the issue's protocol)",
}


def model_card(args, argv, info: dict) -> str:
    h = info["history"]
    pick = np.unique(np.linspace(0, len(h) - 1, min(12, len(h))).round().astype(int))
    loss_cols = [c for c in ["step", "lr", "loss", "mlm_logmel", "mlm_logmel_acc", "mlm_chroma", "mlm_chroma_acc", "mlm_cqt", "mlm_cqt_acc",
                             "cqt", "d2v", "target_position_share", "rep_position_share", "audio_per_second"]
                 if c in h.columns]
    curve = md_table(h.iloc[pick][loss_cols].reset_index(drop=True), "{:.3g}")
    test_md = ""
    if info.get("test") is not None:
        test_md = "\n## Test probes (held-out synthetic notes)\n"
        for notes, rows in info["test"].groupby("notes", sort=False):
            v = info["verdict"][notes]
            test_md += (
                f"\n### {NOTES_TITLES[notes]}\n\nMust (timbre across pitch ≥ best random twin + 0.10 at a layer "
                f"whose control ≥ 0.85): **{'met' if v['must_met'] else 'NOT met'}** (best timbre "
                f"{v['timbre_best']:.2f} at layer {v['timbre_best_layer']} vs best twin {v['timbre_best_twin']:.2f}; "
                f"control there {v['control_at_timbre_best']:.2f}, best twin's control {v['control_best_twin']:.2f}).  "
                f"Aim (octave-held-out pitch class ≥ 0.20 and above every random twin): **{'met' if v['aim_met'] else 'not met'}** (best "
                f"{v['octave_best']:.2f}, best twin {v['octave_best_twin']:.2f}).\n\n{probe_table(rows)}\n")
    if info.get("cka") is not None:
        wide = info["cka"].pivot_table(index="layer_name", columns="pair", values="cka", sort=False).reset_index()
        test_md += ("\n### Debiased linear CKA, same layer, trained vs random twins (additive test notes)\n\n"
                    "Twin-vs-twin is what any two random networks of this shape share; trained-vs-twin below it is "
                    f"learned structure.\n\n{md_table(wide.rename(columns={'layer_name': 'layer'}))}\n")
    teach_md = "" if info.get("teaching") is None else f"\n## Teaching-set grouped probes\n\n{probe_table(info['teaching'])}\n"
    sel = info.get("selection")
    sel_md = "" if sel is None or sel.empty else f"\n## Checkpoint selection (validation probes only)\n\n{md_table(sel)}\n"
    command = "python data/train_music2vec_mini.py " + " ".join(shlex.quote(a) for a in argv)
    return f"""---
license: gpl-2.0
library_name: transformers
tags: [music, audio, self-supervised, data2vec, mert, m2v_lab]
---
# music2vec-mini ({args.recipe})

A small music2vec: `Data2VecAudioModel`, {info['layers']} post-LN blocks × {info['hidden']}, {info['heads']} heads,
FFN {4 * info['hidden']}, conv front end {args.conv_dim} × 7 with music2vec-v1's kernels (10,3,3,3,3,2,2) and
strides (5,2,2,2,2,2,2): 16 kHz in, 50 frames/s, receptive field 400 samples; {info['bytes'] / 1e6:.1f} MB of
float32 weights.  A teaching model for m2v_lab, pre-trained on a CPU in minutes: it is **not** a music model to
build on.

## Objective

{info['objective_md']}

## Data

{info['data_md']}

## Training

`{command}`

{info['steps']} steps × {args.batch} crops of {args.crop} s (z-normalised per crop), Adam(W) (β 0.9, 0.98,
ε 1e-6, weight decay 0.01 on matrices), peak lr {args.lr:g}, warm-up {args.warmup:g}, cosine decay to 5 %, grad-norm
clip 1.0, no dropout.  Seed {args.seed} (initialisation, crops, masks, k-means, heads); synthesis seed
{args.synth_seed}.  Wall time {info['train_seconds'] / 60:.1f} min of training ({info['total_seconds'] / 60:.1f} min for the
script's last call: data, targets, the training it did not resume, probes) on {info['hardware']}.  Checkpoint: step {info['chosen_step']}.

Loss curve (means over {args.log_every} steps; full curve in `loss_curve.csv`):

{curve}
{sel_md}{test_md}{teach_md}
## Versions

{", ".join(f"{k} {v}" for k, v in versions().items())}.

## Licence

The weights are trained on Wesnoth's soundtrack (GNU GPL v2 or later) and on audio rendered with TimGM6mb.sf2
(GPL-2, see `data/README.md`); taking the cautious reading that a model trained on them is a derivative work,
they are distributed under the **GNU GPL version 2**.  The training code is MIT, like the rest of m2v_lab.
"""


# --- main ------------------------------------------------------------------------------------------

def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--recipe", choices=RECIPES, default="mlm")
    p.add_argument("--steps", type=int, default=600, help="optimiser updates (the schedule's length)")
    p.add_argument("--minutes", type=float, default=None, help="cap on training time in this call (resumable)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--synth-seed", type=int, default=101, help="seed of the MIDI renders (the teaching set used 0)")
    p.add_argument("--work", type=Path, default=Path("~/.cache/m2v_lab/music2vec-mini").expanduser(),
                   help="decoded audio, renders, codebooks and runs")
    p.add_argument("--run-name", default=None, help="subfolder of WORK/runs (default: recipe and seed)")
    p.add_argument("--out", type=Path, default=None, help="write the chosen model and its card here")
    p.add_argument("--corpus", type=Path, action="append", default=None,
                   help=f"folder of training audio (repeatable; default {WESNOTH})")
    p.add_argument("--validation-tracks", type=int, default=3)
    p.add_argument("--synthetic-clips", type=int, default=800)
    p.add_argument("--synthetic-seconds", type=float, default=4.0)
    p.add_argument("--synthetic-fraction", type=float, default=0.25)
    p.add_argument("--batch", type=int, default=6)
    p.add_argument("--crop", type=float, default=3.0)
    p.add_argument("--lr", type=float, default=5e-4)
    p.add_argument("--warmup", type=float, default=0.08)
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--conv-dim", type=int, default=128)
    p.add_argument("--k-logmel", type=int, default=100)
    p.add_argument("--k-chroma", type=int, default=24)
    p.add_argument("--codebooks", default=None,
                   help="MLM codebooks as KIND:K,... (kinds: logmel, mfcc, chroma, cqt), replacing the recipe's; "
                        "e.g. logmel:100,cqt:128 adds pitch-resolved targets (72 CQT semitones from C2)")
    p.add_argument("--kmeans-frames", type=int, default=200_000)
    p.add_argument("--cqt-weight", type=float, default=1.0)
    p.add_argument("--unmasked-weight", type=weights_arg, default=0.0,
                   help="MLM: weight of unmasked frames (1 - alpha); one number, or NAME:W,... per codebook "
                        "(others 0), e.g. chroma:1")
    p.add_argument("--codebook-weights", type=weights_arg, default=None,
                   help="MLM: factor on each codebook's loss as NAME:W,... (others 1), e.g. mfcc:0.3")
    p.add_argument("--conv-lr-scale", type=float, default=1.0,
                   help="learning-rate factor of the conv front end (HuBERT/MERT scale its gradient by 0.1)")
    p.add_argument("--top-k", type=int, default=3, help="data2vec: teacher blocks averaged")
    p.add_argument("--ema", type=float, nargs=3, default=(0.999, 0.9999, 30000),
                   metavar=("START", "END", "ANNEAL_STEPS"))
    p.add_argument("--d2v-weight", type=float, default=1.0)
    p.add_argument("--log-every", type=int, default=10)
    p.add_argument("--checkpoint-every", type=int, default=50)
    p.add_argument("--select-every", type=int, default=None,
                   help="snapshot every N steps and choose the best on the validation probes (default: last only)")
    p.add_argument("--test", action="store_true", help="run the test probes (and --teaching) on the chosen model")
    p.add_argument("--teaching", action="store_true", help="also the teaching-set grouped probes (with --test)")
    p.add_argument("--twins", type=int, default=3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--device", default="auto")
    return p.parse_args(argv)


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    work = args.work.expanduser()
    (work / "decoded").mkdir(parents=True, exist_ok=True)
    folders = args.corpus or [WESNOTH]
    if folders == [WESNOTH] and not WESNOTH.is_dir():
        print(f"{WESNOTH} not found: install Wesnoth's soundtrack with `sudo apt-get install wesnoth-1.16-music` "
              "(Debian/Ubuntu; GPL-2+, 2.1 h of OGG), or pass --corpus DIR with audio of your own.", file=sys.stderr)
        return 2
    real = pt.AudioCorpus.from_folders(folders, cache_dir=work / "decoded", exclude=["silence.ogg"],
                                       min_seconds=args.crop, log=log,
                                       source="Wesnoth soundtrack (wesnoth-1.16-music)" if folders == [WESNOTH]
                                       else ", ".join(map(str, folders)))
    real_train, real_val = real.split(args.validation_tracks, seed=args.seed)
    sources = [real_train]
    weights = [1.0]
    synthetic = None
    if args.synthetic_fraction > 0 and args.synthetic_clips > 0:
        synthetic = render_synthetic(args.synth_seed, args.synthetic_clips, args.synthetic_seconds, work)
        sources.append(synthetic)
        weights = [1.0 - args.synthetic_fraction, args.synthetic_fraction]
    t0 = time.perf_counter()
    targets = attach_targets(args, sources, [real_val], work)
    log(f"targets ready ({time.perf_counter() - t0:.0f} s)")

    config = pt.mini_config(hidden_size=args.hidden, num_layers=args.layers, num_heads=args.heads,
                            conv_dim=args.conv_dim)
    model = pt.build_model(config, seed=args.seed)
    objective = make_objective(args, model, targets)
    run = work / "runs" / (args.run_name or f"{args.recipe}-seed{args.seed}")
    result = pt.pretrain(model, sources, objective, steps=args.steps, batch_size=args.batch, crop_seconds=args.crop,
                         lr=args.lr, warmup=args.warmup, seed=args.seed, weights=weights, checkpoint_dir=run,
                         conv_lr_scale=args.conv_lr_scale,
                         checkpoint_every=args.checkpoint_every, snapshot_every=args.select_every or args.steps,
                         log_every=args.log_every, validation=real_val, validation_batches=4,
                         validate_every=max(args.checkpoint_every, 50), max_seconds=None if args.minutes is None
                         else 60 * args.minutes, device=args.device, progress=False, log=log)
    result.history.to_csv(run / "loss_curve.csv", index=False)
    if result.stopped_early:
        log(f"stopped at step {result.steps_done}/{args.steps}; run the same command again to continue")
        return 0

    # choose a checkpoint on the validation probes
    selection = []
    chosen_step = result.steps_done
    if args.select_every:
        tables = [probe_synth.note_table(probe_synth.VALIDATION_PROGRAMS, seed=ev.SPLIT_SEEDS["validation"]),
                  probe_synth.additive_table(seed=ev.SPLIT_SEEDS["validation"])]
        renders = [(t, probe_synth.render_table(t) if i == 0 else probe_synth.render_additive(t))
                   for i, t in enumerate(tables)]
        twins = None  # random twins do not change between snapshots: probe them once
        for step, path in result.snapshots:
            pt.load_snapshot(model, path)
            res = pd.concat([ev.probe_suite(model, split="validation", notes="soundfont" if i == 0 else "additive",
                                            n_twins=args.twins if twins is None else 0, baselines=False,
                                            waves=w, table=t) for i, (t, w) in enumerate(renders)])
            if twins is None:
                twins = res[res["kind"] == "random"]
            res = pd.concat([res[res["kind"] == "trained"], twins])
            selection.append({"step": step, **ev.checkpoint_summary(res)})
            log(f"validation probes at step {step}: " + ", ".join(
                f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}" for k, v in selection[-1].items()))
        # the rule (declared before runs I onward): the Must on the validation notes first, then the Aim, then
        # the sum of best-layer accuracies (ev.selection_key)
        best = max(selection, key=ev.selection_key)
        chosen_step = best["step"]
        pt.load_snapshot(model, dict(result.snapshots)[chosen_step])
        pd.DataFrame(selection).to_csv(run / "selection.csv", index=False)
    train_seconds = result.seconds

    info = {"history": result.history, "selection": pd.DataFrame(selection), "chosen_step": chosen_step,
            "steps": result.steps_done, "train_seconds": train_seconds, "hardware": hardware(),
            "layers": args.layers, "hidden": args.hidden, "heads": args.heads, "bytes": pt.weights_bytes(config)}
    if args.test:
        loaded = ev.as_loaded(model, name=f"music2vec-mini ({args.recipe})")
        info["test"] = pd.concat([ev.probe_suite(loaded, split="test", notes=notes, n_twins=args.twins, log=log)
                                  for notes in ev.NOTES], ignore_index=True)
        info["test"].to_csv(run / "test_probes.csv", index=False)
        info["verdict"] = {notes: ev.verdict(rows) for notes, rows in info["test"].groupby("notes")}
        log(f"test verdict: {info['verdict']}")
        notes = probe_synth.additive_table(seed=ev.SPLIT_SEEDS["test"])
        info["cka"] = ev.cka_against_twins(loaded, probe_synth.render_additive(notes), n_twins=args.twins)
        info["cka"].to_csv(run / "cka_against_twins.csv", index=False)
        if args.teaching:
            info["teaching"] = ev.teaching_probes(loaded, n_twins=args.twins, log=log)
            info["teaching"].to_csv(run / "teaching_probes.csv", index=False)
    info["total_seconds"] = time.perf_counter() - started
    books = targets["codebooks"]
    info["objective_md"] = {
        "data2vec": f"data2vec (music2vec-v1's paradigm): an EMA teacher (encoder only, front end shared; decay "
                    f"{args.ema[0]} → {args.ema[1]} over {int(args.ema[2])} updates) on the unmasked input; targets "
                    f"= its top {args.top_k} blocks' feed-forward outputs, instance-normed over time, averaged; "
                    "squared error / √dim on masked frames (spans of 10, mask_prob 0.65).",
    }.get(args.recipe, "MERT-style masked prediction (HuBERT iteration 1): cross-entropy at masked frames (spans "
          "of 10, mask_prob 0.8) on " + ", ".join(f"{b.k} k-means codewords of {b.kind} frames" for b in books)
          + " computed at the model's 50 Hz frames (fitted with MiniBatchKMeans, seed "
          f"{args.seed}, on {books[0].stats.get('frames', '?') if books else 0} training frames)"
          + (f"; plus a CQT reconstruction head (72 semitones, weight {args.cqt_weight})" if args.recipe == "mlm+cqt"
             else "")
          + ("; plus data2vec as above" if args.recipe == "mlm+data2vec" else "")
          + (f"; losses weighted {_weights_text(args.codebook_weights)}" if args.codebook_weights else "")
          + (f"; unmasked frames are predicted too, with weight {_weights_text(args.unmasked_weight)} (HuBERT's "
             "1 − α), which keeps each frame's own content in the representation"
             if _any_positive(args.unmasked_weight) else "") + ".")
    synth_md = "" if synthetic is None else (
        f"\n- **MIDI renders**: {len(synthetic)} clips of {args.synthetic_seconds:g} s "
        f"({synthetic.seconds / 60:.0f} min; seed {args.synth_seed}), {args.synthetic_fraction:.0%} of crops, "
        "rendered by this script with the teaching set's SoundFont (TimGM6mb.sf2, GPL-2) and synthesiser; the "
        "evaluation programs, the teaching set's pieces and byte-identical teaching clips are excluded.")
    info["data_md"] = (f"- **{real.source}**: {len(real_train)} tracks, {real_train.seconds / 3600:.2f} h for training, "
                       f"{len(real_val)} held out for the validation loss ({', '.join(Path(n).name for n in real_val.names)}); "
                       "GNU GPL v2+ (Debian package wesnoth-1.16-music 1:1.16.9-1, "
                       "/usr/share/games/wesnoth/1.16/data/core/music)." + synth_md
                       + "\n- Never the teaching set (`data/audio/`), which the notebooks evaluate on.")
    if args.out is not None:
        from transformers import Wav2Vec2FeatureExtractor

        out = args.out
        out.mkdir(parents=True, exist_ok=True)
        model.eval().save_pretrained(out)
        Wav2Vec2FeatureExtractor(feature_size=1, sampling_rate=16000, padding_value=0.0, do_normalize=True,
                                 return_attention_mask=False).save_pretrained(out)
        result.history.to_csv(out / "loss_curve.csv", index=False)
        from m2v_lab.models import load_model

        # what caches key on; tests/test_models_bundled.py checks that loading reproduces it
        info["fingerprint"] = load_model(out, device="cpu").fingerprint
        (out / "README.md").write_text(model_card(args, argv, info))
        (out / "training.json").write_text(json.dumps({
            "recipe": args.recipe, "args": {k: str(v).replace(str(Path.home()), "~") for k, v in vars(args).items()}, "chosen_step": chosen_step,
            "steps": result.steps_done, "train_seconds": train_seconds, "verdict": info.get("verdict"),
            "codebooks": [{"name": b.name, "kind": b.kind, "k": b.k, "digest": b.digest(), **b.stats} for b in books],
            "fingerprint": info["fingerprint"], "versions": versions(), "hardware": info["hardware"]}, indent=1))
        log(f"wrote {out}")
    else:
        (run / "README.md").write_text(model_card(args, argv, info))
    log(f"done in {(time.perf_counter() - started) / 60:.1f} min")
    return 0


if __name__ == "__main__":
    sys.exit(main())
