"""Run folders that describe one run, no lost trial, one writer per folder, untrusted models, one-line errors."""

import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile

from tests.errors import error_line
from tests.tables import summary_rows

ROOT = Path(__file__).resolve().parents[1]


def run(module: str, *args, timeout: float = 600, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", module, *map(str, args)], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout, **kwargs)


def train_args(data, out, *extra):
    return ["tuning.train", "2cnn-16-16-1fc", "--data-dir", data, "--window-seconds", "1", "--epochs", "1",
            "--out", out, "--wandb", "disabled", *extra]


def last_error(result) -> str:
    return error_line(result.stderr)


@pytest.fixture(scope="module")
def trained(tiny_gtzan, tmp_path_factory):
    out = tmp_path_factory.mktemp("trained")
    result = run(*train_args(tiny_gtzan, out))
    assert result.returncode == 0, result.stderr[-800:]
    return out


# 1. a train folder always describes one run -----------------------------------------------------------
def test_rerun_with_the_same_settings_keeps_the_run_and_other_settings_are_refused(trained, tiny_gtzan):
    folder = trained / "train" / "trials" / "2cnn-16-16-1fc"
    before = {p.name: p.stat().st_mtime_ns for p in folder.iterdir()}
    again = run(*train_args(tiny_gtzan, trained))
    assert again.returncode == 0 and "trained already" in again.stdout
    assert {p.name: p.stat().st_mtime_ns for p in folder.iterdir()} == before
    other = run(*train_args(tiny_gtzan, trained, "--epochs", "2", "--seed", "7"))
    assert other.returncode == 2
    assert f"{folder} holds a training with other settings" in last_error(other) and "--fresh" in last_error(other)
    assert {p.name: p.stat().st_mtime_ns for p in folder.iterdir()} == before  # nothing was touched


def test_run_files_are_as_readable_as_other_files(trained):
    folder = trained / "train" / "trials" / "2cnn-16-16-1fc"
    mask = os.umask(0)
    os.umask(mask)
    for name in ("config.json", "record.json", "history.json", "history.csv"):
        assert stat.S_IMODE((folder / name).stat().st_mode) == 0o666 & ~mask, name


def test_killed_after_the_config_leaves_a_folder_that_says_it_is_incomplete(trained, tiny_gtzan, tmp_path):
    out = tmp_path / "runs"
    shutil.copytree(trained / "train", out / "train")
    folder = out / "train" / "trials" / "2cnn-16-16-1fc"
    old_config = (folder / "config.json").read_text()
    process = subprocess.Popen([sys.executable, "-m", *train_args(tiny_gtzan, out, "--epochs", "3", "--seed", "7",
                                                                  "--fresh")],
                               cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while (not (folder / "config.json").is_file() or (folder / "config.json").read_text() == old_config):
        assert process.poll() is None and time.monotonic() < deadline
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not (folder / "record.json").exists() and not (folder / "model.keras").exists()
    assert json.loads((folder / "config.json").read_text())["training"]["seed"] == 7
    result = run("zoo.evaluate", folder, "--runs", out, "--no-export")
    assert result.returncode == 2 and "is incomplete: it has no record.json" in last_error(result)
    # The same command again trains it (the stale lock of the killed run is taken over).
    again = run(*train_args(tiny_gtzan, out, "--epochs", "3", "--seed", "7"))
    assert again.returncode == 0, again.stderr[-800:]
    assert json.loads((folder / "record.json").read_text())["epochs_run"] == 3


def test_a_full_disk_names_the_file_and_leaves_no_partial_model(tiny_gtzan, tmp_path):
    # 1 MiB files at most: bncnn's model.keras (0.4 M weights and their optimizer state) cannot be written.
    command = " ".join(["ulimit -f 1024;", sys.executable, "-m", "tuning.train", "bncnn-32-64-128-256", "--data-dir",
                        str(tiny_gtzan), "--window-seconds", "1", "--epochs", "1", "--out", str(tmp_path),
                        "--wandb", "disabled"])
    result = subprocess.run(["bash", "-c", command], cwd=ROOT, capture_output=True, text=True, timeout=600)
    folder = tmp_path / "train" / "trials" / "bncnn-32-64-128-256"
    assert result.returncode == 2, result.stderr[-800:]
    assert f"cannot write {folder / 'model.keras'}" in last_error(result)
    assert not list(folder.glob(".*tmp*")) and not (folder / "record.json").exists()
    assert json.loads((folder / "history.json").read_text())["loss"]  # the epochs that ran are kept


# 2. no trial is dropped ----------------------------------------------------------------------------------
def test_a_deleted_record_is_rebuilt_from_keras_tuners_state(tiny_gtzan, tmp_path):
    args = ["tuning.search", "--space", "cnn", "--data-dir", tiny_gtzan, "--out", tmp_path, "--epochs", "2",
            "--max-trials", "2", "--window-seconds", "1", "--wandb", "disabled"]
    assert run(*args).returncode == 0
    record_path = tmp_path / "cnn" / "trials" / "1cnn-32-3fc-256-128" / "record.json"
    original = json.loads(record_path.read_text())
    record_path.write_text('{"trial": "1cnn')  # damaged: one line, and the advice
    damaged = run(*args)
    assert damaged.returncode == 2 and str(record_path) in last_error(damaged) and "delete it" in last_error(damaged)
    record_path.unlink()  # the advice
    again = run(*args)
    assert again.returncode == 0, again.stderr[-800:]
    rows = summary_rows(tmp_path / "cnn" / "summary.csv")
    assert sorted(row["trial"] for row in rows) == ["1cnn-32-2fc-128", "1cnn-32-3fc-256-128"]
    rebuilt = json.loads(record_path.read_text())
    assert "rebuilt from its history.json" in rebuilt["recovered"]
    assert rebuilt["status"] == original["status"] == "completed"
    for key in ("val_track_accuracy", "val_accuracy", "val_loss", "epochs_run", "best_epoch"):
        assert rebuilt[key] == pytest.approx(original[key], rel=1e-6), key
    # Without its history too, what KerasTuner kept (the best epoch's metrics) rebuilds it.
    record_path.unlink()
    (record_path.parent / "history.json").unlink()
    assert run(*args).returncode == 0
    rebuilt = json.loads(record_path.read_text())
    assert "rebuilt from KerasTuner's state" in rebuilt["recovered"]
    assert rebuilt["val_track_accuracy"] == pytest.approx(original["val_track_accuracy"])
    rows = summary_rows(tmp_path / "cnn" / "summary.csv")
    assert sorted(row["trial"] for row in rows) == ["1cnn-32-2fc-128", "1cnn-32-3fc-256-128"]


# 3. one writer per folder; a killed launcher leaves nothing ---------------------------------------------
def _search(data, out, *extra):
    return [sys.executable, "-m", "tuning.search", "--space", "cnn", "--data-dir", str(data), "--out", str(out),
            "--epochs", "3", "--max-trials", "3", "--window-seconds", "1", "--wandb", "disabled", *extra]


def _wait_for(path: Path, process, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while not path.exists():
        assert process.poll() is None and time.monotonic() < deadline, "it stopped before " + str(path)
        time.sleep(0.1)


def test_a_second_search_into_a_folder_in_use_is_refused_and_a_stale_lock_is_taken(tiny_gtzan, tmp_path):
    first = subprocess.Popen(_search(tiny_gtzan, tmp_path), cwd=ROOT, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    try:
        _wait_for(tmp_path / "cnn" / ".lock", first)
        second = subprocess.run(_search(tiny_gtzan, tmp_path), cwd=ROOT, capture_output=True, text=True, timeout=120)
        assert second.returncode == 2
        assert f"is in use by process {first.pid} on" in last_error(second) and "tuning.search" in last_error(second)
    finally:
        first.kill()
        first.wait()
    # Killed: its lock is left behind, and recognised as stale.
    assert (tmp_path / "cnn" / ".lock").exists()
    resumed = subprocess.run(_search(tiny_gtzan, tmp_path), cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-800:]
    assert not (tmp_path / "cnn" / ".lock").exists()  # released on exit


def test_a_killed_launcher_takes_its_chief_and_workers_with_it(tiny_gtzan, tmp_path):
    launcher = subprocess.Popen(_search(tiny_gtzan, tmp_path, "--workers", "2"), cwd=ROOT,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _wait_for(tmp_path / "cnn" / "workers" / "worker1.log", launcher)
    time.sleep(2)
    launcher.send_signal(signal.SIGKILL)
    launcher.wait()
    deadline = time.monotonic() + 60
    while subprocess.run(["pgrep", "-f", "--", f"--out {tmp_path}"], capture_output=True).stdout:
        assert time.monotonic() < deadline, "the chief or a worker outlived its launcher"
        time.sleep(0.5)


# 4. models are named, and foreign ones refused ------------------------------------------------------------
def test_help_says_a_model_must_be_trusted():
    for module in ("serving.predict", "serving.app"):
        assert "trust" in run(module, "--help").stdout


def test_a_keras_file_with_a_lambda_layer_is_refused_in_full(trained, tmp_path):
    import keras

    inputs = keras.Input((22050,), name="waveform")
    model = keras.Model(inputs, keras.layers.Lambda(lambda x: x[:, :10])(inputs))
    model.save(tmp_path / "model.keras")
    folder = trained / "train" / "trials" / "2cnn-16-16-1fc"
    (tmp_path / "config.json").write_text((folder / "config.json").read_text())
    (tmp_path / "record.json").write_text((folder / "record.json").read_text())
    result = run("zoo.evaluate", tmp_path / "model.keras", "--no-export")
    assert result.returncode == 2
    assert last_error(result).endswith("rerun the search or train the model again")


# 5. tracebacks that became one line ---------------------------------------------------------------------
def test_more_folds_than_clips_per_genre_is_refused_before_training(tiny_gtzan, tmp_path):
    result = run("tuning.crossval", "2cnn-16-16-1fc", "--data-dir", tiny_gtzan, "--folds", "7", "--out", tmp_path,
                 "--wandb", "disabled")
    assert result.returncode == 2
    assert "--folds 7 needs at least 7 usable clips per genre" in last_error(result)
    assert not (tmp_path / "crossval" / "2cnn-16-16-1fc" / "trials").exists()


@pytest.mark.parametrize("case", ["folder", "other_columns", "empty"])
def test_a_table_that_cannot_take_a_row_is_refused_before_training(tiny_gtzan, tmp_path, case):
    table = tmp_path / "table.csv"
    if case == "folder":
        table.mkdir()
    elif case == "other_columns":
        table.write_text("name,score\nx,1\n")
    else:
        table.write_text("")
    result = run("tuning.crossval", "2cnn-16-16-1fc", "--data-dir", tiny_gtzan, "--folds", "2", "--out", tmp_path,
                 "--table", table, "--wandb", "disabled")
    assert result.returncode == 2 and f"--table {table}" in last_error(result)
    assert not (tmp_path / "crossval").exists()


def test_inspect_lists_an_unreadable_file_and_names_an_unreadable_folder(broken_copy, monkeypatch, capsys):
    import builtins
    import pathlib

    from cli import inspect as inspect_cli
    from data import catalogue

    root, _ = broken_copy
    locked = root / "genres_original" / "rock" / "rock.00001.wav"

    def guarded_open(path, *args, **kwargs):
        if Path(path) == locked:
            raise PermissionError(13, "Permission denied", str(path))
        return builtins.open(path, *args, **kwargs)

    monkeypatch.setattr(catalogue, "open", guarded_open, raising=False)
    assert inspect_cli.main([str(root), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert {"path": str(locked), "reason": "cannot be read (Permission denied)"} in report["unreadable"]
    original = pathlib.Path.iterdir

    def guarded_iterdir(self):
        if self.name == "jazz":
            raise PermissionError(13, "Permission denied", str(self))
        return original(self)

    monkeypatch.setattr(pathlib.Path, "iterdir", guarded_iterdir)
    assert inspect_cli.main([str(root)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"python -m data.inspect: error: cannot read {root / 'genres_original' / 'jazz'}: permission denied"]


@pytest.fixture()
def crossvalidated(tiny_gtzan, tmp_path):
    args = ["tuning.crossval", "2cnn-16-16-1fc", "--data-dir", tiny_gtzan, "--folds", "2", "--window-seconds", "1",
            "--epochs", "1", "--out", tmp_path, "--wandb", "disabled"]
    assert run(*args).returncode == 0
    return args, tmp_path / "crossval" / "2cnn-16-16-1fc"


def test_hand_edited_fold_files_are_named(crossvalidated):
    args, out = crossvalidated
    metrics = out / "trials" / "fold-1" / "test" / "metrics.json"
    values = json.loads(metrics.read_text())
    del values["macro_f1"]
    metrics.write_text(json.dumps(values))
    result = run(*args)
    assert result.returncode == 2 and str(metrics) in last_error(result)
    config = out / "trials" / "fold-0" / "config.json"
    values = json.loads(config.read_text())
    values["model_config"]["colour"] = "red"
    config.write_text(json.dumps(values))
    result = run("zoo.evaluate", out / "trials" / "fold-0", "--no-export")
    assert result.returncode == 2 and str(config) in last_error(result) and "colour" in last_error(result)
    values["model_config"].pop("colour")
    values["data"]["window_seconds"] = 2.0  # the model takes 1-s windows
    config.write_text(json.dumps(values))
    result = run("zoo.evaluate", out / "trials" / "fold-0", "--no-export")
    assert result.returncode == 2 and "takes windows of 22050 samples, but its config.json says 2 s" in last_error(result)


def test_a_record_with_a_string_metric_is_named(tiny_gtzan, tmp_path):
    args = ["tuning.search", "--space", "cnn", "--data-dir", tiny_gtzan, "--out", tmp_path, "--epochs", "1",
            "--max-trials", "1", "--window-seconds", "1", "--wandb", "disabled"]
    assert run(*args).returncode == 0
    record = next((tmp_path / "cnn" / "trials").glob("*/record.json"))
    values = json.loads(record.read_text())
    values["val_track_accuracy"] = "0.5"
    record.write_text(json.dumps(values))
    result = run(*args)
    assert result.returncode == 2 and str(record) in last_error(result) and "must be numbers" in last_error(result)


# 6. one rule for training and prediction; genres without clips ------------------------------------------
def test_a_genre_without_clips_is_left_out_of_macro_f1():
    from training.metrics import classification_report

    report = classification_report(np.array([0, 0, 1, 1]), np.array([0, 0, 1, 0]), ["a", "b", "c"])
    assert report["per_genre"]["c"] == {"precision": 0.0, "recall": None, "f1": None, "support": 0}
    assert report["genres_without_clips"] == ["c"]
    assert report["macro_f1"] == pytest.approx(np.mean([0.8, 2 / 3]))


def test_nan_and_truncated_files_are_unreadable_for_training_and_prediction(tiny_gtzan, tmp_path):
    from data.decode import read_with_soundfile
    from serving.prediction import read_audio

    audio = soundfile.read(tiny_gtzan / "jazz" / "jazz.00000.wav", dtype="float32")[0]
    audio[50:60] = np.nan
    nan_file = tmp_path / "nan.wav"
    soundfile.write(nan_file, audio, 22050, subtype="FLOAT")
    with pytest.raises(ValueError, match="10 samples are NaN or infinite"):
        read_with_soundfile(nan_file)
    from data.decode import _read_or_empty

    assert _read_or_empty(str(nan_file).encode()).size == 0  # training leaves it out
    with pytest.raises(ValueError, match="NaN or infinite"):
        read_audio(nan_file)
    truncated = tmp_path / "cut.wav"
    data = (tiny_gtzan / "jazz" / "jazz.00000.wav").read_bytes()
    truncated.write_bytes(data[: len(data) // 2])
    from data.catalogue import probe

    assert probe(truncated)[1].startswith("truncated WAV file")  # training leaves it out
    with pytest.raises(ValueError, match="truncated WAV file"):
        read_audio(truncated)


def test_long_recordings_are_scored_window_by_window_as_the_export_does(tmp_path):
    import tensorflow as tf

    import zoo
    from serving.export import export_saved_model
    from serving.prediction import Predictor

    genres = [f"g{i}" for i in range(4)]
    export = export_saved_model(zoo.build("2cnn-16-16-1fc", window_seconds=1.0, n_genres=4), genres, tmp_path / "m" / "1")
    predictor = Predictor(export, batch_windows=8)
    rng = np.random.default_rng(0)
    audio = (0.2 * rng.standard_normal(22050 * 75 + 1234)).astype(np.float32)
    soundfile.write(tmp_path / "long.wav", audio, 22050, subtype="FLOAT")
    streamed = predictor.predict_file(tmp_path / "long.wav")
    # 75 whole windows, and one ending where the recording ends (its last 1234 samples are scored too).
    assert streamed.windows.shape == (76, 4) and abs(streamed.seconds - audio.size / 22050) < 1e-6
    assert streamed.starts[-1] == pytest.approx((audio.size - 22050) / 22050)
    direct = tf.saved_model.load(str(export)).signatures["serving_default"](waveform=tf.constant(audio[None]))
    assert np.allclose(streamed.probabilities, direct["probabilities"].numpy()[0], atol=1e-5)
    short = predictor.predict(audio[:5000])
    assert short.windows.shape == (1, 4)


# 8. messages ------------------------------------------------------------------------------------------------
def test_evaluating_an_audio_file_says_what_to_use_instead(tmp_path):
    song = tmp_path / "song.wav"
    soundfile.write(song, np.zeros(2205, np.float32), 22050)
    result = run("zoo.evaluate", song)
    assert result.returncode == 2 and "is not a model" in last_error(result) and "serving.predict" in last_error(result)


def test_training_prints_no_tensorflow_error_lines(trained, tiny_gtzan, tmp_path):
    result = run(*train_args(tiny_gtzan, tmp_path))
    assert result.returncode == 0 and "remapper" not in result.stderr and "E0000" not in result.stderr


def test_a_negative_chief_timeout_is_refused(tmp_path):
    result = run("tuning.search", "--space", "cnn", "--role", "worker", "--oracle", "127.0.0.1:1", "--chief-timeout",
                 "-1", "--out", tmp_path)
    assert result.returncode == 2 and "--chief-timeout must be at least 1 second, got -1" in last_error(result)


def test_console_commands_name_themselves(monkeypatch, capsys):
    from cli import search

    monkeypatch.setattr(sys, "argv", ["/usr/local/bin/gtzan-search"])
    with pytest.raises(SystemExit):
        search.main(["--help"])
    assert capsys.readouterr().out.startswith("usage: gtzan-search")
