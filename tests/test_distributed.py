"""Searches on KerasTuner's chief/worker mode, on loopback, on the CPU, on tiny synthetic data."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cli import crossval, search, study
from tests.errors import error_line
from tests.tables import summary_rows
from tuning import distributed

ROOT = Path(__file__).resolve().parents[1]


def command(data_dir, out, *extra):
    return [sys.executable, "-m", "tuning.search", "--space", "cnn", "--max-trials", "4", "--epochs", "1",
            "--data-dir", str(data_dir), "--out", str(out), "--window-seconds", "1", "--batch-size", "16",
            "--wandb", "disabled", *extra]


def rows(out):
    """The summary's (trial, val track accuracy, val loss rounded to 1e-5) rows.

    Workers get fewer CPU threads than one process, so sums are added in another order:
    losses agree to about 1e-7, accuracies exactly.
    """
    return [(row["trial"], float(row["val_track_accuracy"]), round(float(row["val_loss"]), 5))
            for row in summary_rows(out / "cnn" / "summary.csv")]


@pytest.fixture(scope="module")
def one_process(tiny_gtzan, tmp_path_factory):
    out = tmp_path_factory.mktemp("one")
    assert subprocess.run(command(tiny_gtzan, out), cwd=ROOT, capture_output=True).returncode == 0
    return rows(out)


def test_two_workers_run_every_trial_once_with_the_one_process_numbers(tiny_gtzan, tmp_path, one_process):
    result = subprocess.run(command(tiny_gtzan, tmp_path, "--workers", "2"), cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    assert sorted(rows(tmp_path)) == sorted(one_process)
    records = [json.loads(p.read_text()) for p in (tmp_path / "cnn" / "trials").glob("*/record.json")]
    assert len(records) == 4 and {r["worker"] for r in records} <= {"worker0", "worker1"}
    assert len({r["trial_id"] for r in records}) == 4
    progress = [line for line in result.stdout.splitlines() if line.startswith("[worker")]
    assert len(progress) == 4 and all("best so far" in line for line in progress)
    assert (tmp_path / "cnn" / "best" / "model.keras").is_file()
    assert len(list((tmp_path / "cnn" / "trials").glob("*/model.keras"))) == 0
    assert {p.name for p in (tmp_path / "cnn" / "workers").iterdir()} == {"chief.log", "worker0.log", "worker1.log"}


def test_a_worker_whose_chief_is_gone_exits_within_the_bound(tiny_gtzan, tmp_path):
    start = time.monotonic()
    result = subprocess.run(command(tiny_gtzan, tmp_path, "--role", "worker", "--oracle",
                                    f"127.0.0.1:{distributed.free_port()}", "--chief-timeout", "3"),
                            cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    last = error_line(result.stderr)
    assert "cannot reach the chief at 127.0.0.1:" in last
    assert time.monotonic() - start < 60


def test_a_chief_port_in_use_and_bad_flags(tiny_gtzan, tmp_path, capsys):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        args = command(tiny_gtzan, tmp_path, "--role", "chief", "--oracle", f"127.0.0.1:{port}")[3:]
        assert search.main(args) == 2
    assert f"--oracle 127.0.0.1:{port}: cannot serve there" in error_line(capsys.readouterr().err)
    for flags, message in ((["--role", "worker"], "--role needs --oracle"), (["--oracle", "h:1"], "go with --role"),
                           (["--role", "chief", "--oracle", "nohost"], "--oracle must be HOST:PORT"),
                           (["--workers", "0"], "--workers and --gpus-per-worker must be at least 1")):
        assert search.main(command(tiny_gtzan, tmp_path, *flags)[3:]) == 2
        assert message in error_line(capsys.readouterr().err)


def test_a_bad_data_dir_with_workers_is_one_line(tmp_path):
    # A missing folder is a bad flag: refused before any process starts.
    result = subprocess.run(command(tmp_path / "none", tmp_path, "--workers", "2"), cwd=ROOT, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"python -m tuning.search: error: data directory not found: {tmp_path / 'none'}"]
    assert not (tmp_path / "cnn" / "workers").exists()
    # A folder without audio is found out by the chief: its one line, exit 2, as without --workers.
    (tmp_path / "empty").mkdir()
    result = subprocess.run(command(tmp_path / "empty", tmp_path, "--workers", "2"), cwd=ROOT, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 2
    last = error_line(result.stderr)
    assert "no class folders with audio files" in last and ("chief" in last or "worker" in last)
    time.sleep(1)
    assert not subprocess.run(["pgrep", "-f", "--", f"--out {tmp_path}"], capture_output=True).stdout  # nothing left


def test_strip_flags_and_cpu_threads():
    argv = ["--space", "cnn", "--workers", "2", "--fresh", "--gpus-per-worker=1", "--sections", "mlp", "cnn", "--out", "r"]
    assert distributed.strip_flags(argv, {"--workers": 1, "--gpus-per-worker": 1, "--fresh": 0, "--sections": "+"}) == [
        "--space", "cnn", "--out", "r"]
    if "CUDA_VISIBLE_DEVICES" not in os.environ:
        envs = distributed.devices(2, 1)
        threads = str(max(1, (os.cpu_count() or 1) // 2))
        assert [e["TF_NUM_INTRAOP_THREADS"] for e in envs] == [threads, threads]


def test_mirrored_strategy_trains_one_cpu_replica_with_the_same_losses(tiny_gtzan, tmp_path, capsys):
    histories = {}
    for name, extra in (("plain", ()), ("mirrored", ("--strategy", "mirrored"))):
        args = command(tiny_gtzan, tmp_path / name, "--epochs", "3", "--patience", "10", *extra)[3:]
        args[args.index("--max-trials") + 1] = "1"
        assert search.main(args) == 0
        histories[name] = json.loads(next((tmp_path / name / "cnn" / "trials").glob("*/history.json")).read_text())
    assert "mirrored strategy: 1 replica(s), no GPU" in capsys.readouterr().out
    assert len(histories["plain"]["loss"]) == 3
    for key in ("loss", "val_loss", "val_track_accuracy"):
        assert histories["mirrored"][key] == pytest.approx(histories["plain"][key], rel=1e-6), key


# Two replicas on two logical CPUs: each global batch is split between them, every window once.
TWO_REPLICAS = """
import sys
import numpy as np
import tensorflow as tf
tf.config.set_logical_device_configuration(tf.config.list_physical_devices("CPU")[0],
                                           [tf.config.LogicalDeviceConfiguration()] * 2)
from data.config import DataConfig
from training.config import TrainConfig
from training.loop import prepare_data
data = prepare_data(DataConfig(sys.argv[1], window_seconds=1))
training = TrainConfig(batch_size=16, epochs=2)
strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
assert strategy.num_replicas_in_sync == 2
plain = list(data.train(training).as_numpy_iterator())
dealt = []
for waveforms, labels in strategy.experimental_distribute_dataset(data.train(training)):
    parts = [strategy.experimental_local_results(t) for t in (waveforms, labels)]
    assert all(len(part) > 0 for part in parts[1])
    dealt.append(tuple(np.concatenate([p.numpy() for p in part]) for part in parts))
assert len(dealt) == len(plain) == 2 * data.steps_per_epoch(16)
for (x, y), (dx, dy) in zip(plain, dealt):
    assert np.array_equal(x, dx) and np.array_equal(y, dy)
assert sum(len(y) for _, y in dealt) == 2 * len(data.split.train)
print("ok")
"""


def test_two_replicas_see_every_window_once(tiny_gtzan):
    result = subprocess.run([sys.executable, "-c", TWO_REPLICAS, str(tiny_gtzan)], cwd=ROOT, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0 and result.stdout.strip().endswith("ok"), result.stderr[-2000:]


def _pid_of(pattern):
    found = subprocess.run(["pgrep", "-f", "--", pattern], capture_output=True, text=True).stdout.split()
    return int(found[0]) if found else None


def _wait_for(condition, seconds=240):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.2)
    return False


@pytest.mark.slow
def test_a_worker_killed_mid_trial_is_restarted_and_the_search_completes(tiny_gtzan, tmp_path, one_process):
    launcher = subprocess.Popen(command(tiny_gtzan, tmp_path, "--workers", "2"), cwd=ROOT, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
    trials = tmp_path / "cnn" / "trials"
    started = lambda: [p for p in trials.glob("*/config.json") if not (p.parent / "record.json").exists()]  # noqa: E731
    assert _wait_for(lambda: trials.is_dir() and started())
    pid = _pid_of("--worker-id worker0 --oracle") or _pid_of("--worker-id worker1 --oracle")
    os.kill(pid, signal.SIGKILL)
    out, err = launcher.communicate(timeout=600)
    assert launcher.returncode == 0, err[-2000:]
    assert "restarting it" in out
    assert sorted(rows(tmp_path)) == sorted(one_process)


@pytest.mark.slow
def test_a_killed_chief_stops_the_search_and_a_rerun_resumes(tiny_gtzan, tmp_path, one_process):
    launcher = subprocess.Popen(command(tiny_gtzan, tmp_path, "--workers", "2"), cwd=ROOT, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
    trials = tmp_path / "cnn" / "trials"
    state = tmp_path / "cnn" / "keras_tuner"

    def completed():  # trials the oracle has ended, by their grid entry
        found = []
        for path in state.glob("trial_*/trial.json"):
            try:
                trial = json.loads(path.read_text())
            except ValueError:
                continue
            if trial["status"] == "COMPLETED":
                found.append(trial["hyperparameters"]["values"]["trial"])
        return found

    assert _wait_for(lambda: state.is_dir() and completed())
    os.kill(_pid_of("--role chief --oracle"), signal.SIGKILL)
    out, err = launcher.communicate(timeout=300)
    assert launcher.returncode == 1 and "the chief stopped" in error_line(err)
    done = {name: (trials / name / "record.json").stat().st_mtime_ns for name in completed()}
    rerun = subprocess.run(command(tiny_gtzan, tmp_path, "--workers", "2"), cwd=ROOT, capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert sorted(rows(tmp_path)) == sorted(one_process)
    # Trials the oracle had ended before the kill are not run again (those killed mid-run are).
    assert done and all((trials / name / "record.json").stat().st_mtime_ns == stamp for name, stamp in done.items())


def crossval_flags(data_dir, out):
    return ["2cnn-16-16-1fc", "--folds", "3", "--window-seconds", "1", "--epochs", "1", "--batch-size", "16",
            "--wandb", "disabled", "--data-dir", str(data_dir), "--out", str(out)]


def test_crossval_folds_run_in_two_workers_with_the_one_process_numbers(tiny_gtzan, tmp_path, capsys):
    assert crossval.main(crossval_flags(tiny_gtzan, tmp_path / "one")) == 0
    result = subprocess.run([sys.executable, "-m", "tuning.crossval", *crossval_flags(tiny_gtzan, tmp_path / "two"),
                             "--workers", "2"], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    one, two = (json.loads((tmp_path / name / "crossval" / "2cnn-16-16-1fc" / "results.json").read_text())
                for name in ("one", "two"))
    assert [f["track_accuracy"] for f in two["folds"]] == [f["track_accuracy"] for f in one["folds"]]
    assert {f["worker"] for f in two["folds"]} <= {"worker0", "worker1"}
    progress = [line for line in result.stdout.splitlines() if line.startswith("[worker")]
    assert sorted(line.split()[1] for line in progress) == ["fold-0:", "fold-1:", "fold-2:"]
    assert "3 folds: test track accuracy" in result.stdout
    # One process continues what the workers did: no fold is trained again.
    capsys.readouterr()
    assert crossval.main(crossval_flags(tiny_gtzan, tmp_path / "two")) == 0
    assert capsys.readouterr().out.count("finished earlier") == 3


@pytest.mark.parametrize("main,first", [(crossval.main, ["2cnn-16-16-1fc"]), (study.main, [])])
def test_workers_flags_of_crossval_and_study(main, first, tiny_gtzan, tmp_path, capsys):
    common = [*first, "--data-dir", str(tiny_gtzan), "--out", str(tmp_path), "--wandb", "disabled"]
    for flags, message in ((["--workers", "0"], "--workers and --gpus-per-worker must be at least 1"),
                           (["--workers", "2", "--role", "chief", "--oracle", "h:1"], "does not go with --role"),
                           (["--role", "worker"], "--role needs --oracle")):
        assert main([*common, *flags]) == 2
        assert message in error_line(capsys.readouterr().err)


def test_crossval_settings_must_match_to_resume(tiny_gtzan, tmp_path, capsys):
    assert crossval.main([*crossval_flags(tiny_gtzan, tmp_path), "--folds", "2"]) == 0
    capsys.readouterr()
    assert crossval.main([*crossval_flags(tiny_gtzan, tmp_path), "--folds", "2", "--epochs", "2"]) == 2
    assert "training.epochs was 1, now 2" in error_line(capsys.readouterr().err)
    assert crossval.main([*crossval_flags(tiny_gtzan, tmp_path), "--folds", "2", "--epochs", "2", "--fresh"]) == 0

