"""Synthetic notes for the generalising probes: General MIDI programs through a SoundFont.

Rendered as the teaching set is (``data/make_teaching_set.py``: pretty_midi's TimGM6mb.sf2 through
tinysoundfont, a fresh synthesiser per clip, an exact sample count), but straight at 16 kHz and from a
seed of their own, so these clips are never teaching clips.  Needs the ``data`` extra
(``pip install pretty_midi`` and ``pip install --no-deps tinysoundfont``).

Two disjoint program sets: :data:`TEST_PROGRAMS` for the probes a shipped checkpoint is reported on,
:data:`VALIDATION_PROGRAMS` for choosing checkpoints (never the test set).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import OptionError

__all__ = ["TEST_PROGRAMS", "VALIDATION_PROGRAMS", "PITCH_RANGE", "note_table", "render_note", "render_table",
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
