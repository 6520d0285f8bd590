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


def resident_memory_mb(pid: int | str = "self") -> float | None:
    """A process's resident memory in MB (this one's by default; Linux ``/proc``; None elsewhere).

    Used to measure the decoded cache, each search trial's memory and the app's under a soak.
    """
    return _proc_kilobytes(f"/proc/{pid}/status", "VmRSS:")


def _proc_kilobytes(path: str, field: str) -> float | None:
    """A ``field: N kB`` line of a ``/proc`` file, in MB; None where there is no such file."""
    try:
        with open(path) as lines:
            for line in lines:
                if line.startswith(field):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def process_tree(pid: int | str = "self") -> list[int | str]:
    """A process and all its descendants (Linux ``/proc``; the process alone elsewhere)."""
    found, stack = [pid], [pid]
    while stack:
        parent = stack.pop()
        try:
            tasks = os.listdir(f"/proc/{parent}/task")
        except OSError:
            continue
        for task in tasks:
            try:
                with open(f"/proc/{parent}/task/{task}/children") as children:
                    kids = [int(child) for child in children.read().split()]
            except OSError:
                continue
            found += kids
            stack += kids
    return found


def proportional_memory_mb(pid: int | str = "self") -> float | None:
    """A process's proportional set size in MB (Linux ``/proc``; None elsewhere): its private memory
    plus its share of pages it shares, so the sum over a parent and its children counts shared pages
    once (a child that was just forked shares all of its parent's)."""
    return _proc_kilobytes(f"/proc/{pid}/smaps_rollup", "Pss:")
