"""Tagging a library: files found in folders and lists, windows cut as serving.predict cuts them,
the table written as files finish and continued by a rerun, broken files as rows.

The model is stood in for by a plain function of the windows (these tests check the plumbing; the
real model's path is tests/test_serving.py's ``--out`` test)."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile

from data.catalogue import SAMPLE_RATE
from data.config import window_starts
from data.errors import AudioError, UsageError
from serving.decoding import Decoded, WindowPlan, covered_samples, plan, windows_of
from serving.library import Table, find_audio, tag_library

ROOT = Path(__file__).resolve().parents[1]
GENRES = ("a", "b", "c")
WINDOW = 2205  # 0.1 s: small windows keep these tests fast


def score(windows: np.ndarray) -> np.ndarray:
    """A stand-in model: each window's probabilities from its mean level (deterministic, sums to 1)."""
    level = np.abs(windows).mean(axis=1, keepdims=True)
    logits = np.concatenate([level * 10, 1 - level * 10, np.full_like(level, 0.2)], axis=1)
    exp = np.exp(logits - logits.max(axis=1, keepdims=True))
    return exp / exp.sum(axis=1, keepdims=True)


def write(path: Path, seconds: float, rate: int = SAMPLE_RATE, seed: int = 0, **kwargs) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    audio = np.random.default_rng(seed).uniform(-0.5, 0.5, int(seconds * rate)).astype(np.float32)
    soundfile.write(path, audio, rate, **kwargs)
    return path


def decoded(path: Path, window_plan: WindowPlan) -> tuple[np.ndarray, Decoded]:
    items = list(windows_of(path, window_plan))
    return np.concatenate(items[:-1]), items[-1]


def test_a_plan_spreads_its_windows_over_the_whole_song():
    every = window_starts(100_000, 1000)
    assert plan(100_000, WindowPlan(1000, 1000)) == every
    spread = plan(100_000, WindowPlan(1000, 1000, max_windows=5))
    assert len(spread) == 5 and spread[0] == 0 and spread[-1] == 99_000 and spread == sorted(spread)
    assert max(np.diff(spread)) - min(np.diff(spread)) <= 1000  # evenly, not the song's first minutes
    assert plan(500, WindowPlan(1000, 1000, max_windows=5)) == [0]
    assert covered_samples([0, 500, 3000], 1000, 3500) == 1500 + 500
    assert covered_samples([0], 1000, 400) == 400


def test_windows_are_cut_as_serving_predict_cuts_them(tmp_path):
    path = write(tmp_path / "song.wav", 1.234)
    audio, _ = soundfile.read(path, dtype="float32")
    windows, done = decoded(path, WindowPlan(WINDOW, WINDOW, chunk_windows=3))
    starts = window_starts(audio.size, WINDOW)
    assert done.starts == tuple(starts) and done.samples == audio.size and done.covered == audio.size
    assert np.array_equal(windows, np.stack([audio[s:s + WINDOW] for s in starts]))
    overlapping, done = decoded(path, WindowPlan(WINDOW, WINDOW // 2))
    assert done.starts == tuple(window_starts(audio.size, WINDOW, WINDOW // 2)) and len(overlapping) == len(done.starts)


def test_max_windows_reads_the_whole_file_but_keeps_only_its_windows(tmp_path):
    path = write(tmp_path / "long.flac", 6.0, rate=44100)  # resampled on the way, as every other rate
    windows, done = decoded(path, WindowPlan(WINDOW, WINDOW, max_windows=4))
    assert len(windows) == 4 and done.starts[0] == 0 and done.starts[-1] == done.samples - WINDOW
    assert done.covered == 4 * WINDOW and abs(done.samples - 6 * SAMPLE_RATE) <= 1


def test_a_short_file_is_one_padded_window_and_a_broken_one_an_audio_error(tmp_path):
    path = write(tmp_path / "short.wav", 0.05)
    windows, done = decoded(path, WindowPlan(WINDOW, WINDOW, max_windows=3))
    assert windows.shape == (1, WINDOW) and done.starts == (0,) and not windows[0, done.samples:].any()
    broken = tmp_path / "broken.mp3"
    broken.write_bytes(b"ID3" + os.urandom(3000))
    with pytest.raises(AudioError):
        list(windows_of(broken, WindowPlan(WINDOW, WINDOW)))
    with pytest.raises(AudioError, match="file not found"):
        list(windows_of(tmp_path / "missing.wav", WindowPlan(WINDOW, WINDOW)))


def test_folders_and_lists_give_each_recording_once(tmp_path):
    a = write(tmp_path / "music" / "x" / "a.WAV", 0.1)
    b = write(tmp_path / "music" / "b.flac", 0.1)
    (tmp_path / "music" / "notes.pdf").write_text("not audio")
    (tmp_path / "list.m3u").write_text(f"# a playlist\nmusic/b.flac\n{a}\nmissing.mp3\n")
    found = find_audio([tmp_path / "music", tmp_path / "list.m3u"])
    assert found == [b, a, tmp_path / "missing.mp3"]
    with pytest.raises(UsageError, match="cannot read the list"):
        find_audio([tmp_path / "nowhere.txt"])


def library(folder: Path) -> list[Path]:
    """Clips, a longer song in MP3, a broken file and one that is not there."""
    files = [write(folder / f"clip{i}.wav", 0.3 + 0.1 * i, seed=i) for i in range(4)]
    files.append(write(folder / "song.mp3", 3.0, rate=44100, format="MP3"))
    (folder / "broken.wav").write_bytes(b"RIFF\x10\x00\x00\x00WAVEfmt ")
    return [*files, folder / "broken.wav", folder / "gone.flac"]


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_a_library_is_tagged_into_a_table_and_a_rerun_skips_what_is_done(tmp_path, suffix):
    files = library(tmp_path / "music")
    out = tmp_path / f"tags{suffix}"
    plan_ = WindowPlan(WINDOW, WINDOW, max_windows=8)
    summary = tag_library(files, score, Table(out, "stand-in", GENRES), plan_, workers=2, batch_windows=5)
    assert (summary.tagged, summary.failed, summary.skipped) == (5, 2, 0)
    rows = read_rows(out)
    assert sorted(rows) == sorted(str(f.absolute()) for f in files)
    song = rows[str((tmp_path / "music" / "song.mp3").absolute())]
    assert song["status"] == "ok" and int(song["windows"]) == 8 and float(song["seconds"]) == pytest.approx(3.0, abs=0.01)
    assert float(song["seconds_scored"]) == pytest.approx(8 * WINDOW / SAMPLE_RATE, abs=1e-3)
    assert rows[str((tmp_path / "music" / "gone.flac").absolute())]["error"] == "file not found"
    assert rows[str((tmp_path / "music" / "broken.wav").absolute())]["status"] == "error"
    clip = rows[str(files[0].absolute())]
    audio, _ = soundfile.read(files[0], dtype="float32")
    expected = score(np.stack([audio[s:s + WINDOW] for s in window_starts(audio.size, WINDOW)])).mean(axis=0)
    assert [float(probabilities(clip)[g]) for g in GENRES] == pytest.approx(expected, abs=1e-6)

    # A rerun: only the error rows are tried again; a changed file is tagged again and replaces its row.
    write(files[1], 1.0, seed=9)
    again = tag_library(files, score, Table(out, "stand-in", GENRES), plan_, workers=1)
    assert (again.tagged, again.failed, again.skipped) == (1, 2, 4)
    lines = out.read_text().splitlines()
    assert len(lines) == len(files) + (suffix == ".csv")  # one row per file: none repeated
    assert float(read_rows(out)[str(files[1].absolute())]["seconds"]) == pytest.approx(1.0)
    with pytest.raises(UsageError, match="holds tags of the model 'stand-in'"):
        Table(out, "another", GENRES)


def read_rows(path: Path) -> dict[str, dict]:
    if path.suffix == ".csv":
        with open(path, newline="") as stream:
            rows = list(csv.DictReader(stream))
    else:
        rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert len(rows) == len({row["path"] for row in rows})
    return {row["path"]: row for row in rows}


def probabilities(row: dict) -> dict:
    return row.get("probabilities") or {genre: row[genre] for genre in GENRES}


def test_the_timeline_lists_every_window(tmp_path):
    files = [write(tmp_path / "clip.wav", 0.45)]
    tag_library(files, score, Table(tmp_path / "t.jsonl", "stand-in", GENRES, timeline=True),
                WindowPlan(WINDOW, WINDOW), workers=1)
    (row,) = read_rows(tmp_path / "t.jsonl").values()
    starts = [round(s / SAMPLE_RATE, 3) for s in window_starts(int(0.45 * SAMPLE_RATE), WINDOW)]
    assert [w["start"] for w in row["timeline"]] == starts and len(row["timeline"][0]["probabilities"]) == 3
    tag_library(files, score, Table(tmp_path / "t.csv", "stand-in", GENRES, timeline=True),
                WindowPlan(WINDOW, WINDOW), workers=1)
    (row,) = read_rows(tmp_path / "t.csv").values()
    assert len(row["timeline"].split(";")) == row_windows(row) and row["timeline"].startswith("0.0:")
    with pytest.raises(UsageError, match="has other columns"):
        Table(tmp_path / "t.csv", "stand-in", GENRES)


def row_windows(row: dict) -> int:
    return int(row["windows"])


KILLED = """
import sys, time
from pathlib import Path
import numpy as np
from serving.decoding import WindowPlan
from serving.library import Table, find_audio, tag_library
from tests.test_library import score

def slow(windows):
    time.sleep(0.15)
    return score(windows)

files = find_audio([sys.argv[1]])
tag_library(files, slow, Table(Path(sys.argv[2]), "stand-in", ("a", "b", "c")), WindowPlan(2205, 2205),
            workers=1, batch_windows=1)
"""


def test_a_run_killed_halfway_is_resumed_with_no_row_lost_or_repeated(tmp_path):
    folder = tmp_path / "music"
    files = [write(folder / f"clip{i:02d}.wav", 0.2, seed=i) for i in range(12)]
    out = tmp_path / "tags.csv"
    command = [sys.executable, "-c", KILLED, str(folder), str(out)]
    process = subprocess.Popen(command, cwd=ROOT)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and (not out.exists() or len(out.read_text().splitlines()) < 5):
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    first = len(read_rows(out))
    assert 4 <= first < len(files)
    with open(out, "a") as stream:
        stream.write(str(files[0].absolute()) + ",ok,")  # a row cut short, as a kill mid-write leaves it
    subprocess.run(command, cwd=ROOT, check=True, timeout=120)
    rows = read_rows(out)
    assert sorted(rows) == sorted(str(f.absolute()) for f in files)
    assert all(row["status"] == "ok" for row in rows.values())


class StandIn:
    """A stand-in for ``serving.prediction.Predictor``: ``score`` as its float32 runtime."""

    def __init__(self, export):
        self.export = self.folder = Path(export)
        self.window, self.genres, self.name, self.about = WINDOW, GENRES, "stand-in", {}
        self.runtime = type("Runtime", (), {"probabilities": staticmethod(score), "name": "numpy"})()


def test_a_reduced_precision_that_disagrees_is_refused_with_its_figures(tmp_path, monkeypatch, capsys):
    from cli import predict
    from serving import precision, prediction

    files = [write(tmp_path / "music" / f"clip{i}.wav", 0.5, seed=i) for i in range(6)]
    monkeypatch.setattr(predict, "find_export", lambda model: tmp_path)
    monkeypatch.setattr(prediction, "Predictor", StandIn)
    swapped = type("Reduced", (), {"probabilities": staticmethod(lambda w: score(w)[:, ::-1]), "name": "swapped"})()
    monkeypatch.setattr(precision, "reduced_runtime", lambda folder, name, calibration: swapped)
    out = tmp_path / "tags.csv"
    assert predict.main([str(tmp_path / "music"), "--out", str(out), "--precision", "int8"]) == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert error.startswith("python -m serving.predict: error: --precision int8 refused: top-1 agreement 0.0% "
                            "with float32 on ") and "below 99%; tag in float32" in error
    assert not out.exists()  # nothing tagged in a precision that was refused

    same = type("Reduced", (), {"probabilities": staticmethod(lambda w: score(w) + 1e-4), "name": "close"})()
    monkeypatch.setattr(precision, "reduced_runtime", lambda folder, name, calibration: same)
    assert predict.main([str(tmp_path / "music"), "--out", str(out), "--precision", "int8", "--workers", "1"]) == 0
    assert "--precision int8: top-1 agreement 100.0% with float32 on" in capsys.readouterr().err
    assert len(read_rows(out)) == len(files)


def test_int8_keeps_the_front_end_up_to_its_log_in_float32():
    onnx = pytest.importorskip("onnx")
    from onnx import helper

    from serving.precision import _up_to_first_log

    nodes = [helper.make_node("Conv", ["wave", "dft"], ["spectrum"], name="stft"),
             helper.make_node("MatMul", ["spectrum", "mel"], ["mels"], name="mel"),
             helper.make_node("Max", ["mels", "floor"], ["floored"], name="floor"),
             helper.make_node("Log", ["floored"], ["logmel"], name="log"),
             helper.make_node("Conv", ["logmel", "k"], ["features"], name="conv1"),
             helper.make_node("MatMul", ["features", "w"], ["logits"], name="dense")]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("wave", onnx.TensorProto.FLOAT, [1, 8])],
                              [helper.make_tensor_value_info("logits", onnx.TensorProto.FLOAT, [1, 2])])
    assert _up_to_first_log(helper.make_model(graph)) == {"stft", "mel", "floor", "log"}
