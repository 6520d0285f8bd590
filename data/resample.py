"""Copy a labelled audio folder as it sounds through a lower sample rate (no band above rate / 2).

Usage::

    python -m data.resample SOURCE TARGET [--rate 16000]

Each usable clip is resampled to ``--rate`` and back to 22050 Hz (soxr, high quality) and
written as 16-bit WAV under the same genre folder of ``TARGET`` (a new or empty folder); the
source's unreadable files are left out and counted. Use the copy to check a model on
band-limited audio: ``python -m zoo.evaluate RUN --test-dir TARGET``, or cross-validate on it.
"""

from __future__ import annotations

import argparse
import sys

from cli.runner import parser, quiet_tensorflow, run
from data.errors import UsageError

PROG = "python -m data.resample"


def build_parser() -> argparse.ArgumentParser:
    """The command-line parser."""
    result = parser(PROG, __doc__)
    result.add_argument("source", metavar="SOURCE", help="genre folders, or a parent of genres_original/ or genres/")
    result.add_argument("target", metavar="TARGET", help="new or empty folder for the copy")
    result.add_argument("--rate", type=int, default=16000, help="the lower sample rate in Hz (default: 16000)")
    return result


def resample(args: argparse.Namespace) -> int:
    """The command: writes the copy and says what it wrote."""
    quiet_tensorflow(args.verbose)  # the decoders load TensorFlow
    from data.resampling import check_rate, resample_copy

    try:
        check_rate(args.rate)
    except ValueError as error:
        raise UsageError(str(error)) from None
    result = resample_copy(args.source, args.target, args.rate, say=lambda line: print(line, flush=True))
    skipped = f", {result['skipped']} unreadable files of the source left out" if result["skipped"] else ""
    print(f"{result['target']}: {result['clips']} clips through {args.rate} Hz{skipped}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Command line entry point; returns the exit code."""
    return run(build_parser, resample, argv, tensorflow=False)


if __name__ == "__main__":
    sys.exit(main())
