"""Measurements of exported models for ``python -m serving.bench``: load time, latency, throughput,
and the clips and direct calls the HTTP benchmark (``serving.loadtest``) is compared with."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import soundfile
import tensorflow as tf

from data.catalogue import SAMPLE_RATE
from data.errors import RunFailed
from data.synthesis import render_clip
from serving.prediction import read_audio

# Timed in a fresh process that imports only TensorFlow: what serving the export alone costs.
_SCRIPT = r"""
import json, sys, time
import numpy as np
import tensorflow as tf
path, repeats = sys.argv[1], int(sys.argv[2])
start = time.perf_counter()
serve = tf.saved_model.load(path).signatures["serving_default"]
load = time.perf_counter() - start
rng = np.random.default_rng(0)
one = tf.constant(rng.normal(0, 0.1, (1, 661500)).astype(np.float32))
batch = tf.constant(rng.normal(0, 0.1, (32, 661500)).astype(np.float32))
serve(waveform=one); serve(waveform=batch)  # warm-up: first calls build the kernels
latencies = []
for _ in range(repeats):
    start = time.perf_counter()
    serve(waveform=one)["probabilities"].numpy()
    latencies.append(time.perf_counter() - start)
start = time.perf_counter()
for _ in range(max(1, repeats // 5)):
    serve(waveform=batch)["probabilities"].numpy()
batch_seconds = (time.perf_counter() - start) / max(1, repeats // 5)
print(json.dumps({"load_s": load, "latency_s": float(np.median(latencies)), "batch32_s": batch_seconds}))
"""



def time_export(export: Path, repeats: int) -> dict:
    """Times ``export`` in a new process: ``load_s``, ``latency_s`` (median over ``repeats`` calls
    on one 30-s clip) and ``batch32_s`` (a batch of 32 clips of 30 s).

    Raises:
        RunFailed: with the last line of the process's error, if it failed.
    """
    result = subprocess.run([sys.executable, "-c", _SCRIPT, str(export), str(repeats)], capture_output=True, text=True)
    if result.returncode != 0:
        raise RunFailed(f"the benchmark process failed: {result.stderr.strip().splitlines()[-1:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def clips_30s(folder: Path | None, out: Path, count: int = 4) -> tuple[list[Path], bool]:
    """``count`` 30-s PCM16 WAV clips of real music from ``folder`` end to end, or synthetic music
    when there is no folder or not enough music in it.

    Returns:
        ``(paths, real)``: the clips, and whether they are real music from ``folder``.
    """
    length = 30 * SAMPLE_RATE
    files = (sorted(Path(folder).rglob("*.wav")) + sorted(Path(folder).rglob("*.au"))) if folder is not None else []
    music = np.concatenate([read_audio(f) for f in files[: 40 * count]]) if files else np.zeros(0, np.float32)
    real = music.size >= length * count
    if not real:
        music = np.concatenate([render_clip(g, 30.0, np.random.default_rng(i)) for i, g in
                                enumerate(("jazz", "rock", "disco", "metal")[:count])]).astype(np.float32)
    paths = []
    for i in range(count):
        paths.append(out / f"clip{i}.wav")
        soundfile.write(paths[-1], music[i * length:(i + 1) * length], SAMPLE_RATE, subtype="PCM_16")
    return paths, real


def direct_latencies(export: Path, file: Path, repeats: int = 5) -> list[float]:
    """Seconds of each of ``repeats`` calls of ``export``'s ``serving_default`` on ``file``, in this
    process, after a warm-up call."""
    serve = tf.saved_model.load(str(export)).signatures["serving_default"]
    audio = tf.constant(read_audio(file)[None])
    serve(waveform=audio)  # warm-up
    latencies = []
    for _ in range(repeats):
        start = time.perf_counter()
        serve(waveform=audio)["probabilities"].numpy()
        latencies.append(time.perf_counter() - start)
    return latencies


def hostile_files(folder: Path, long_seconds: float) -> dict[str, Path]:
    """The uploads of ``serving.bench --hostile``: files whose headers declare more than they hold or
    than any recording needs, a truncated MP3, and one long recording (``long_seconds``, FLAC)."""
    folder.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(0.5 * 655350)) / 655350
    tone = np.stack([0.3 * np.sin(2 * np.pi * 440 * (1 + c / 8) * t) for c in range(8)], axis=1).astype(np.float32)
    files = {"8 channels at 655350 Hz (FLAC)": folder / "fast.flac", "8 channels at 384 kHz, 2 s (FLAC)": folder / "wide.flac",
             "60000 channels declared (WAV)": folder / "channels.wav", "2 GHz declared (WAV)": folder / "rate.wav",
             "truncated MP3 (10 s declared)": folder / "cut.mp3", f"{long_seconds / 60:g} minutes (FLAC)": folder / "long.flac"}
    soundfile.write(files["8 channels at 655350 Hz (FLAC)"], tone, 655350)
    t = np.arange(2 * 384000) / 384000
    soundfile.write(files["8 channels at 384 kHz, 2 s (FLAC)"],
                    np.stack([0.3 * np.sin(2 * np.pi * 330 * (1 + c / 8) * t) for c in range(8)], axis=1), 384000)
    for name, (channels, rate) in (("60000 channels declared (WAV)", (60000, SAMPLE_RATE)),
                                   ("2 GHz declared (WAV)", (2, 2_000_000_000))):
        header = (b"RIFF" + (100036).to_bytes(4, "little") + b"WAVEfmt " + (16).to_bytes(4, "little")
                  + (3).to_bytes(2, "little") + (channels & 0xFFFF).to_bytes(2, "little") + rate.to_bytes(4, "little")
                  + ((rate * channels * 4) & 0xFFFFFFFF).to_bytes(4, "little")
                  + ((channels * 4) & 0xFFFF).to_bytes(2, "little") + (32).to_bytes(2, "little")
                  + b"data" + (100000).to_bytes(4, "little"))
        files[name].write_bytes(header + bytes(100000))
    mp3 = folder / "whole.mp3"
    soundfile.write(mp3, render_clip("rock", 10.0, np.random.default_rng(0)).astype(np.float32), SAMPLE_RATE, format="MP3")
    data = mp3.read_bytes()
    files["truncated MP3 (10 s declared)"].write_bytes(data[: len(data) // 3])
    with soundfile.SoundFile(files[f"{long_seconds / 60:g} minutes (FLAC)"], "w", SAMPLE_RATE, 1) as out:
        minute = render_clip("jazz", 60.0, np.random.default_rng(1)).astype(np.float32)
        for _ in range(int(long_seconds // 60)):
            out.write(minute)
    return files
