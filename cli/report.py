"""Figures and REPORT.md for a study (or any searches), from the local run histories.

Usage::

    python -m tuning.report [--runs runs/study] [--out reports]

Per section: train and validation loss per epoch of every trial, validation accuracy per epoch,
and each trial's validation accuracy as bars; for ``training`` also the mean accuracy per
batch size; the test confusion matrix of the final model. ``REPORT.md`` holds a table of trials
per section and compares the best and worst with the study's published numbers. It states
which data the runs used, so synthetic numbers are never taken for GTZAN results
(``study.report``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from cli.runner import parser, run
from data.errors import UsageError
from study.report import write_report

PROG = "python -m tuning.report"


def build_parser() -> argparse.ArgumentParser:
    """The command-line parser."""
    result = parser(PROG, __doc__)
    result.add_argument("--runs", help="folder of the runs (default: runs/study if it exists, else runs)")
    result.add_argument("--out", default="reports", help="output folder (default: reports)")
    return result


def report(args: argparse.Namespace) -> int:
    """The command: writes the report and says where."""
    if args.runs is not None and not Path(args.runs).is_dir():
        raise UsageError(f"--runs {args.runs} is not a folder; give the folder of the runs (default: runs/study or runs)")
    runs = Path(args.runs) if args.runs else (Path("runs/study") if Path("runs/study").is_dir() else Path("runs"))
    written = write_report(runs, Path(args.out))
    print(f"wrote {written} and its figures")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Command line entry point; returns the exit code."""
    return run(build_parser, report, argv)


if __name__ == "__main__":
    sys.exit(main())
