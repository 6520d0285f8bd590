"""Report on a GTZAN copy (or any dataset): clips and hours per class, durations, formats and every unreadable file.

Every file is decoded fully (not only its header), with the same decoders as the pipeline.

Usage::

    python -m data.inspect DATA_DIR [--json]
    python -m data.inspect DATA_DIR --labels labels.csv | fma_metadata/tracks.csv [--subset small]

Exit status: 0 when at least one clip is usable, 2 otherwise (with a one-line reason).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys

from cli import flags
from cli.runner import parser, quiet_tensorflow, run
from data.errors import UsageError
from data.labels import FMA_SUBSETS

PROG = "python -m data.inspect"


def format_report(report: dict) -> str:
    """Renders a report of ``data.inspection.inspect_dataset`` as text."""
    width = max(12, *(len(genre) + 2 for genre in report["genres"]))
    lines = [f"dataset: {report['root']}", "", f"{'genre':<{width}}{'clips':>6}{'hours':>8}"]
    lines += [f"{genre:<{width}}{count:>6}{report['genre_seconds'][genre] / 3600:>8.2f}"
              for genre, count in report["genres"].items()]
    lines += [
        f"{'total':<{width}}{report['clips']:>6}{report['total_seconds'] / 3600:>8.2f}",
        *([("split (labels file): " + ", ".join(f"{k} {v}" for k, v in report["splits"].items()))]
          if report.get("splits") else []),
        "",
        f"duration: {report['total_seconds'] / 3600:.2f} h in all, "
        f"{report['min_seconds']:.2f} to {report['max_seconds']:.2f} s per clip",
        "sample rates (Hz): " + ", ".join(f"{k} ({v} files)" for k, v in report["sample_rates"].items()),
        "channels: " + ", ".join(f"{k} ({v} files)" for k, v in report["channels"].items()),
        f"unreadable files: {len(report['unreadable'])}",
    ]
    lines += [f"  {item['path']}: {item['reason']}" for item in report["unreadable"]]
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    """The command-line parser."""
    result = parser(PROG, __doc__)
    result.add_argument("data_dir", metavar="DATA_DIR", help="genre folders, or a parent of genres_original/ or genres/")
    result.add_argument("--labels", metavar="FILE", help="labels file: a CSV of path,label[,split] relative to "
                                                          "DATA_DIR, or FMA's tracks.csv (default: class folders)")
    result.add_argument("--subset", choices=FMA_SUBSETS, help="FMA's subset, with its tracks.csv as --labels")
    result.add_argument("--json", action="store_true", help="print the report as JSON")
    return result


def inspect(args: argparse.Namespace) -> int:
    """The command: the report, as text or JSON."""
    flags.check_folder(args.data_dir, "data directory")
    flags.check_labels(args.labels, args.data_dir)
    if args.subset and not args.labels:
        raise UsageError("--subset takes FMA's subset with its tracks.csv as --labels")
    quiet_tensorflow(args.verbose)
    from data import inspection  # the decoders load TensorFlow

    # Problems are listed in the report, not also warned about; the level is restored after.
    logger = logging.getLogger("data")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        report = inspection.inspect_dataset(args.data_dir, args.labels, args.subset)
    finally:
        logger.setLevel(level)
    print(json.dumps(report, indent=2) if args.json else format_report(report))
    return 0


def main(argv: list[str] | None = None) -> int:
    """Command line entry point; returns the exit code."""
    return run(build_parser, inspect, argv)


if __name__ == "__main__":
    sys.exit(main())
