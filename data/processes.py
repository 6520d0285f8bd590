"""This project's own code in a child Python process, under a Keras backend of its choice.

A Keras backend is chosen once per process, so work that needs another one (TensorFlow's export
of a model trained under JAX or PyTorch, a benchmark of each backend) runs in a child process.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from data.errors import one_line

PROJECT_ROOT = Path(__file__).resolve().parents[1]


def run_python(code: str, *args: str, backend: str) -> subprocess.CompletedProcess:
    """Runs ``python -c code args`` with this project importable and Keras on ``backend``.

    TensorFlow's C++ start-up lines are off in the child; its output is captured as text.
    """
    env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "3",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(PROJECT_ROOT), os.environ.get("PYTHONPATH")]))}
    return subprocess.run([sys.executable, "-c", code, *args], env=env, capture_output=True, text=True)


def last_error_line(done: subprocess.CompletedProcess) -> str:
    """The last line a child process wrote to stderr (its error, for a failed one), on one line."""
    return one_line((done.stderr.strip().splitlines() or ["no message"])[-1])
