"""Synthetic notes for the generalising probes: General MIDI programs through a SoundFont, and additive/FM notes.

Rendered as the teaching set is (``data/make_teaching_set.py``: pretty_midi's TimGM6mb.sf2 through
tinysoundfont, a fresh synthesiser per clip, an exact sample count), but straight at 16 kHz and from a
seed of their own, so these clips are never teaching clips.  Needs the ``data`` extra
(``pip install pretty_midi`` and ``pip install --no-deps tinysoundfont``).

Two disjoint program sets: :data:`TEST_PROGRAMS` for the probes a shipped checkpoint is reported on,
:data:`VALIDATION_PROGRAMS` for choosing checkpoints (never the test set).

The second family, :func:`additive_table` / :func:`render_additive`, is the protocol the music2vec-mini
issue measured its random-init baselines with: five synthetic timbres (sawtooth-, square- and
triangle-like additive spectra, an FM bell and an FM brass), random ADSR envelopes, MIDI 45–80.  Sampled
instruments share harmonics across octaves in ways these pure spectra do not, so random networks score
very differently on the two (octave held out: ~0.5 on the SoundFont notes, ~0.4 here); report both.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import OptionError

__all__ = ["ADDITIVE_TIMBRES", "ADDITIVE_PITCHES", "additive_table", "render_additive", "TEST_PROGRAMS", "VALIDATION_PROGRAMS", "PITCH_RANGE", "note_table", "render_note", "render_table",
           "soundfont_path", "PROGRAM_NAMES"]

#: 12 GM programs the reported probes use (pianos, mallets, organ, guitar, bass, strings, brass, winds).
TEST_PROGRAMS = (0, 6, 11, 19, 24, 33, 40, 42, 56, 60, 68, 73)
#: 12 other GM programs, for checkpoint selection.
VALIDATION_PROGRAMS = (1, 4, 13, 21, 25, 32, 41, 48, 57, 65, 71, 80)
#: MIDI pitches of the probe grid: C2–B5, four whole octaves.
PITCH_RANGE = (36, 84)

PROGRAM_NAMES = {0: "Acoustic Grand Piano", 1: "Bright Acoustic Piano", 4: "Electric Piano 1", 6: "Harpsichord",
                 11: "Vibraphone", 13: "Xylophone", 19: "Church Organ", 21: "Accordion",
                 24: "Acoustic Guitar (nylon)", 25: "Acoustic Guitar (steel)", 32: "Acoustic Bass",
                 33: "Electric Bass (finger)", 40: "Violin", 41: "Viola", 42: "Cello", 48: "String Ensemble 1",
                 56: "Trumpet", 57: "Trombone", 60: "French Horn", 65: "Alto Sax", 68: "Oboe", 71: "Clarinet",
                 73: "Flute", 80: "Lead 1 (square)"}


def soundfont_path() -> Path:
    """The General MIDI SoundFont that ships inside pretty_midi (TimGM6mb.sf2, GPL-2)."""
    try:
        import pretty_midi
    except ImportError as exc:  # pragma: no cover - the data extra
        raise OptionError("synthetic notes need pretty_midi (its SoundFont) and tinysoundfont: "
                          "pip install pretty_midi && pip install --no-deps tinysoundfont") from exc
    return Path(pretty_midi.__file__).parent / "TimGM6mb.sf2"


def note_table(programs=TEST_PROGRAMS, *, seed: int, pitches: tuple[int, int] = PITCH_RANGE,
               seconds: float = 1.5) -> pd.DataFrame:
    """Every program × every pitch once, with seeded velocity, onset and length.

    Returns
    -------
    DataFrame
        ``program``, ``pitch`` (MIDI), ``pitch_class`` (0–11), ``octave`` (MIDI 60 = octave 4), ``velocity``
        (60–115), ``onset`` (0.02–0.15 s), ``duration`` (55–80 % of the clip), ``seconds``.
    """
    rng = np.random.default_rng(seed)
    rows = []
    for program in programs:
        for pitch in range(*pitches):
            rows.append({"program": int(program), "pitch": pitch, "pitch_class": pitch % 12,
                         "octave": pitch // 12 - 1, "velocity": int(rng.integers(60, 116)),
                         "onset": float(rng.uniform(0.02, 0.15)), "duration": float(rng.uniform(0.55, 0.8) * seconds),
                         "seconds": float(seconds)})
    return pd.DataFrame(rows)


_SF_BYTES: dict[str, bytes] = {}


def render_note(program: int, pitch: int, velocity: int, onset: float, duration: float, *, seconds: float = 1.5,
                sample_rate: int = 16000, soundfont: Path | None = None) -> np.ndarray:
    """One note, mono float32, exactly ``seconds`` long, peak 0.5, with a 20 ms fade-out."""
    import tinysoundfont

    path = str(soundfont or soundfont_path())
    if path not in _SF_BYTES:
        _SF_BYTES[path] = Path(path).read_bytes()
    n = int(round(seconds * sample_rate))
    synth = tinysoundfont.Synth(samplerate=sample_rate)
    sfid = synth.sfload(_SF_BYTES[path])
    synth.program_select(0, sfid, 0, int(program), False)
    stereo = np.zeros((n, 2), dtype=np.float32)
    buf = memoryview(stereo).cast("B")
    fb = stereo.itemsize * 2
    on = min(n, int(round(onset * sample_rate)))
    off = min(n, max(on + 1, int(round((onset + duration) * sample_rate))))
    synth.generate_simple(on, buffer=buf[:on * fb]) if on else None
    synth.noteon(0, int(pitch), int(velocity))
    if off > on:
        synth.generate_simple(off - on, buffer=buf[on * fb:off * fb])
    synth.noteoff(0, int(pitch))
    if n > off:
        synth.generate_simple(n - off, buffer=buf[off * fb:])
    x = stereo.mean(axis=1)
    peak = float(np.abs(x).max())
    if peak > 0:
        x *= 0.5 / peak
    fade = int(0.02 * sample_rate)
    x[-fade:] *= (0.5 + 0.5 * np.cos(np.linspace(0, np.pi, fade))).astype(np.float32)
    return x.astype(np.float32)


def render_table(table: pd.DataFrame, *, sample_rate: int = 16000) -> list[np.ndarray]:
    """The clips of a :func:`note_table`, in its row order."""
    return [render_note(r.program, r.pitch, r.velocity, r.onset, r.duration, seconds=r.seconds,
                        sample_rate=sample_rate) for r in table.itertuples()]


#: The additive/FM timbres: harmonic roll-off 1/k (all, odd only) or 1/k², and two FM voices.
ADDITIVE_TIMBRES = ("saw", "square", "triangle", "fm_bell", "fm_brass")
#: MIDI pitches of the additive grid: A2–G#5, three whole octaves from A.
ADDITIVE_PITCHES = (45, 81)


def additive_table(*, seed: int, timbres=ADDITIVE_TIMBRES, pitches: tuple[int, int] = ADDITIVE_PITCHES,
                   seconds: float = 1.5) -> pd.DataFrame:
    """Every timbre × every pitch once, with a seeded envelope, level, phase seed and FM index.

    Returns
    -------
    DataFrame
        ``program`` (the timbre's name), ``pitch``, ``pitch_class``, ``octave`` (0, 1, 2 counted from
        ``pitches[0]``, so each octave holds all 12 pitch classes), ``attack``, ``decay``, ``sustain``,
        ``release`` (seconds, level), ``level`` (peak 0.3–0.9), ``fm_index``, ``phase_seed``, ``seconds``.
    """
    unknown = sorted(set(timbres) - set(ADDITIVE_TIMBRES))
    if unknown:
        raise OptionError(f"unknown additive timbres {unknown}; choose from {ADDITIVE_TIMBRES}.")
    if (pitches[1] - pitches[0]) % 12:
        raise OptionError(f"pitches={pitches} must span whole octaves (a multiple of 12 semitones).")
    rng = np.random.default_rng(seed)
    rows = []
    for timbre in timbres:
        for pitch in range(*pitches):
            rows.append({"program": timbre, "pitch": pitch, "pitch_class": pitch % 12,
                         "octave": (pitch - pitches[0]) // 12, "attack": float(rng.uniform(0.005, 0.08)),
                         "decay": float(rng.uniform(0.05, 0.4)), "sustain": float(rng.uniform(0.3, 0.9)),
                         "release": float(rng.uniform(0.05, 0.3)), "level": float(rng.uniform(0.3, 0.9)),
                         "fm_index": float(rng.uniform(1.5, 5.0)), "phase_seed": int(rng.integers(2**31)),
                         "seconds": float(seconds)})
    return pd.DataFrame(rows)


def _adsr(n: int, sample_rate: int, attack: float, decay: float, sustain: float, release: float) -> np.ndarray:
    a, d, r = (int(v * sample_rate) for v in (attack, decay, release))
    hold = max(0, n - a - d - r)
    env = np.concatenate([np.linspace(0, 1, a, endpoint=False), np.linspace(1, sustain, d, endpoint=False),
                          np.full(hold, sustain), np.linspace(sustain, 0, r)])
    return env[:n] if len(env) >= n else np.pad(env, (0, n - len(env)))


def render_additive(table: pd.DataFrame, *, sample_rate: int = 16000) -> list[np.ndarray]:
    """The clips of an :func:`additive_table`, in its row order (mono float32, band-limited below 0.95 Nyquist)."""
    out = []
    for r in table.itertuples():
        n = int(round(r.seconds * sample_rate))
        t = np.arange(n) / sample_rate
        f0 = 440.0 * 2 ** ((r.pitch - 69) / 12)
        env = _adsr(n, sample_rate, r.attack, r.decay, r.sustain, r.release)
        phases = np.random.default_rng(r.phase_seed).uniform(0, 2 * np.pi, 64)
        if r.program in ("saw", "square", "triangle"):
            x = np.zeros(n)
            for k in range(1, 64):
                if k * f0 >= 0.95 * sample_rate / 2:
                    break
                if r.program == "square" and k % 2 == 0:
                    continue
                x += (1 / k ** 2 if r.program == "triangle" else 1 / k) * np.sin(2 * np.pi * k * f0 * t + phases[k])
            x *= env
        elif r.program == "fm_bell":  # inharmonic 1.4 ratio, index and level decaying
            index = r.fm_index * np.exp(-3 * t)
            x = np.sin(2 * np.pi * f0 * t + index * np.sin(2 * np.pi * 1.4 * f0 * t)) * env * np.exp(-2 * t)
        else:  # fm_brass: 1:1 ratio, brightness follows the envelope
            index = 0.7 * r.fm_index * env
            x = np.sin(2 * np.pi * f0 * t + index * np.sin(2 * np.pi * f0 * t)) * env
        peak = float(np.abs(x).max())
        out.append((x * (r.level / peak if peak > 0 else 0.0)).astype(np.float32))
    return out
