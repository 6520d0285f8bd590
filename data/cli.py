"""What every command line of the toolkit shares: a version flag, quiet start, one-line errors."""

from __future__ import annotations

import argparse
import os
import sys

from data import __version__


def quiet_tensorflow(verbose: bool = False) -> None:
    """Loads TensorFlow without its C++ start-up log lines, unless ``verbose`` or ``TF_CPP_MIN_LOG_LEVEL`` asks.

    TensorFlow writes those lines (oneDNN, CUDA drivers, CPU instructions) to the process's
    standard error before its logging is set up, where no setting reaches them, so standard
    error is pointed at the null device while TensorFlow loads and probes for GPUs. Commands call
    this after parsing their flags (``--help`` never loads TensorFlow) and before anything that
    loads it; where TensorFlow is already loaded it does nothing.
    """
    if verbose or "TF_CPP_MIN_LOG_LEVEL" in os.environ or "tensorflow" in sys.modules:
        return
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"
    sys.stderr.flush()
    saved = os.dup(2)
    null = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(null, 2)
        import tensorflow as tf

        tf.config.list_physical_devices("GPU")  # the driver probe logs too; its answer is cached
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(null)


def parser(prog: str, doc: str | None, parents: list[argparse.ArgumentParser] = ()) -> argparse.ArgumentParser:
    """An argument parser with the first paragraph of ``doc`` as description, ``parents``' flags and ``--version``."""
    result = argparse.ArgumentParser(prog=prog, description=(doc or "").split("\n\n")[0], parents=list(parents))
    result.add_argument("--version", action="version", version=f"%(prog)s (gtzan-keras) {__version__}")
    result.add_argument("--verbose", action="store_true", help="show TensorFlow's start-up log lines")
    return result


def fail(prog: str, error: Exception | str, code: int = 2) -> int:
    """Prints ``prog: error: <one line>`` to stderr; returns ``code``."""
    print(f"{prog}: error: {' '.join(str(error).split())}", file=sys.stderr)
    return code
