"""What every command line of the toolkit shares: a version flag, quiet start, one-line errors."""

from __future__ import annotations

import argparse
import os
import sys

from data import __version__


def quiet_tensorflow(verbose: bool = False) -> None:
    """Turns TensorFlow's C++ start-up log lines off unless ``verbose`` or ``TF_CPP_MIN_LOG_LEVEL`` asks for them.

    Takes effect only before TensorFlow is first imported, so commands call it first thing.
    """
    if not verbose:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def parser(prog: str, doc: str | None, parents: list[argparse.ArgumentParser] = ()) -> argparse.ArgumentParser:
    """An argument parser with the first paragraph of ``doc`` as description, ``parents``' flags and ``--version``."""
    result = argparse.ArgumentParser(prog=prog, description=(doc or "").split("\n\n")[0], parents=list(parents))
    result.add_argument("--version", action="version", version=f"%(prog)s (gtzan-keras) {__version__}")
    return result


def fail(prog: str, error: Exception | str, code: int = 2) -> int:
    """Prints ``prog: error: <one line>`` to stderr; returns ``code``."""
    print(f"{prog}: error: {' '.join(str(error).split())}", file=sys.stderr)
    return code
