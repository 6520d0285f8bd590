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

from tuning import distributed, search

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
    table = [line.split(",") for line in (out / "cnn" / "summary.csv").read_text().splitlines()[1:]]
    return [(row[0], float(row[1]), round(float(row[3]), 5)) for row in table]


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
    last = result.stderr.strip().splitlines()[-1]
    assert "cannot reach the chief at 127.0.0.1:" in last
    assert time.monotonic() - start < 60


def test_a_chief_port_in_use_and_bad_flags(tiny_gtzan, tmp_path, capsys):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        args = command(tiny_gtzan, tmp_path, "--role", "chief", "--oracle", f"127.0.0.1:{port}")[3:]
        assert search.main(args) == 2
    assert f"--oracle 127.0.0.1:{port}: cannot serve there" in capsys.readouterr().err
    for flags, message in ((["--role", "worker"], "--role needs --oracle"), (["--oracle", "h:1"], "go with --role"),
                           (["--role", "chief", "--oracle", "nohost"], "--oracle must be HOST:PORT"),
                           (["--workers", "0"], "--workers and --gpus-per-worker must be at least 1")):
        assert search.main(command(tiny_gtzan, tmp_path, *flags)[3:]) == 2
        assert message in capsys.readouterr().err.strip().splitlines()[-1]


def test_a_bad_data_dir_with_workers_is_one_line(tmp_path):
    result = subprocess.run(command(tmp_path / "none", tmp_path, "--workers", "2"), cwd=ROOT, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert "data directory not found" in last and ("chief" in last or "worker" in last)
    time.sleep(1)
    assert not subprocess.run(["pgrep", "-f", "--", f"--out {tmp_path}"], capture_output=True).stdout  # nothing left


def test_strip_flags_and_cpu_threads():
    argv = ["--space", "cnn", "--workers", "2", "--fresh", "--gpus-per-worker=1", "--out", "r"]
    assert distributed.strip_flags(argv, {"--workers": True, "--gpus-per-worker": True, "--fresh": False}) == [
        "--space", "cnn", "--out", "r"]
    if "CUDA_VISIBLE_DEVICES" not in os.environ:
        envs = distributed.devices(2, 1)
        threads = str(max(1, (os.cpu_count() or 1) // 2))
        assert [e["TF_NUM_INTRAOP_THREADS"] for e in envs] == [threads, threads]


def test_mirrored_strategy_trains_one_cpu_replica(tiny_gtzan, tmp_path, capsys):
    args = command(tiny_gtzan, tmp_path, "--strategy", "mirrored")[3:]
    args[args.index("--max-trials") + 1] = "1"
    assert search.main(args) == 0
    assert "mirrored strategy: 1 replica(s), no GPU" in capsys.readouterr().out
    record = json.loads(next((tmp_path / "cnn" / "trials").glob("*/record.json")).read_text())
    assert record["status"] == "completed" and 0 < record["val_loss"] < 10


def test_the_distributed_input_pipeline_neither_repeats_nor_drops_windows(tiny_gtzan):
    import numpy as np
    import tensorflow as tf

    from data.config import DataConfig
    from tuning.config import TrainConfig
    from tuning.training import prepare_data

    data = prepare_data(DataConfig(str(tiny_gtzan), window_seconds=1))
    training = TrainConfig(batch_size=16)
    strategy = tf.distribute.MirroredStrategy()
    plain = [labels.numpy() for _, labels in data.train(training)]
    dealt = [strategy.experimental_local_results(labels)[0].numpy() for _, labels in data.train(training, strategy)]
    assert np.array_equal(np.concatenate(plain), np.concatenate(dealt))
    assert len(np.concatenate(dealt)) == len(data.split.train)


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
    assert launcher.returncode == 1 and "the chief stopped" in err.strip().splitlines()[-1]
    done = {name: (trials / name / "record.json").stat().st_mtime_ns for name in completed()}
    rerun = subprocess.run(command(tiny_gtzan, tmp_path, "--workers", "2"), cwd=ROOT, capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert sorted(rows(tmp_path)) == sorted(one_process)
    # Trials the oracle had ended before the kill are not run again (those killed mid-run are).
    assert done and all((trials / name / "record.json").stat().st_mtime_ns == stamp for name, stamp in done.items())
