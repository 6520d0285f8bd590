"""Measurements of exported models for ``python -m serving.bench``: load time, latency, throughput,
every format of an export side by side (``--compare``), and the clips and direct calls the HTTP
benchmark (``serving.loadtest``) is compared with."""

from __future__ import annotations

import csv
import dataclasses
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import soundfile
import soxr

import zoo
from data.catalogue import SAMPLE_RATE
from data.config import window_starts
from data.errors import InputError, RunFailed
from data.processes import process_tree, proportional_memory_mb
from training.memory import return_freed_memory
from data.synthesis import render_clip
from serving.config import ABOUT_FILE, FORMAT_FILES, FORMATS, format_of
from serving.decoding import WindowPlan
from serving import precision
from serving.export import portable_front_ends
from serving.library import Table, tag_library
from serving.prediction import Predictor, read_audio
from serving.runtimes import openvino_module
from zoo.benchmarks import forward_flops, matmul_flops_per_second
from zoo.config import ModelConfig

# One format of an export, timed in a fresh process that imports only numpy and that format's runtime
# (what serving it alone costs, and the proof that it loads without this toolkit). Arguments: format,
# model path, precision (OpenVINO), windows.npy ([clips, windows, window]), repeats. Prints one JSON line.
FORMAT_SCRIPT = r"""
import json, os, sys, time
import numpy as np
def peak_mb():
    # VmHWM: this process's own peak (getrusage's maxrss carries the parent's over exec)
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / (1024 if sys.platform != "darwin" else 2**20)
name, path, precision, windows_file, repeats = sys.argv[1:6]
clips = np.load(windows_file)
start = time.perf_counter()
if name == "savedmodel":
    import tensorflow as tf
    serve = tf.saved_model.load(path).signatures["serving_default"]
    run = lambda x: serve(waveform=tf.constant(x))["probabilities"].numpy()
    runtime = "TensorFlow " + tf.__version__
elif name == "onnx":
    import onnxruntime
    session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
    run = lambda x: session.run(["probabilities"], {"waveform": x})[0]
    runtime = "ONNX Runtime " + onnxruntime.__version__
elif name == "litert":
    from importlib.metadata import version
    from ai_edge_litert.interpreter import Interpreter
    interpreter = Interpreter(model_path=path, num_threads=os.cpu_count())
    runner = interpreter.get_signature_runner("serving_default")
    run = lambda x: runner(waveform=x)["output_0"]
    runtime = "LiteRT " + version("ai-edge-litert")
else:
    import openvino
    compiled = openvino.Core().compile_model(path, "CPU", {"INFERENCE_PRECISION_HINT": precision})
    run = lambda x: compiled.create_infer_request().infer({0: x})[0]
    runtime = "OpenVINO " + openvino.__version__.split("-")[0]
load = time.perf_counter() - start
per_window = [run(clip) for clip in clips]  # also the warm-up: first calls build the kernels
run(clips.reshape(-1, clips.shape[-1]))
latencies = []
for _ in range(int(repeats)):
    start = time.perf_counter()
    run(clips[0]).mean(axis=0)
    latencies.append(time.perf_counter() - start)
batches = max(1, int(repeats) // 5)
start = time.perf_counter()
for _ in range(batches):
    run(clips.reshape(-1, clips.shape[-1]))
batch = (time.perf_counter() - start) / batches
print(json.dumps({"runtime": runtime, "load_s": load, "latencies_s": latencies, "batch_s": batch,
                  "peak_mb": peak_mb(),
                  "per_window": np.stack(per_window).tolist()}))
"""


def time_format(name: str, path: Path, windows: Path, repeats: int, precision: str = "f32") -> dict:
    """Times one format of an export in a fresh process (:data:`FORMAT_SCRIPT`): ``runtime``, ``load_s``,
    ``latencies_s`` (one clip's windows, ``repeats`` times), ``batch_s`` (every clip's windows in one call),
    ``peak_mb`` (the process's peak resident memory) and ``per_window`` (each clip's windows' probabilities).

    Raises:
        RunFailed: with the last line of the process's error, if it failed.
    """
    # -I: the project is not on the path (only the runtime is), as where the export is deployed.
    # The process runs in the clips' folder: a path relative to the caller's folder is made absolute first.
    result = subprocess.run([sys.executable, "-I", "-c", FORMAT_SCRIPT, name, str(Path(path).resolve()), precision,
                             str(Path(windows).resolve()), str(repeats)], capture_output=True, text=True,
                            cwd=Path(windows).resolve().parent)
    if result.returncode != 0:
        raise RunFailed(f"timing {name} failed: {result.stderr.strip().splitlines()[-1:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def clip_windows(files: list[Path], window: int) -> np.ndarray:
    """``[clips, windows, window]``: each clip cut as every front cuts it (``data.config.window_starts``);
    the clips are of one length."""
    clips = [read_audio(f) for f in files]
    return np.stack([np.stack([np.pad(clip, (0, max(0, window - clip.size)))[start:start + window]
                               for start in window_starts(clip.size, window)]) for clip in clips])


def compare_formats(folder: Path, audio_dir: Path | None, repeats: int, work: Path,
                    skip: list[str] | tuple[str, ...] = ()) -> tuple[list[dict], bool]:
    """Every format of the export ``folder`` side by side on the same 30-s clips, each in its own process.

    OpenVINO runs twice where the CPU has bfloat16 units: in float32 (as the toolkit serves it) and in
    bfloat16 (faster, less exact). Each row's ``max_diff`` is the largest difference of its window
    probabilities from the SavedModel's (or the first format's, without one), ``same_top1`` the share of
    clips with the same best genre.

    Args:
        folder: The export's version folder.
        audio_dir: Real recordings to cut the clips from (``clips_30s``).
        repeats: Timed calls per format.
        work: A folder for the clips.
        skip: Formats to leave out (their runtime is not installed).

    Returns:
        ``(rows, real)``: one dict per format, and whether the clips are real music.
    """
    about = json.loads((folder / ABOUT_FILE).read_text())
    # A head export runs the Keras model on the backbones' weights, with the toolkit: not a standalone runtime.
    present = [name for name in FORMATS if (folder / FORMAT_FILES[name]).is_file() and name not in (*skip, "head")]
    files, real = clips_30s(audio_dir, work, count=8)
    windows = work / "windows.npy"
    np.save(windows, clip_windows(files, int(about["window_samples"])))
    runs = [(name, "f32") for name in present]
    if "openvino" in present and "BF16" in _openvino_capabilities():
        runs.append(("openvino", "bf16"))
    rows = []
    for name, precision in runs:
        path = folder if name == "savedmodel" else folder / FORMAT_FILES[name]
        timing = time_format(name, path, windows, repeats, precision)
        rows.append({"format": name + ("" if precision == "f32" else f" ({precision})"), **timing,
                     "per_window": np.asarray(timing["per_window"], np.float32)})
    reference = rows[0]["per_window"]
    for row in rows:
        row["max_diff"] = float(np.abs(row["per_window"] - reference).max())
        best = row["per_window"].mean(axis=1).argmax(-1)
        row["same_top1"] = float(np.mean(best == reference.mean(axis=1).argmax(-1)))
        row["clips"] = len(files)
        row["windows_per_clip"] = int(reference.shape[1])
    return rows, real


def arithmetic(about: dict, windows_per_clip: int) -> dict:
    """What one 30-s clip costs in arithmetic, and this machine's float32 matmul rate: the bound no format
    passes in float32.

    Args:
        about: The export's description: the model is rebuilt from its configuration (``model_config``),
            else from its name, at the export's own window (``window_samples``).
        windows_per_clip: Windows of a 30-s clip.

    Returns:
        ``gflop`` (the SavedModel's graph, FFT front end) and ``gflop_portable`` (the DFT front end of the
        other formats), per clip, as TensorFlow's profiler counts them, and ``matmul_gflops``.
    """
    window = int(about["window_samples"])
    if about.get("model_config"):
        config = ModelConfig.from_dict(about["model_config"]).replace(window_seconds=window / SAMPLE_RATE)
    else:
        config = zoo.configure(about["model"], window_seconds=window / SAMPLE_RATE, n_genres=len(about["genres"]))
    # The architecture alone: its arithmetic is the same whatever its weights, and none is fetched.
    model = zoo.build_model(config, pretrained_weights=False)
    flops = forward_flops(model, window)
    with portable_front_ends(model):
        portable = forward_flops(model, window)
    return {"gflop": flops * windows_per_clip / 1e9, "gflop_portable": portable * windows_per_clip / 1e9,
            "matmul_gflops": matmul_flops_per_second() / 1e9}


def _openvino_capabilities() -> list[str]:
    """What OpenVINO's CPU plugin can do on this machine (``BF16`` among them where the CPU has bfloat16 units)."""
    return list(openvino_module().Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES"))


def time_export(export: Path, repeats: int, work: Path, clips: int = 32) -> dict:
    """Times ``export`` (any format) in a fresh process (:func:`time_format`) on ``clips`` clips of 30 s of
    noise: ``runtime``, ``load_s``, ``latencies_s`` (one clip, ``repeats`` times), ``batch_s`` (every clip
    in one call) and ``peak_mb``."""
    name = format_of(export)
    window = json.loads(((export if export.is_dir() else export.parent) / ABOUT_FILE).read_text())["window_samples"]
    noise = np.random.default_rng(0).normal(0, 0.1, (clips, 30 * SAMPLE_RATE)).astype(np.float32)
    windows = work / "windows.npy"
    np.save(windows, np.stack([[clip[start:start + window] for start in window_starts(clip.size, window)]
                               for clip in noise]))
    return time_format(name, export, windows, repeats)


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
        genres = ("jazz", "rock", "disco", "metal")
        music = np.concatenate([render_clip(genres[i % len(genres)], 30.0, np.random.default_rng(i))
                                for i in range(count)]).astype(np.float32)
    paths = []
    for i in range(count):
        paths.append(out / f"clip{i}.wav")
        soundfile.write(paths[-1], music[i * length:(i + 1) * length], SAMPLE_RATE, subtype="PCM_16")
    return paths, real


def direct_latencies(export: Path, file: Path, repeats: int = 5) -> list[float]:
    """Seconds of each of ``repeats`` predictions of ``file`` by ``export`` (any format) in this process,
    as the app makes them (``serving.prediction.Predictor``), after a warm-up call."""
    predictor = Predictor(export)
    audio = read_audio(file)
    predictor.predict(audio)  # warm-up
    latencies = []
    for _ in range(repeats):
        start = time.perf_counter()
        predictor.predict(audio)
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


@dataclasses.dataclass(frozen=True)
class LibraryRun:
    """One way of tagging one set of files, timed.

    Attributes:
        files: Files tagged.
        seconds: Wall seconds.
        windows: Windows scored.
        added_mb: Peak resident memory of the process and its decoding workers together, over the
            process's own before the run (the loaded model's); None: not measured.
        startup_seconds: What starting the decoding workers took, before ``seconds`` (once per run).
    """

    files: int
    seconds: float
    windows: int
    added_mb: float | None = None
    startup_seconds: float = 0.0

    @property
    def files_per_second(self) -> float:
        return self.files / self.seconds


class TreeMemory:
    """Samples the memory of this process and its children (the decoding workers) in a thread, as
    proportional set sizes (a worker being forked shares its parent's pages, counted once): ``added``
    is the peak over this process's own at the start (freed heap handed back first, so what earlier
    work left in the allocator does not count)."""

    def __init__(self, period: float = 0.05):
        self.period, self.peak, self._stop = period, 0.0, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.before = 0.0

    @property
    def added(self) -> float:
        return max(0.0, self.peak - self.before)

    def __enter__(self) -> TreeMemory:
        return_freed_memory()
        self.before = proportional_memory_mb() or 0.0
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, sum(proportional_memory_mb(pid) or 0.0 for pid in process_tree()))
            self._stop.wait(self.period)


def library_songs(out: Path, count: int, seconds: float = 240.0) -> list[Path]:
    """``count`` synthetic songs of ``seconds`` in MP3 (44.1 kHz stereo, as a music library holds them)."""
    out.mkdir(parents=True, exist_ok=True)
    genres = ("rock", "jazz", "disco", "metal", "blues", "pop")
    paths = []
    for i in range(count):
        mono = render_clip(genres[i % len(genres)], seconds, np.random.default_rng(100 + i)).astype(np.float32)
        stereo = np.repeat(soxr.resample(mono, SAMPLE_RATE, 44100)[:, None], 2, axis=1)
        paths.append(out / f"song{i}.mp3")
        soundfile.write(paths[-1], stereo, 44100, format="MP3")
    return paths


def sequential_run(export: Path, files: list[Path]) -> LibraryRun:
    """Today's path before ``--out``: ``serving.predict``'s loop, one file after another (float32)."""
    predictor = Predictor(export)
    predictor.predict_file(files[0])  # warm-up, as the tagging runs get theirs
    start = time.perf_counter()
    windows = sum(len(predictor.predict_file(file).windows) for file in files)
    return LibraryRun(len(files), time.perf_counter() - start, windows)


def library_run(score, predictor: Predictor, files: list[Path], work: Path, workers: int,
                max_windows: int | None = None) -> LibraryRun:
    """``serving.predict --out``'s path (``serving.library``), into a fresh table, its memory sampled."""
    table_path = work / f"tags-{time.monotonic_ns()}.csv"
    with TreeMemory() as memory:
        summary = tag_library(files, score, Table(table_path, predictor.name, predictor.genres),
                              WindowPlan(predictor.window, predictor.window, max_windows), workers=workers)
    with open(table_path, newline="") as stream:
        windows = sum(int(row["windows"] or 0) for row in csv.DictReader(stream))
    if summary.failed:
        raise RunFailed(f"{summary.failed} of {len(files)} benchmark files could not be tagged")
    return LibraryRun(summary.tagged, summary.seconds, windows, memory.added, summary.startup_seconds)


def windows_per_second(score, window: int, batch: int = 32, repeats: int = 3) -> float:
    """The model alone on decoded windows, ``batch`` per call: the bound no tagging path passes."""
    windows = np.random.default_rng(0).normal(0, 0.1, (batch, window)).astype(np.float32)
    score(windows)
    start = time.perf_counter()
    for _ in range(repeats):
        score(windows)
    return batch * repeats / (time.perf_counter() - start)


def library_bench(export: Path, audio_dir: Path | None, work: Path, clips: int, songs: int,
                  workers: int) -> Iterator[str]:
    """``serving.bench --library``: its table, line by line as it is measured (see the command's docstring).

    Raises:
        InputError: for an export that does not say its window.
    """
    predictor = Predictor(export)
    if predictor.window is None:
        raise InputError(f"{export} does not say its window; export it again with python -m zoo.evaluate")
    (work / "clips").mkdir()
    clip_files, real = clips_30s(audio_dir, work / "clips", count=clips)
    sets = {f"30-s clips ({'real' if real else 'synthetic'}, WAV)": clip_files,
            "4-min songs (MP3)": library_songs(work / "songs", songs)}
    bound = windows_per_second(predictor.runtime.probabilities, predictor.window)
    yield (f"model: {predictor.name} ({export}, {predictor.runtime.name}); {len(clip_files)} 30-s clips of "
           f"{'real music from ' + str(audio_dir) if real else 'synthetic music'}, {songs} synthetic 4-min songs "
           f"(MP3, 44.1 kHz stereo); {os.cpu_count()} CPU cores, {workers} decoding workers")
    yield f"{'files':<26} {'path':<38} {'files/s':>8} {'windows/s':>10} {'x today':>8} {'+MB':>8}"
    today: dict[str, float] = {}

    def line(name: str, path: str, run: LibraryRun) -> str:
        rate = run.files_per_second
        today.setdefault(name, rate)
        peak = f"{run.added_mb:8.0f}" if run.added_mb is not None else f"{'':>8}"
        return f"{name:<26} {path:<38} {rate:8.2f} {run.windows / run.seconds:10.1f} {rate / today[name]:7.2f}x {peak}"

    startups = []
    for name, files in sets.items():
        sequential = sequential_run(export, files)
        yield line(name, "one file after another (float32)", sequential)
        tagged = library_run(predictor.runtime.probabilities, predictor, files, work, workers)
        startups.append(tagged.startup_seconds)
        yield line(name, "--out (float32)", tagged)
        per_file = sequential.windows / sequential.files
        yield (f"{name:<26} {'model alone, 32 windows a call (bound)':<38} {bound / per_file:8.2f} {bound:10.1f} "
               f"{bound / per_file / today[name]:7.2f}x")
    calibration, check, _, checked = precision.sample_windows(clip_files, WindowPlan(predictor.window,
                                                                                     predictor.window))
    for reduced in ("bfloat16", "int8"):
        try:
            runtime = precision.reduced_runtime(predictor.folder, reduced, calibration)
        except InputError as error:
            yield f"--precision {reduced}: not run: {error}"
            continue
        found = precision.agreement(predictor.runtime.probabilities, runtime.probabilities, check, checked)
        used = found.top1 >= precision.MIN_AGREEMENT
        yield f"--precision {reduced} ({runtime.name}): {found}: {'used' if used else 'refused'}"
        if used:
            for name, files in sets.items():
                yield line(name, f"--out ({reduced})", library_run(runtime.probabilities, predictor, files, work,
                                                                   workers))
    yield (f"starting the {workers} decoding workers took {min(startups):.2f}-{max(startups):.2f} s, once per run "
           "(left out of the --out rates above)")
    # Memory against length: one 30-s clip and one 10-minute MP3, each tagged alone from the same warm state.
    long_song = library_songs(work / "long", 1, seconds=600.0)
    short = library_run(predictor.runtime.probabilities, predictor, clip_files[:1], work, workers)
    long = library_run(predictor.runtime.probabilities, predictor, long_song, work, workers)
    yield (f"memory added at the peak (over the process's own, the model loaded) with {workers} decoding workers: "
           f"{short.added_mb:.0f} MB tagging one 30-s clip, {long.added_mb:.0f} MB tagging one 10-minute MP3 "
           f"({long.windows} windows in {long.seconds:.1f} s)")
