"""Kill -9 a search at chosen moments, rerun the same command: the result is the uninterrupted one."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

import zoo
from tests.errors import error_line
from tests.tables import summary_rows

ROOT = Path(__file__).resolve().parents[1]

# Runs tuning.search with one function patched to kill the process at its Nth call.
DRIVER = r"""
import os, signal, sys
from training import runstore
from cli import search
point, nth = sys.argv[1].split(":")
calls = {"n": 0}

def kill_on_nth(original, before=True, only=None):
    def wrapped(*args, **kwargs):
        if only is None or only(*args):
            calls["n"] += 1
            if calls["n"] == int(nth) and before:
                os.kill(os.getpid(), signal.SIGKILL)
        result = original(*args, **kwargs)
        if only is None or only(*args):
            if calls["n"] == int(nth) and not before:
                os.kill(os.getpid(), signal.SIGKILL)
        return result
    return wrapped

if point == "mid-trial":  # the trial's config is written, its training has started
    runstore.RunStore.write_config = kill_on_nth(runstore.RunStore.write_config, before=False)
elif point == "writing-results":  # its history is written, its record not yet
    runstore.write_text = kill_on_nth(runstore.write_text, only=lambda path, text: path.name == "record.json")
elif point == "promoting":  # KerasTuner has ended the trial, best/ is not updated yet
    runstore.RunStore.promote = kill_on_nth(runstore.RunStore.promote)
elif point == "after-trial":  # everything of the trial is written
    runstore.RunStore.write_summary = kill_on_nth(runstore.RunStore.write_summary, before=False)
sys.exit(search.main(sys.argv[2:]))
"""


def command(data_dir, out, tuner):
    trials = ["--max-trials", "2"] if tuner != "hyperband" else []
    return ["--space", "cnn", "--tuner", tuner, *trials, "--epochs", "3" if tuner == "hyperband" else "1",
            "--data-dir", str(data_dir), "--out", str(out), "--window-seconds", "1", "--batch-size", "16",
            "--wandb", "disabled"]


def run(args, cwd, driver=None, point=None):
    prefix = [sys.executable, str(driver), point] if driver else [sys.executable, "-m", "tuning.search"]
    return subprocess.run([*prefix, *args], cwd=cwd, capture_output=True, text=True, env={
        **__import__("os").environ, "PYTHONPATH": str(ROOT)})


def outcome(out):
    """The summary rows (trial, scores, status) and the best trial of a finished search."""
    space = out / "cnn"
    rows = [[row[column] for column in ("trial", "val_track_accuracy", "val_accuracy", "val_loss", "status")]
            for row in summary_rows(space / "summary.csv")]
    best = json.loads((space / "best" / "config.json").read_text())["trial"]
    zoo.load_model(space / "best" / "model.keras")  # complete, loadable
    folders = sorted(p.name for p in (space / "trials").iterdir())
    return rows, best, folders


@pytest.fixture(scope="module")
def uninterrupted(tiny_gtzan, tmp_path_factory):
    results = {}

    def get(tuner):
        if tuner not in results:
            out = tmp_path_factory.mktemp(f"whole-{tuner}")
            assert run(command(tiny_gtzan, out, tuner), ROOT).returncode == 0
            results[tuner] = outcome(out)
        return results[tuner]

    return get


def kill_and_resume(tuner, point, tiny_gtzan, tmp_path, uninterrupted):
    driver = tmp_path / "driver.py"
    driver.write_text(DRIVER)
    out = tmp_path / "runs"
    killed = run(command(tiny_gtzan, out, tuner), ROOT, driver, point)
    assert killed.returncode == -9, killed.stderr[-1500:]
    resumed = run(command(tiny_gtzan, out, tuner), ROOT)
    assert resumed.returncode == 0, resumed.stderr[-1500:]
    assert outcome(out) == uninterrupted(tuner)
    assert not list((out / "cnn").glob(".best*"))


@pytest.mark.parametrize("point", ["mid-trial:2", "writing-results:2"])
def test_grid_search_killed_then_resumed_equals_an_uninterrupted_one(point, tiny_gtzan, tmp_path, uninterrupted):
    kill_and_resume("grid", point, tiny_gtzan, tmp_path, uninterrupted)


@pytest.mark.slow
@pytest.mark.parametrize("tuner,point", [
    ("grid", "promoting:1"), ("grid", "after-trial:1"), ("grid", "mid-trial:1"),
    ("random", "mid-trial:2"), ("random", "writing-results:2"), ("random", "promoting:1"),
    ("hyperband", "mid-trial:3"), ("hyperband", "writing-results:2"), ("hyperband", "after-trial:2"),
])
def test_every_tuner_killed_anywhere_then_resumed(tuner, point, tiny_gtzan, tmp_path, uninterrupted):
    kill_and_resume(tuner, point, tiny_gtzan, tmp_path, uninterrupted)


def test_a_larger_max_trials_continues_and_changed_settings_are_refused(tiny_gtzan, tmp_path):
    args = command(tiny_gtzan, tmp_path, "grid")
    args[args.index("--max-trials") + 1] = "1"
    assert run(args, ROOT).returncode == 0
    args[args.index("--max-trials") + 1] = "2"
    assert run(args, ROOT).returncode == 0
    assert len((tmp_path / "cnn" / "summary.csv").read_text().splitlines()) == 3  # header + 2 trials
    changed = run([*args, "--window-seconds", "1.5"], ROOT)
    assert changed.returncode == 2
    last = error_line(changed.stderr)
    assert "data.window_seconds was 1.0, now 1.5" in last and "--fresh" in last
    assert run([*args, "--window-seconds", "1.5", "--fresh"], ROOT).returncode == 0


def test_damaged_keras_tuner_state_is_named(tiny_gtzan, tmp_path):
    args = command(tiny_gtzan, tmp_path, "grid")
    args[args.index("--max-trials") + 1] = "1"
    assert run(args, ROOT).returncode == 0
    state = next((tmp_path / "cnn" / "keras_tuner").glob("tuner*.json"))
    state.write_text("")  # as a full disk leaves it
    result = run(args, ROOT)
    assert result.returncode == 2
    last = error_line(result.stderr)
    assert str(state) in last and "--fresh" in last
