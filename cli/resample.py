"""Copy a labelled audio folder as it sounds through a lower sample rate (no band above rate / 2).

Usage::

    python -m data.resample SOURCE TARGET [--rate 16000]

Each usable clip is resampled to ``--rate`` and back to 22050 Hz (soxr, high quality) and
written as 16-bit WAV under the same genre folder of ``TARGET`` (a new or empty folder); the
source's unreadable files are left out and counted. A copy that was stopped resumes: run the
same command again, and the clips already written are kept. Use the copy to check a model on
band-limited audio: ``python -m zoo.evaluate RUN --test-dir TARGET``, or cross-validate on it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from cli import flags
from cli.runner import parser, quiet_tensorflow, run
from data.config import check_resample_rate
from data.errors import UsageError

PROG = "python -m data.resample"


def build_parser() -> argparse.ArgumentParser:
    """The command-line parser."""
    result = parser(PROG, __doc__)
    result.add_argument("source", metavar="SOURCE", help="genre folders, or a parent of genres_original/ or genres/")
    result.add_argument("target", metavar="TARGET", help="new or empty folder for the copy (or the copy a stopped run left: it resumes)")
    result.add_argument("--rate", type=int, default=16000, help="the lower sample rate in Hz (default: 16000)")
    return result


def resample(args: argparse.Namespace) -> int:
    """The command: writes the copy and says what it wrote."""
    try:
        check_resample_rate(args.rate)
    except ValueError as error:
        raise UsageError(str(error)) from None
    flags.check_folder(args.source, "data directory")
    if Path(args.target).exists() and not Path(args.target).is_dir():
        raise UsageError(f"TARGET {args.target} is a file; give a new or empty folder, or the copy to resume")
    quiet_tensorflow(args.verbose)
    from data import resampling  # the decoders load TensorFlow: only once every flag is checked

    result = resampling.resample_copy(args.source, args.target, args.rate, say=lambda line: print(line, flush=True))
    skipped = f", {result['skipped']} unreadable files of the source left out" if result["skipped"] else ""
    kept = f" ({result['kept']} of them written by an earlier run)" if result["kept"] else ""
    print(f"{result['target']}: {result['clips'] + result['kept']} clips through {args.rate} Hz{kept}{skipped}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Command line entry point; returns the exit code."""
    return run(build_parser, resample, argv)


if __name__ == "__main__":
    sys.exit(main())
