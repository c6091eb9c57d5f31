"""Render the m2v_lab teaching set: short labelled clips synthesised from MIDI.

Four subsets, each a balanced design (see ``data/README.md`` for the tables).  The
``group`` column is what grouped cross-validation keeps in one fold; every group
is chosen so that each task of the notebooks and of ``teaching_probes`` keeps
every class in every training fold of ``StratifiedGroupKFold(5, shuffle=True,
random_state=0)`` (checked by ``tests/test_teaching_set.py``):

``notes``
    Isolated notes, NSynth-like: 8 General MIDI families x 4 programs x 12 pitch
    classes, one note held 1.0 s, then its release; each family plays every MIDI pitch
    48-71 (C3-B4) twice and three velocities (40, 80, 120) rotate through the grid.
    group = the instrument: a held-out instrument's family keeps three others in
    training, and every instrument plays every pitch class and both octaves.
``chords``
    Block chords: 5 qualities (maj, min, dim, aug, dom7) x all 12 roots x 3 of 4
    instruments, held 1.0 s, root position over a doubled bass root.  group = the root: a
    held-out root takes all its qualities and instruments along, so no quality is
    ever held out entirely and a probe must recognise qualities on unseen roots.
``rhythm``
    GM percussion loops: 6 drum patterns x 4 tempi (80-140 BPM) x 3 drum kits.
    group = the loop (pattern + kit) at every tempo: every tempo is in every
    group, and each pattern has one group per kit.
``music``
    Openings of pieces from the music21 corpus (Bach chorales and others),
    18 major and 18 minor pieces, each rendered twice with different
    instruments and transpositions so that every (mode, tonic) cell holds 3 clips.
    group = the source piece.

Every clip is a :class:`pretty_midi.PrettyMIDI` object rendered with the
General MIDI SoundFont shipped with pretty_midi (TimGM6mb.sf2) by
tinysoundfont, for exactly ``CLIP_SECONDS`` (the synthesiser is stepped for an
exact sample count, so no MIDI input can make it render forever).  Audio is mono,
24 kHz, 16-bit FLAC.  Output is a deterministic function of the seed and the
versions of the packages recorded in ``data/README.md``.

Usage::

    python data/make_teaching_set.py --out data --seed 0
    python data/make_teaching_set.py --out /tmp/ts --subset notes --limit 8
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import pretty_midi
import soundfile as sf
import tinysoundfont

SAMPLE_RATE = 24000
CLIP_SECONDS = 3.0
SUBSETS = ("notes", "chords", "rhythm", "music")
SOUNDFONT = Path(pretty_midi.__file__).parent / "TimGM6mb.sf2"

PITCH_CLASSES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")

# Level policy.  Notes keep the loudness differences that velocity makes, so one
# gain per program is derived from a reference note; every other clip is
# normalised on its own.  All clips are then limited to the peak ceiling.
TARGET_RMS_DBFS = -23.0  # about the EBU R128 programme level
NOTE_REFERENCE = (60, 80)  # (MIDI pitch, velocity) whose RMS meets TARGET_RMS_DBFS ...
NOTE_REFERENCE_PEAK_DBFS = -9.0  # ... unless its peak would pass this (percussive programs)
PEAK_CEILING_DBFS = -1.0
FADE_SECONDS = 0.02  # raised-cosine fade-out, so that cut notes do not click

# Column order of labels.csv; a row leaves the columns of other subsets empty.
LABEL_COLUMNS = (
    "clip_id", "path", "subset", "group",
    "instrument", "gm_program", "instrument_family",
    "midi_pitch", "pitch_class", "octave", "velocity",
    "chord_root", "chord_quality",
    "tempo_bpm", "drum_pattern", "drum_kit",
    "piece", "composer", "key", "tonic", "mode", "source_key", "transpose",
)

# --- notes -------------------------------------------------------------------
# GM programs of music2vec-mini's evaluation notes (m2v_lab.pretrain.synth): the notes
# below avoid them, so the teaching set never shows a probe those exact timbres.
EVALUATION_PROGRAMS = {
    "validation": (1, 4, 13, 21, 25, 32, 41, 48, 57, 65, 71, 80),
    "test": (0, 6, 11, 19, 24, 33, 40, 42, 56, 60, 68, 73),
}
PROGRAMS_PER_FAMILY = 4
NOTE_PROGRAMS = (  # four GM programs from each of 8 families, in family order
    2, 3, 5, 7,      # Piano: the only four that are not evaluation programs
    8, 10, 12, 15,   # Chromatic Percussion (tubular bells, glockenspiel: pitch too ambiguous)
    20, 21, 22, 23,  # Organ: 21 is a validation program, reused (16-19 sound a 16-foot sub-octave)
    26, 27, 28, 29,  # Guitar
    34, 35, 36, 38,  # Bass
    43, 44, 45, 46,  # Strings (timpani left out)
    58, 59, 61, 62,  # Brass
    66, 67, 69, 70,  # Reed
)
NOTE_VELOCITIES = (40, 80, 120)
NOTE_LOWEST = 48  # C3; the grid spans C3-B4
NOTE_HOLD_SECONDS = 1.0  # then the program's own release; 3 s keeps the tail

# --- chords ------------------------------------------------------------------
CHORD_QUALITIES = {
    "maj": (0, 4, 7),
    "min": (0, 3, 7),
    "dim": (0, 3, 6),
    "aug": (0, 4, 8),
    "dom7": (0, 4, 7, 10),
}
CHORD_PROGRAMS = (0, 24, 48, 16)  # piano, nylon guitar, string ensemble, drawbar organ
CHORD_INSTRUMENTS_PER_CHORD = 3  # of CHORD_PROGRAMS, rotating with root and quality
CHORD_ROOT_LOWEST = 48
CHORD_VELOCITY = 90
CHORD_HOLD_SECONDS = 1.0

# --- rhythm ------------------------------------------------------------------
TEMPI = (80, 100, 120, 140)
DRUM_KITS = {"standard": 0, "electronic": 24, "brush": 40}
KICK, SIDE_STICK, SNARE, CLAP, CLOSED_HAT, OPEN_HAT, RIDE = 36, 37, 38, 39, 42, 46, 51
# pattern -> (steps per beat, steps per bar, {GM key: [(step, velocity), ...]})
DRUM_PATTERNS = {
    "rock": (4, 16, {
        KICK: [(0, 110), (8, 110), (10, 90)],
        SNARE: [(4, 110), (12, 110)],
        CLOSED_HAT: [(s, 80) for s in range(0, 16, 2)],
    }),
    "four_on_the_floor": (4, 16, {
        KICK: [(s, 115) for s in range(0, 16, 4)],
        CLAP: [(4, 100), (12, 100)],
        OPEN_HAT: [(s, 80) for s in range(2, 16, 4)],
    }),
    "funk": (4, 16, {
        KICK: [(0, 110), (3, 90), (6, 100), (10, 100)],
        SNARE: [(4, 110), (7, 45), (9, 45), (12, 110), (15, 45)],
        CLOSED_HAT: [(s, 85 if s % 2 == 0 else 60) for s in range(16)],
    }),
    "half_time": (4, 16, {
        KICK: [(0, 110), (10, 95)],
        SNARE: [(8, 115)],
        CLOSED_HAT: [(s, 80) for s in range(0, 16, 2)],
    }),
    "bossa_nova": (4, 16, {
        KICK: [(0, 100), (3, 80), (4, 100), (7, 80), (8, 100), (11, 80), (12, 100), (15, 80)],
        SIDE_STICK: [(0, 95), (3, 95), (6, 95), (10, 95), (13, 95)],
        CLOSED_HAT: [(s, 70) for s in range(0, 16, 2)],
    }),
    "shuffle": (3, 12, {  # swung eighths on a triplet grid
        KICK: [(0, 110), (6, 110)],
        SNARE: [(3, 110), (9, 110)],
        RIDE: [(s, 90 if s % 3 == 0 else 65) for s in range(12) if s % 3 != 1],
    }),
}
DRUM_HIT_SECONDS = 0.1
VELOCITY_JITTER = 6     # uniform +-, humanises the loops
TIMING_JITTER_SECONDS = 0.004  # normal sigma

# --- music -------------------------------------------------------------------
# Non-Bach candidates; Bach chorales are drawn from music21's corpus by seed.
MUSIC_OTHERS = (
    ("mozart/k545/movement1_exposition", "Piano Sonata K. 545, i (exposition)"),
    ("haydn/opus74no1/movement1", "String Quartet Op. 74 No. 1, i"),
    ("mozart/k156/movement1", "String Quartet K. 156, i"),
    ("mozart/k156/movement2", "String Quartet K. 156, ii"),
    ("verdi/laDonnaEMobile", "La donna e mobile (Rigoletto)"),
    ("corelli/opus3no1/1grave.xml", "Trio Sonata Op. 3 No. 1, Grave"),
    ("schubert/Lindenbaum", "Der Lindenbaum (Winterreise)"),
    ("schumann_robert/dichterliebe_no2", "Dichterliebe No. 2"),
    ("cpebach/h186.mxl", "Keyboard piece H. 186"),
    ("beethoven/opus59no2/movement1", "String Quartet Op. 59 No. 2, i"),
)
COMPOSERS = {"bach": "J. S. Bach", "mozart": "W. A. Mozart", "haydn": "J. Haydn", "verdi": "G. Verdi",
             "corelli": "A. Corelli", "schubert": "F. Schubert", "schumann_robert": "R. Schumann",
             "cpebach": "C. P. E. Bach", "beethoven": "L. van Beethoven"}
MUSIC_PIECES_PER_MODE = 18
MUSIC_RENDERS_PER_PIECE = 2
MUSIC_PROGRAMS = (0, 48, 19, 52)  # piano, string ensemble, church organ, choir aahs
MUSIC_QUARTER_BPM = 96
MUSIC_VELOCITY = 80  # for notes without a dynamic
MUSIC_OPENING_MEASURES = 4  # the opening must agree with the whole piece's key


@dataclasses.dataclass
class Clip:
    """One planned clip: its labels and the MIDI that renders it."""

    clip_id: str
    subset: str
    group: str
    labels: dict
    midi: pretty_midi.PrettyMIDI

    @property
    def path(self) -> str:
        return f"audio/{self.clip_id}.flac"


def clip_rng(seed: int, clip_id: str) -> np.random.Generator:
    """A generator that depends only on the seed and the clip, not on render order."""
    return np.random.default_rng([seed, zlib.crc32(clip_id.encode())])


def note_name(midi_pitch: int) -> tuple[str, int]:
    """(pitch class name, octave) in scientific pitch notation (MIDI 60 = C4)."""
    return PITCH_CLASSES[midi_pitch % 12], midi_pitch // 12 - 1


def program_labels(program: int) -> dict:
    return {
        "instrument": pretty_midi.program_to_instrument_name(program),
        "gm_program": program,
        "instrument_family": pretty_midi.program_to_instrument_class(program),
    }


def slug(text: str) -> str:
    keep = "".join(c.lower() if c.isalnum() else "_" for c in text)
    return "_".join(part for part in keep.split("_") if part)


def single_track(program: int, notes, *, is_drum: bool = False) -> pretty_midi.PrettyMIDI:
    """A MIDI object with one instrument; ``notes`` are (pitch, velocity, start, end)."""
    pm = pretty_midi.PrettyMIDI()
    inst = pretty_midi.Instrument(program=program, is_drum=is_drum)
    inst.notes = [pretty_midi.Note(velocity=int(v), pitch=int(p), start=float(s), end=float(e))
                  for p, v, s, e in notes]
    pm.instruments.append(inst)
    return pm


# --- planning ----------------------------------------------------------------

def plan_notes(seed: int) -> list[Clip]:
    """32 programs x 12 pitch classes; octave and velocity rotate (see module doc).

    The first and third program of each family play even pitch classes in octave 3
    and odd ones in octave 4, the second and fourth the reverse, so each family x
    MIDI pitch cell holds two clips and each program plays both octaves six times.
    group = the instrument: a grouped split never shows a probe the held-out
    instrument, which is what NSynth's instrument-level split does, and its family
    keeps PROGRAMS_PER_FAMILY - 1 instruments in training.
    """
    del seed  # the grid is fixed; nothing random in isolated notes
    clips = []
    for i, program in enumerate(NOTE_PROGRAMS):
        for pc in range(12):
            octave_offset = (pc + i % PROGRAMS_PER_FAMILY) % 2
            midi_pitch = NOTE_LOWEST + 12 * octave_offset + pc
            velocity = NOTE_VELOCITIES[(pc + i) % 3]
            labels = program_labels(program)
            name, octave = note_name(midi_pitch)
            labels.update(midi_pitch=midi_pitch, pitch_class=name, octave=octave, velocity=velocity)
            inst_slug = slug(labels["instrument"])
            clips.append(Clip(
                clip_id=f"notes/{inst_slug}_{name.replace('#', 's')}{octave}_v{velocity}",
                subset="notes",
                group=f"notes/{inst_slug}",
                labels=labels,
                midi=single_track(program, [(midi_pitch, velocity, 0.0, NOTE_HOLD_SECONDS)]),
            ))
    return clips


def plan_chords(seed: int) -> list[Clip]:
    """5 qualities x 12 roots, each on 3 of 4 instruments; group = the root.

    Chord (quality q, root r) leaves out instrument (r + q + 3) mod 4 of CHORD_PROGRAMS
    (C maj: the organ) and keeps the others in CHORD_PROGRAMS order, so every quality
    meets every instrument on 9 roots.  Grouping by root keeps all renders of one
    chord together (no near-copy straddles folds) and every quality in every group.
    """
    del seed
    clips = []
    n_programs = len(CHORD_PROGRAMS)
    if CHORD_INSTRUMENTS_PER_CHORD != n_programs - 1:  # the rotation below leaves out exactly one
        raise ValueError("CHORD_INSTRUMENTS_PER_CHORD must be len(CHORD_PROGRAMS) - 1")
    for q, (quality, intervals) in enumerate(CHORD_QUALITIES.items()):
        for root in range(12):
            base = CHORD_ROOT_LOWEST + root
            pitches = [base - 12] + [base + k for k in intervals]
            left_out = (root + q + 3) % n_programs
            for program in (prog for k, prog in enumerate(CHORD_PROGRAMS) if k != left_out):
                labels = program_labels(program)
                labels.update(chord_root=PITCH_CLASSES[root], chord_quality=quality)
                root_slug = PITCH_CLASSES[root].replace("#", "s")
                clips.append(Clip(
                    clip_id=f"chords/{root_slug}{quality}_{slug(labels['instrument'])}",
                    subset="chords",
                    group=f"chords/root_{root_slug}",
                    labels=labels,
                    midi=single_track(program, [(p, CHORD_VELOCITY, 0.0, CHORD_HOLD_SECONDS)
                                                for p in pitches]),
                ))
    return clips


def drum_loop(pattern: str, tempo_bpm: float, kit_program: int, rng: np.random.Generator):
    steps_per_beat, steps_per_bar, hits = DRUM_PATTERNS[pattern]
    step_seconds = 60.0 / tempo_bpm / steps_per_beat
    n_bars = int(np.ceil(CLIP_SECONDS / (steps_per_bar * step_seconds)))
    notes = []
    for bar in range(n_bars):
        for key in sorted(hits):
            for step, velocity in hits[key]:
                onset = (bar * steps_per_bar + step) * step_seconds
                if onset >= CLIP_SECONDS:
                    continue
                onset = max(0.0, onset + rng.normal(0.0, TIMING_JITTER_SECONDS))
                vel = int(np.clip(velocity + rng.integers(-VELOCITY_JITTER, VELOCITY_JITTER + 1), 1, 127))
                notes.append((key, vel, onset, onset + DRUM_HIT_SECONDS))
    return single_track(kit_program, notes, is_drum=True)


def plan_rhythm(seed: int) -> list[Clip]:
    """6 patterns x 4 tempi x 3 kits; group = pattern + kit (one loop at every tempo)."""
    clips = []
    for pattern in DRUM_PATTERNS:
        for kit, kit_program in DRUM_KITS.items():
            for tempo in TEMPI:
                clip_id = f"rhythm/{pattern}_{kit}_{tempo}bpm"
                clips.append(Clip(
                    clip_id=clip_id,
                    subset="rhythm",
                    group=f"rhythm/{pattern}_{kit}",
                    labels={"tempo_bpm": tempo, "drum_pattern": pattern, "drum_kit": kit},
                    midi=drum_loop(pattern, tempo, kit_program, clip_rng(seed, clip_id)),
                ))
    return clips


def _score_key(score, music21):
    """The piece's key if the key signature, the whole piece and its opening agree, else None."""
    signatures = score.flatten().getElementsByClass(music21.key.KeySignature)
    if len(signatures) == 0 or len(score.parts) == 0:
        return None
    whole = score.analyze("key")
    opening = score.measures(0, MUSIC_OPENING_MEASURES).analyze("key")
    same = (whole.tonic.pitchClass == opening.tonic.pitchClass and whole.mode == opening.mode)
    if not same or whole.mode not in ("major", "minor") or whole.sharps != signatures[0].sharps:
        return None
    return whole


def _opening_midi(score) -> pretty_midi.PrettyMIDI:
    """The score's first CLIP_SECONDS as MIDI at MUSIC_QUARTER_BPM (its own tempo marks ignored).

    Built note by note from the parsed score rather than through music21's MIDI
    writer, which expands repeats and fails on some corpus files.
    """
    seconds_per_quarter = 60.0 / MUSIC_QUARTER_BPM
    notes = []
    for part in score.stripTies().parts:
        for element in part.flatten().notes:
            if element.duration.quarterLength <= 0:  # grace notes
                continue
            start = float(element.offset) * seconds_per_quarter
            end = start + float(element.duration.quarterLength) * seconds_per_quarter
            velocity = element.volume.velocity or MUSIC_VELOCITY
            notes.extend((p.midi, velocity, start, end) for p in element.pitches)
    t0 = min(n[2] for n in notes)
    opening = [(p, v, s - t0, e - t0) for p, v, s, e in notes if s - t0 < CLIP_SECONDS]
    return single_track(0, sorted(opening, key=lambda n: (n[2], n[0])))


def _arranged(pm: pretty_midi.PrettyMIDI, program: int, transpose: int) -> pretty_midi.PrettyMIDI:
    """``pm`` on one GM program, transposed by ``transpose`` semitones."""
    notes = [(n.pitch + transpose, n.velocity, n.start, n.end)
             for n in pm.instruments[0].notes if 0 <= n.pitch + transpose <= 127]
    return single_track(program, notes)


def music_candidates(seed: int):
    """Corpus paths in the order they are tried: seed-shuffled 4-part Bach chorales, then others."""
    from music21 import corpus

    chorales = sorted(
        (p for p in corpus.getComposer("bach") if p.suffix == ".mxl" and p.stem.count(".") == 1
         and "-" not in p.stem),
        key=lambda p: p.name)
    order = np.random.default_rng(seed).permutation(len(chorales))
    others = [(path, title) for path, title in MUSIC_OTHERS]
    return others + [(chorales[i], None) for i in order]


def select_pieces(seed: int, per_mode: int = MUSIC_PIECES_PER_MODE) -> list[dict]:
    """Pieces whose key is unambiguous (see _score_key), ``per_mode`` major and minor.

    Returns dicts with piece, composer, key (music21 Key), midi, in candidate order
    within each mode.
    """
    import music21
    from music21 import corpus

    chosen = {"major": [], "minor": []}
    for path, title in music_candidates(seed):
        if all(len(v) >= per_mode for v in chosen.values()):
            break
        score = corpus.parse(path)
        key = _score_key(score, music21)
        if key is None or len(chosen[key.mode]) >= per_mode:
            continue
        if title is None:
            if len(score.parts) != 4:
                continue
            title = f"Chorale {Path(path).stem.upper().replace('BWV', 'BWV ')}"
        chosen[key.mode].append({
            "piece": title,
            "composer": COMPOSERS[Path(path).parts[0] if isinstance(path, str) else "bach"],
            "key": key,
            "midi": _opening_midi(score),
        })
    short = {mode: per_mode - len(v) for mode, v in chosen.items() if len(v) < per_mode}
    if short:
        raise RuntimeError(f"music21 corpus gave too few pieces with an unambiguous key: short by {short}")
    return chosen["major"] + chosen["minor"]


def plan_music(seed: int) -> list[Clip]:
    """Each selected piece rendered twice; (mode, tonic) balanced; group = the piece.

    Within a mode the renders are numbered s = 0, 1, ... in piece order; render s
    goes to tonic 7*s mod 12 (a fifth apart for one piece's two renders) on
    instrument (s + s // 12) mod 4, so the renders of one tonic use different
    instruments and every instrument gets the same count.
    """
    pieces = select_pieces(seed)
    clips = []
    for mode in ("major", "minor"):
        in_mode = [p for p in pieces if p["key"].mode == mode]
        for i, piece in enumerate(in_mode):
            for r in range(MUSIC_RENDERS_PER_PIECE):
                s = MUSIC_RENDERS_PER_PIECE * i + r
                tonic = (7 * s) % 12
                transpose = (tonic - piece["key"].tonic.pitchClass + 6) % 12 - 6  # in -6..5
                program = MUSIC_PROGRAMS[(s + s // 12) % len(MUSIC_PROGRAMS)]
                labels = program_labels(program)
                labels.update(
                    piece=piece["piece"], composer=piece["composer"],
                    key=f"{PITCH_CLASSES[tonic]} {mode}", tonic=PITCH_CLASSES[tonic], mode=mode,
                    source_key=f"{PITCH_CLASSES[piece['key'].tonic.pitchClass]} {mode}", transpose=transpose,
                )
                piece_slug = slug(piece["piece"])
                clips.append(Clip(
                    clip_id=f"music/{piece_slug}_{PITCH_CLASSES[tonic].replace('#', 's')}_{mode}"
                            f"_{slug(labels['instrument'])}",
                    subset="music",
                    group=f"music/{piece_slug}",
                    labels=labels,
                    midi=_arranged(piece["midi"], program, transpose),
                ))
    return clips


PLANNERS = {"notes": plan_notes, "chords": plan_chords, "rhythm": plan_rhythm, "music": plan_music}


def plan(seed: int = 0, subsets=SUBSETS) -> list[Clip]:
    """Every clip of the chosen subsets, in a fixed order."""
    unknown = set(subsets) - set(SUBSETS)
    if unknown:
        raise ValueError(f"unknown subsets {sorted(unknown)}; choose from {SUBSETS}")
    return [clip for subset in SUBSETS if subset in subsets for clip in PLANNERS[subset](seed)]


def spread(clips: list[Clip], limit: int | None) -> list[Clip]:
    """``limit`` clips evenly spaced through ``clips`` (all when limit is None)."""
    if limit is None or limit >= len(clips):
        return clips
    picks = np.linspace(0, len(clips) - 1, limit).round().astype(int)
    return [clips[i] for i in picks]


# --- rendering ---------------------------------------------------------------

_SOUNDFONT_BYTES: dict[str, bytes] = {}


def _soundfont(path: Path) -> bytes:
    key = str(path)
    if key not in _SOUNDFONT_BYTES:
        _SOUNDFONT_BYTES[key] = Path(path).read_bytes()
    return _SOUNDFONT_BYTES[key]


def render_midi(pm: pretty_midi.PrettyMIDI, *, n_samples: int, sample_rate: int = SAMPLE_RATE,
                soundfont: Path = SOUNDFONT) -> np.ndarray:
    """Render ``pm`` to exactly ``n_samples`` mono float32 samples.

    A fresh synthesiser per call keeps clips independent of render order.  Events
    at or after the last sample are never sent, so the length bound holds for any
    MIDI input.  Controllers and pitch bends are ignored (the planned clips have none).
    """
    synth = tinysoundfont.Synth(samplerate=sample_rate)
    sfid = synth.sfload(_soundfont(soundfont))
    events = []  # (sample, is_on, channel, key, velocity); note-offs sort first
    melodic = iter(c for c in range(16) if c != 9)
    for inst in pm.instruments:
        channel = 9 if inst.is_drum else next(melodic)
        synth.program_select(channel, sfid, 128 if inst.is_drum else 0, int(inst.program), inst.is_drum)
        for note in inst.notes:
            on = int(round(note.start * sample_rate))
            off = max(on + 1, int(round(note.end * sample_rate)))
            events.append((on, 1, channel, int(note.pitch), int(note.velocity)))
            events.append((off, 0, channel, int(note.pitch), 0))
    events.sort()
    stereo = np.zeros((n_samples, 2), dtype=np.float32)
    buffer = memoryview(stereo).cast("B")
    frame_bytes = stereo.itemsize * 2
    done = 0
    for sample, is_on, channel, key, velocity in events:
        if sample >= n_samples:
            break
        if sample > done:
            synth.generate_simple(sample - done, buffer=buffer[done * frame_bytes:sample * frame_bytes])
            done = sample
        if is_on:
            synth.noteon(channel, key, velocity)
        else:
            synth.noteoff(channel, key)
    if done < n_samples:
        synth.generate_simple(n_samples - done, buffer=buffer[done * frame_bytes:])
    return stereo.mean(axis=1, dtype=np.float64)


def rms_dbfs(audio: np.ndarray) -> float:
    return 10.0 * np.log10(np.mean(np.square(audio, dtype=np.float64)) + 1e-20)


_NOTE_GAINS: dict[tuple, float] = {}


def note_gain_db(program: int, *, sample_rate: int = SAMPLE_RATE, soundfont: Path = SOUNDFONT) -> float:
    """Gain that brings the program's reference note (NOTE_REFERENCE) to TARGET_RMS_DBFS.

    Capped so that the reference peaks at NOTE_REFERENCE_PEAK_DBFS at most: the
    headroom keeps louder velocities of percussive programs off the peak ceiling.
    """
    key = (program, sample_rate, str(soundfont))
    if key not in _NOTE_GAINS:
        pitch, velocity = NOTE_REFERENCE
        ref = render_midi(single_track(program, [(pitch, velocity, 0.0, NOTE_HOLD_SECONDS)]),
                          n_samples=int(CLIP_SECONDS * sample_rate), sample_rate=sample_rate,
                          soundfont=soundfont)
        peak_dbfs = 20.0 * np.log10(np.max(np.abs(ref)) + 1e-20)
        _NOTE_GAINS[key] = min(TARGET_RMS_DBFS - rms_dbfs(ref), NOTE_REFERENCE_PEAK_DBFS - peak_dbfs)
    return _NOTE_GAINS[key]


def finish(audio: np.ndarray, gain_db: float | None, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Apply the level policy and the fade-out; returns int16 samples."""
    if gain_db is None:
        gain_db = TARGET_RMS_DBFS - rms_dbfs(audio)
    out = audio * 10.0 ** (gain_db / 20.0)
    peak = np.max(np.abs(out))
    ceiling = 10.0 ** (PEAK_CEILING_DBFS / 20.0)
    if peak > ceiling:
        out *= ceiling / peak
    n_fade = int(FADE_SECONDS * sample_rate)
    out[-n_fade:] *= 0.5 + 0.5 * np.cos(np.linspace(0.0, np.pi, n_fade))
    return np.round(out * 32767.0).astype(np.int16)


def render_clip(clip: Clip, *, sample_rate: int = SAMPLE_RATE, soundfont: Path = SOUNDFONT) -> np.ndarray:
    """The clip's final int16 samples (CLIP_SECONDS long)."""
    audio = render_midi(clip.midi, n_samples=int(round(CLIP_SECONDS * sample_rate)),
                        sample_rate=sample_rate, soundfont=soundfont)
    gain = None  # normalise this clip on its own
    if clip.subset == "notes":  # one gain per program keeps velocity audible
        gain = note_gain_db(clip.labels["gm_program"], sample_rate=sample_rate, soundfont=soundfont)
    return finish(audio, gain, sample_rate)


FLAC_COMPRESSION = 1.0  # libsndfile's strongest FLAC level (8): lossless, about 2 % smaller than its default


def write_flac(path: Path, samples: np.ndarray, sample_rate: int = SAMPLE_RATE) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, samples, sample_rate, format="FLAC", subtype="PCM_16", compression_level=FLAC_COMPRESSION)


def labels_frame(clips: list[Clip]) -> pd.DataFrame:
    rows = [{"clip_id": c.clip_id, "path": c.path, "subset": c.subset, "group": c.group, **c.labels}
            for c in clips]
    frame = pd.DataFrame(rows, columns=list(LABEL_COLUMNS))
    for col in ("gm_program", "midi_pitch", "octave", "velocity", "tempo_bpm", "transpose"):
        frame[col] = frame[col].astype("Int64")
    return frame


def build(out: Path, *, seed: int = 0, subsets=SUBSETS, limit: int | None = None,
          soundfont: Path = SOUNDFONT, prune: bool = False, log=print) -> pd.DataFrame:
    """Render the chosen clips under ``out/audio`` and write ``out/labels.csv``.

    ``limit`` renders that many clips per subset, evenly spread through it.
    ``prune`` deletes FLAC files under ``out/audio/<subset>/`` that are not in the plan.
    Returns the labels frame (paths relative to ``out``).
    """
    out = Path(out)
    started = time.perf_counter()
    clips = []
    for subset in subsets:
        chosen = spread(plan(seed, [subset]), limit)
        for i, clip in enumerate(chosen):
            write_flac(out / clip.path, render_clip(clip, soundfont=soundfont))
            if log and (i + 1) % 50 == 0:
                log(f"  {subset}: {i + 1}/{len(chosen)}")
        clips.extend(chosen)
        if log:
            log(f"{subset}: {len(chosen)} clips ({time.perf_counter() - started:.1f} s so far)")
    if prune:
        planned = {str(out / c.path) for c in clips}
        for subset in subsets:
            for stale in sorted((out / "audio" / subset).glob("*.flac")):
                if str(stale) not in planned:
                    stale.unlink()
                    if log:
                        log(f"removed stale {stale}")
    frame = labels_frame(clips)
    frame.to_csv(out / "labels.csv", index=False)
    return frame


def summary(frame: pd.DataFrame, out: Path) -> str:
    """Markdown tables of clip counts per label and the audio size, for data/README.md."""
    lines = []
    per_subset = {
        "notes": ["instrument_family", "instrument", "pitch_class", "octave", "velocity"],
        "chords": ["chord_quality", "chord_root", "instrument"],
        "rhythm": ["drum_pattern", "tempo_bpm", "drum_kit"],
        "music": ["mode", "tonic", "instrument", "composer"],
    }
    lines.append("| subset | clips | groups |\n|---|---|---|")
    for subset, rows in frame.groupby("subset", sort=False):
        lines.append(f"| {subset} | {len(rows)} | {rows['group'].nunique()} |")
    for subset, cols in per_subset.items():
        rows = frame[frame["subset"] == subset]
        if rows.empty:
            continue
        for col in cols:
            counts = rows[col].value_counts().sort_index()
            cells = ", ".join(f"{k}: {v}" for k, v in counts.items())
            lines.append(f"\n**{subset} / {col}** — {cells}")
    size = sum((Path(out) / p).stat().st_size for p in frame["path"])
    lines.append(f"\nTotal audio: {len(frame)} clips, {size / 2**20:.1f} MiB")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent,
                        help="folder that receives audio/ and labels.csv (default: this data/ folder)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--subset", action="append", choices=SUBSETS,
                        help="render only this subset (repeatable; default all)")
    parser.add_argument("--limit", type=int, default=None,
                        help="render only this many clips per subset, evenly spread")
    parser.add_argument("--soundfont", type=Path, default=SOUNDFONT)
    parser.add_argument("--summary", action="store_true", help="print markdown count tables at the end")
    args = parser.parse_args(argv)
    subsets = tuple(args.subset) if args.subset else SUBSETS
    started = time.perf_counter()
    full = args.subset is None and args.limit is None
    frame = build(args.out, seed=args.seed, subsets=subsets, limit=args.limit,
                  soundfont=args.soundfont, prune=full)
    print(f"wrote {len(frame)} clips and {args.out / 'labels.csv'} in {time.perf_counter() - started:.1f} s")
    if args.summary:
        print(summary(frame, args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
