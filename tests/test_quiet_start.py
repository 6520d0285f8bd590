"""Every command parses its flags without loading TensorFlow, and starts without its log lines."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.test_layering import entry_points

ROOT = Path(__file__).resolve().parents[1]
COMMANDS = sorted(entry_points())
HELP = r"""
import runpy, sys
sys.argv = [sys.argv[1], "--help"]
try:
    runpy.run_module(sys.argv[0], run_name="__main__", alter_sys=True)
except SystemExit as exit:
    assert exit.code == 0, exit.code
print("tensorflow" in sys.modules, "keras" in sys.modules)
"""


@pytest.mark.parametrize("module", COMMANDS)
def test_help_does_not_load_tensorflow(module):
    result = subprocess.run([sys.executable, "-c", HELP, module], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-800:]
    assert result.stdout.strip().splitlines()[-1] == "False False"


@pytest.mark.parametrize("level", [None, "0", "3"])
def test_an_error_is_the_only_line_on_stderr_and_verbose_shows_tensorflow(tmp_path, level):
    # An empty data folder passes the flag checks and is refused once the library (and TensorFlow) loaded.
    (tmp_path / "empty").mkdir()
    args = [sys.executable, "-m", "tuning.train", "2cnn-16-16-1fc", "--data-dir", str(tmp_path / "empty"),
            "--out", str(tmp_path)]
    # The same answer whatever the shell says of TensorFlow's log level: unset, everything, errors only.
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    if level is not None:
        env["TF_CPP_MIN_LOG_LEVEL"] = level
    quiet = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, env=env)
    assert quiet.returncode == 2
    lines = quiet.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("python -m tuning.train: error: ") and "empty" in lines[0], lines
    if level != "3":  # at level 3 TensorFlow itself prints nothing to show
        verbose = subprocess.run([*args, "--verbose"], cwd=ROOT, capture_output=True, text=True, env=env)
        assert verbose.returncode == 2 and len(verbose.stderr.strip().splitlines()) > 1


def test_a_training_run_prints_no_tensorflow_line_whatever_the_shells_level(tiny_gtzan, tmp_path):
    # TensorFlow's graph optimizer logs "remapper failed" as an error at this model's training
    # steps, long after the import; a shell asking for every line still gets a quiet command. Five
    # folds build five models, each traced once, which TensorFlow would call "retracing".
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "0"}
    result = subprocess.run([sys.executable, "-m", "tuning.crossval", "2cnn-16-16-1fc", "--data-dir", str(tiny_gtzan),
                             "--folds", "5", "--epochs", "1", "--window-seconds", "1", "--out", str(tmp_path),
                             "--wandb", "disabled"], cwd=ROOT, capture_output=True, text=True, env=env)
    assert result.returncode == 0 and result.stderr == "", result.stderr[-1000:]
