"""Synthetic GTZAN-shaped data: procedural music in ten genre styles.

Writes ``OUT_DIR/<genre>/<genre>.NNNNN.wav`` (22050 Hz, mono, PCM16) for the ten GTZAN
genre names, so every command of the toolkit runs without the real dataset.

Each genre is a *style*: distributions over tempo, swing, drum pattern, instrument timbre
(harmonic profile, attack and decay), pitch range, scale and chord progression, bass line,
distortion and noise (``STYLES`` below). Styles overlap (rock and metal share distortion,
disco and pop share tempo, ...) and every clip draws its own values, so telling genres apart
takes the spectro-temporal patterns a CNN sees, not one loudness or pitch statistic.

``python -m data.synthetic`` writes such a set (see that command).
"""

from __future__ import annotations

import concurrent.futures
import ctypes
import json
import logging
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import soundfile

from data.catalogue import GTZAN_GENRES, SAMPLE_RATE

logger = logging.getLogger(__name__)

MARKER = "synthetic.json"
_TABLE_SIZE = 2048
_SCALES = {
    "major": (0, 2, 4, 5, 7, 9, 11),
    "minor": (0, 2, 3, 5, 7, 8, 10),
    "dorian": (0, 2, 3, 5, 7, 9, 10),
    "phrygian": (0, 1, 3, 5, 7, 8, 10),
    "mixolydian": (0, 2, 4, 5, 7, 9, 10),
    "blues": (0, 3, 5, 6, 7, 10),
    "major_pentatonic": (0, 2, 4, 7, 9),
    "minor_pentatonic": (0, 3, 5, 7, 10),
}
# Harmonic amplitude profiles (harmonics 1..8) of the instruments.
_TIMBRES = {
    "sine": (1, 0, 0, 0, 0, 0, 0, 0),
    "flute": (1, 0.3, 0.1, 0.05, 0, 0, 0, 0),
    "clarinet": (1, 0, 0.5, 0, 0.3, 0, 0.15, 0),
    "strings": (1, 0.6, 0.45, 0.35, 0.28, 0.22, 0.18, 0.14),
    "brass": (1, 0.8, 0.7, 0.5, 0.4, 0.3, 0.2, 0.1),
    "saw": (1, 1 / 2, 1 / 3, 1 / 4, 1 / 5, 1 / 6, 1 / 7, 1 / 8),
    "organ": (1, 0.9, 0, 0.6, 0, 0.4, 0, 0.3),
    "pluck": (1, 0.7, 0.5, 0.4, 0.35, 0.3, 0.25, 0.2),
    "electric_piano": (1, 0.4, 0.05, 0.2, 0.02, 0.05, 0, 0),
}
_EMPTY = (0.0,) * 16

# One style per genre. Ranges are (low, high) drawn uniformly per clip; lists are choices;
# drum patterns are per-16th-step onset probabilities over one bar.
STYLES: dict[str, dict] = {
    "blues": dict(
        tempo=(60, 100), swing=(0.25, 0.45), scales=["blues", "minor_pentatonic", "mixolydian"],
        progression=[0, 0, 3, 0, 4, 3, 0, 4], root=(40, 47), melody=(55, 74), density=(0.35, 0.6),
        lead=["pluck", "saw", "brass"], attack=(0.005, 0.02), decay=(0.3, 0.8), pad=["organ", "electric_piano"],
        comp="beats", bass="walking", distortion=(1.0, 2.5), noise=(0.002, 0.01), drums=0.6,
        kick=(0.9, 0, 0, 0, 0, 0, 0.3, 0, 0.8, 0, 0, 0, 0, 0, 0.2, 0),
        snare=(0, 0, 0, 0, 0.9, 0, 0, 0, 0, 0, 0, 0, 0.9, 0, 0, 0),
        hat=(0.8, 0, 0.6, 0, 0.8, 0, 0.6, 0, 0.8, 0, 0.6, 0, 0.8, 0, 0.6, 0),
    ),
    "classical": dict(
        tempo=(50, 110), swing=(0.0, 0.05), scales=["major", "minor"],
        progression=[0, 3, 4, 0, 5, 1, 4, 0], root=(36, 48), melody=(60, 88), density=(0.3, 0.8),
        lead=["strings", "flute", "clarinet"], attack=(0.05, 0.2), decay=(0.8, 2.0), pad=["strings"],
        comp="sustain", bass="sustain", distortion=(1.0, 1.0), noise=(0.0005, 0.003), drums=0.0,
        kick=_EMPTY, snare=_EMPTY, hat=_EMPTY,
    ),
    "country": dict(
        tempo=(90, 140), swing=(0.0, 0.15), scales=["major_pentatonic", "major", "mixolydian"],
        progression=[0, 0, 3, 3, 4, 4, 0, 0], root=(40, 50), melody=(60, 79), density=(0.4, 0.7),
        lead=["pluck", "strings"], attack=(0.002, 0.01), decay=(0.15, 0.4), pad=["pluck"],
        comp="strum", bass="root_fifth", distortion=(1.0, 1.3), noise=(0.002, 0.008), drums=0.5,
        kick=(0.9, 0, 0, 0, 0, 0, 0, 0, 0.9, 0, 0, 0, 0, 0, 0, 0),
        snare=(0, 0, 0, 0, 0.9, 0, 0, 0, 0, 0, 0, 0, 0.9, 0, 0, 0),
        hat=(0.6, 0, 0.6, 0, 0.6, 0, 0.6, 0, 0.6, 0, 0.6, 0, 0.6, 0, 0.6, 0),
    ),
    "disco": dict(
        tempo=(110, 130), swing=(0.0, 0.05), scales=["minor", "dorian", "major"],
        progression=[0, 0, 5, 5, 3, 3, 4, 4], root=(38, 46), melody=(62, 84), density=(0.4, 0.7),
        lead=["strings", "brass", "saw"], attack=(0.005, 0.03), decay=(0.2, 0.5), pad=["strings", "electric_piano"],
        comp="offbeat", bass="octaves", distortion=(1.0, 1.2), noise=(0.002, 0.006), drums=0.9,
        kick=(1, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0),
        snare=(0, 0, 0, 0, 0.9, 0, 0, 0, 0, 0, 0, 0, 0.9, 0, 0, 0),
        hat=(0.3, 0, 1, 0, 0.3, 0, 1, 0, 0.3, 0, 1, 0, 0.3, 0, 1, 0),
    ),
    "hiphop": dict(
        tempo=(75, 100), swing=(0.1, 0.3), scales=["minor", "minor_pentatonic", "dorian"],
        progression=[0, 0, 5, 5, 0, 0, 3, 3], root=(33, 41), melody=(60, 76), density=(0.1, 0.3),
        lead=["electric_piano", "sine", "flute"], attack=(0.005, 0.02), decay=(0.2, 0.6), pad=["electric_piano"],
        comp="sparse", bass="sub", distortion=(1.0, 1.5), noise=(0.003, 0.012), drums=1.0,
        kick=(1, 0, 0, 0, 0, 0, 0, 0.6, 0, 0, 0.7, 0, 0, 0, 0, 0.3),
        snare=(0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0),
        hat=(0.8, 0.3, 0.8, 0.3, 0.8, 0.3, 0.8, 0.3, 0.8, 0.3, 0.8, 0.3, 0.8, 0.3, 0.8, 0.3),
    ),
    "jazz": dict(
        tempo=(90, 200), swing=(0.3, 0.5), scales=["dorian", "mixolydian", "major"],
        progression=[1, 4, 0, 0, 1, 4, 0, 5], root=(38, 48), melody=(58, 82), density=(0.5, 0.85),
        lead=["brass", "clarinet", "electric_piano"], attack=(0.01, 0.04), decay=(0.2, 0.6), pad=["electric_piano"],
        comp="sparse", bass="walking", distortion=(1.0, 1.0), noise=(0.001, 0.005), drums=0.35,
        kick=(0.3, 0, 0, 0, 0, 0, 0, 0, 0.2, 0, 0, 0, 0, 0, 0, 0),
        snare=(0, 0, 0, 0, 0.2, 0, 0, 0.2, 0, 0, 0, 0, 0.3, 0, 0, 0.2),
        hat=(1, 0, 0, 0, 1, 0, 0.8, 0, 1, 0, 0, 0, 1, 0, 0.8, 0),
    ),
    "metal": dict(
        tempo=(100, 200), swing=(0.0, 0.05), scales=["phrygian", "minor", "minor_pentatonic"],
        progression=[0, 0, 1, 0, 5, 6, 0, 0], root=(28, 40), melody=(52, 76), density=(0.6, 0.95),
        lead=["saw", "brass"], attack=(0.001, 0.005), decay=(0.1, 0.3), pad=["saw"],
        comp="power", bass="pedal", distortion=(6.0, 14.0), noise=(0.01, 0.03), drums=1.0,
        kick=(1, 0, 0.8, 0, 1, 0, 0.8, 0, 1, 0, 0.8, 0, 1, 0, 0.8, 0),
        snare=(0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0),
        hat=(1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0),
    ),
    "pop": dict(
        tempo=(95, 130), swing=(0.0, 0.1), scales=["major", "major_pentatonic"],
        progression=[0, 0, 4, 4, 5, 5, 3, 3], root=(40, 50), melody=(62, 81), density=(0.4, 0.7),
        lead=["sine", "flute", "electric_piano", "saw"], attack=(0.005, 0.03), decay=(0.2, 0.6),
        pad=["strings", "electric_piano", "organ"], comp="beats", bass="root_fifth",
        distortion=(1.0, 1.5), noise=(0.002, 0.008), drums=0.8,
        kick=(1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0.5, 0, 0, 0, 0, 0),
        snare=(0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0),
        hat=(0.9, 0, 0.9, 0, 0.9, 0, 0.9, 0, 0.9, 0, 0.9, 0, 0.9, 0, 0.9, 0),
    ),
    "reggae": dict(
        tempo=(60, 95), swing=(0.05, 0.25), scales=["major", "minor", "dorian"],
        progression=[0, 0, 3, 3, 0, 0, 4, 3], root=(33, 43), melody=(60, 79), density=(0.2, 0.45),
        lead=["organ", "electric_piano", "brass"], attack=(0.005, 0.02), decay=(0.1, 0.3), pad=["organ", "pluck"],
        comp="skank", bass="sub", distortion=(1.0, 1.3), noise=(0.002, 0.01), drums=0.7,
        kick=(0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0),
        snare=(0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0),
        hat=(0.7, 0, 0.7, 0, 0.7, 0, 0.7, 0, 0.7, 0, 0.7, 0, 0.7, 0, 0.7, 0),
    ),
    "rock": dict(
        tempo=(100, 160), swing=(0.0, 0.1), scales=["minor_pentatonic", "mixolydian", "minor"],
        progression=[0, 0, 6, 6, 3, 3, 0, 4], root=(33, 45), melody=(57, 79), density=(0.4, 0.75),
        lead=["saw", "pluck"], attack=(0.002, 0.01), decay=(0.2, 0.5), pad=["saw", "pluck"],
        comp="power", bass="eighths", distortion=(2.5, 6.0), noise=(0.005, 0.02), drums=0.9,
        kick=(1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0.5, 0, 0, 0, 0, 0),
        snare=(0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0),
        hat=(1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0),
    ),
}
# Chance that a clip borrows its lead and pad instruments from any style, so that
# timbre alone does not give the genre away.
_BORROW_TIMBRE = 0.25


def _midi_to_hz(midi: np.ndarray) -> np.ndarray:
    return 440.0 * 2.0 ** ((np.asarray(midi, np.float64) - 69.0) / 12.0)


def _wavetable(profile: tuple[float, ...]) -> np.ndarray:
    phase = np.arange(_TABLE_SIZE) / _TABLE_SIZE
    table = sum(a * np.sin(2 * np.pi * (h + 1) * phase) for h, a in enumerate(profile) if a)
    return (table / np.abs(table).max()).astype(np.float32)


_TABLES = {name: _wavetable(profile) for name, profile in _TIMBRES.items()}


def _envelope(attack: float, decay: float, gate: float) -> np.ndarray:
    """Amplitude of a note against samples since its onset; zero from ``gate`` seconds on."""
    t = np.arange(int(min(gate, 8.0) * SAMPLE_RATE) + 1, dtype=np.float32) / SAMPLE_RATE
    env = np.minimum(1.0, t / attack) * np.exp(-t / decay)
    env[-1] = 0.0
    return env.astype(np.float32)


def _voice(n: int, onsets: np.ndarray, hz: np.ndarray, table: np.ndarray, envelope: np.ndarray) -> np.ndarray:
    """Renders a monophonic voice: note k sounds from ``onsets[k]`` until the next onset.

    Args:
        n: Number of samples.
        onsets: Sorted onset sample indices.
        hz: Frequency of each note.
        table: One period of the instrument's waveform.
        envelope: Amplitude against samples since the onset (see ``_envelope``).
    """
    out = np.zeros(n, np.float32)
    if len(onsets) == 0:
        return out
    start = onsets[0]
    lengths = np.diff(np.append(onsets, n))
    since = np.arange(n - start, dtype=np.int32) - np.repeat((onsets - start).astype(np.int32), lengths)
    # Table lookup instead of sin(): one gather per sample whatever the number of harmonics.
    increment = np.repeat(hz * (_TABLE_SIZE / SAMPLE_RATE), lengths)
    index = (since * increment).astype(np.int32) & (_TABLE_SIZE - 1)
    np.minimum(since, len(envelope) - 1, out=since)
    out[start:] = table[index] * envelope[since]
    return out


def _drum_kernels(rng: np.random.Generator) -> dict[str, np.ndarray]:
    t = np.arange(int(0.3 * SAMPLE_RATE)) / SAMPLE_RATE
    sweep = 2 * np.pi * np.cumsum(rng.uniform(45, 60) + rng.uniform(80, 140) * np.exp(-t / 0.03)) / SAMPLE_RATE
    kick = np.sin(sweep) * np.exp(-t / rng.uniform(0.06, 0.15))
    ts = t[: int(0.2 * SAMPLE_RATE)]
    snare = (0.7 * rng.standard_normal(len(ts)) + 0.4 * np.sin(2 * np.pi * rng.uniform(170, 240) * ts)) * np.exp(
        -ts / rng.uniform(0.04, 0.09)
    )
    th = t[: int(0.06 * SAMPLE_RATE)]
    hat = np.diff(rng.standard_normal(len(th) + 1)) * 0.5 * np.exp(-th / rng.uniform(0.01, 0.03))
    return {"kick": kick.astype(np.float32), "snare": snare.astype(np.float32), "hat": hat.astype(np.float32)}


def render_clip(genre: str, seconds: float, rng: np.random.Generator) -> np.ndarray:
    """Renders one clip of ``genre``.

    Args:
        genre: A key of ``STYLES``.
        seconds: Clip length.
        rng: Random generator; the clip is a pure function of its state.

    Returns:
        float32 ``[seconds * 22050]`` in [-1, 1].
    """
    style = STYLES[genre]
    n = int(round(seconds * SAMPLE_RATE))
    u = lambda key: rng.uniform(*style[key])  # noqa: E731 - a draw from a style range
    tempo = u("tempo")
    step = 60.0 / tempo / 4  # a 16th note, in seconds
    n_steps = int(np.ceil(seconds / step)) + 1
    steps = np.arange(n_steps)
    swing = u("swing")
    times = steps * step + (steps % 4 == 2) * swing * 2 * step  # swung off-beat 8ths
    onset_at = np.minimum((times * SAMPLE_RATE).astype(np.int64), n - 1)
    bar = steps // 16

    scale = np.array(_SCALES[rng.choice(style["scales"])])
    root = int(rng.integers(*style["root"]))
    degrees = np.concatenate([scale + 12 * octave for octave in range(-1, 6)])
    progression = np.roll(style["progression"], int(rng.integers(0, 8)))
    chord_degree = progression[bar % len(progression)]
    chord_root = root + scale[chord_degree % len(scale)]

    def pick(name: str) -> np.ndarray:
        choices = style[name] if rng.random() > _BORROW_TIMBRE else list(_TIMBRES)
        return _TABLES[rng.choice(choices)]

    # Melody: notes on 8ths, a random walk over the scale inside the style's range.
    low, high = style["melody"]
    in_range = degrees[(root + degrees >= low) & (root + degrees <= high)] + root
    on = (steps % 2 == 0) & (rng.random(n_steps) < u("density"))
    walk = np.clip(np.cumsum(rng.integers(-2, 3, n_steps)) + len(in_range) // 2, 0, len(in_range) - 1)
    notes = in_range[walk[on]]
    melody = _voice(n, onset_at[on], _midi_to_hz(notes), pick("lead"), _envelope(u("attack"), u("decay"), 9.0))

    # Accompaniment: chord tones with a style-specific rhythm.
    comp = style["comp"]
    comp_steps = {
        "sustain": steps % 16 == 0, "beats": steps % 4 == 0, "offbeat": steps % 4 == 2,
        "skank": steps % 8 == 4, "strum": steps % 2 == 0, "sparse": rng.random(n_steps) < 0.12,
        "power": steps % 2 == 0,
    }[comp]
    gate = {"sustain": 9.0, "skank": 0.12, "offbeat": 0.15}.get(comp, 2 * step)
    intervals = (0, 7, 12) if comp == "power" else (0, 2, 4, 6) if genre == "jazz" else (0, 2, 4)
    pad_table = pick("pad")
    pad = np.zeros(n, np.float32)
    pad_envelope = _envelope(0.3, 1.5, gate) if comp == "sustain" else _envelope(0.005, 0.3, gate)
    for interval in intervals:
        degree = (chord_degree[comp_steps] + interval)
        if comp == "power":
            pitch = chord_root[comp_steps] + 12 + interval
        else:
            pitch = root + 12 + scale[degree % len(scale)] + 12 * (degree // len(scale))
        pad += _voice(n, onset_at[comp_steps], _midi_to_hz(pitch), pad_table, pad_envelope)

    # Bass line.
    bass_kind = style["bass"]
    beat = steps % 4 == 0
    bass_on = {"walking": beat, "sustain": steps % 16 == 0, "root_fifth": steps % 8 == 0, "octaves": steps % 2 == 0,
               "sub": (steps % 16 == 0) | (steps % 16 == 10), "pedal": steps % 2 == 0, "eighths": steps % 2 == 0}[bass_kind]
    bass_pitch = chord_root - 12
    if bass_kind == "walking":
        bass_pitch = bass_pitch + scale[rng.integers(0, len(scale), n_steps)]
    elif bass_kind == "root_fifth":
        bass_pitch = bass_pitch + 7 * ((steps // 8) % 2)
    elif bass_kind == "octaves":
        bass_pitch = bass_pitch + 12 * ((steps // 2) % 2)
    bass = _voice(n, onset_at[bass_on], _midi_to_hz(bass_pitch[bass_on]), _TABLES["sine" if bass_kind == "sub" else "pluck"],
                  _envelope(0.005, 3.0 if bass_kind == "sustain" else 0.6, 9.0))

    # Drums: per-step onset probabilities, rendered by adding a kernel at each onset.
    drums = np.zeros(n + SAMPLE_RATE, np.float32)
    if style["drums"] > 0:
        kernels = _drum_kernels(rng)
        for name, level in (("kick", 1.0), ("snare", 0.6), ("hat", 0.25)):
            hits = rng.random(n_steps) < np.asarray(style[name])[steps % 16]
            kernel = kernels[name] * level
            for at in onset_at[hits]:
                drums[at : at + len(kernel)] += kernel
    drums = drums[:n] * style["drums"]

    mix = (0.5 * melody + 0.3 * pad / len(intervals) ** 0.5 + 0.45 * bass + 0.5 * drums)
    drive = u("distortion")
    if drive > 1.0:
        mix = np.tanh(drive * mix) / np.tanh(drive)
    mix = mix + u("noise") * rng.standard_normal(n, dtype=np.float32) * 10
    peak = float(np.abs(mix).max()) or 1.0
    return (mix / peak * rng.uniform(0.3, 0.95)).astype(np.float32)


def _keep_freed_memory() -> None:
    """Asks glibc to reuse freed blocks instead of returning them to the OS.

    Each clip allocates a few dozen arrays of several MB; by default glibc maps and unmaps
    each one, and the page faults cost more than the synthesis (measured: 2x slower).
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:  # not glibc (macOS, Windows): nothing to tune
        return
    m_trim_threshold, m_mmap_threshold = -1, -3
    libc.mallopt(m_trim_threshold, 1 << 30)
    libc.mallopt(m_mmap_threshold, 1 << 30)


def _write_clip(args: tuple[str, int, Path, float, int]) -> None:
    genre, index, out_dir, seconds, seed = args
    # One independent stream per clip: any clip can be regenerated alone.
    rng = np.random.default_rng([seed, GTZAN_GENRES.index(genre), index])
    audio = render_clip(genre, seconds, rng)
    soundfile.write(str(out_dir / genre / f"{genre}.{index:05d}.wav"), audio, SAMPLE_RATE, subtype="PCM_16")


def is_synthetic(data_dir: str | os.PathLike) -> bool:
    """Whether ``data_dir`` (or the folder above it) was written by :func:`generate`."""
    path = Path(data_dir)
    return (path / MARKER).is_file() or (path.parent / MARKER).is_file()


def generate(out_dir: str | os.PathLike, *, clips_per_genre: int = 100, seconds: float = 30.0, seed: int = 0,
             workers: int | None = None, progress: Callable[[int, int], None] | None = None) -> Path:
    """Writes a synthetic GTZAN-shaped dataset.

    Args:
        out_dir: Output folder; ``<genre>/<genre>.NNNNN.wav`` files are written under it.
        clips_per_genre: Clips per genre (GTZAN has 100).
        seconds: Length of each clip (GTZAN's are about 30 s).
        seed: Random seed; the same seed writes the same files.
        workers: Processes to use (default: the number of CPUs).
        progress: Called as ``progress(clips written, clips in all)`` after each clip.

    Returns:
        The output folder.
    """
    if clips_per_genre < 1:
        raise ValueError(f"clips_per_genre must be at least 1. Received: clips_per_genre={clips_per_genre}")
    if seconds <= 0:
        raise ValueError(f"seconds must be positive. Received: seconds={seconds}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    # Marks the folder as synthetic, so that reports never mistake it for GTZAN.
    (out / MARKER).write_text(json.dumps({"generator": "data.synthetic", "clips_per_genre": clips_per_genre,
                                          "seconds": seconds, "seed": seed}))
    for genre in GTZAN_GENRES:
        (out / genre).mkdir(exist_ok=True)
    jobs = [(genre, index, out, seconds, seed) for genre in GTZAN_GENRES for index in range(clips_per_genre)]
    with concurrent.futures.ProcessPoolExecutor(max_workers=workers or os.cpu_count(),
                                                initializer=_keep_freed_memory) as pool:
        for done, future in enumerate(concurrent.futures.as_completed([pool.submit(_write_clip, job) for job in jobs])):
            future.result()
            if progress is not None:
                progress(done + 1, len(jobs))
    return out
