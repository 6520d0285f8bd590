"""Report on a GTZAN copy: clips per genre, durations, formats and every unreadable file.

Every file is decoded fully (not only its header), with the same decoders as the pipeline.

Usage::

    python -m data.inspect DATA_DIR [--json]

Exit status: 0 when at least one clip is usable, 2 otherwise (with a one-line reason).
"""

from __future__ import annotations

import collections
import json
import logging
import sys

import soundfile

from data import cli
from data.catalogue import SAMPLE_RATE, DataError, Problem, scan

PROG = "python -m data.inspect"


def inspect_dataset(data_dir: str) -> dict:
    """Scans and fully decodes a dataset folder.

    Args:
        data_dir: A dataset folder (see ``data.catalogue``).

    Returns:
        A JSON-ready report: ``root``, ``genres`` (clips per genre), ``clips``,
        ``total_seconds``, ``min_seconds``, ``max_seconds``, ``sample_rates`` and
        ``channels`` (file counts per value) and ``unreadable`` (path and reason per file).

    Raises:
        DataError: if the folder is missing or holds no usable clip.
    """
    from data.decode import decode_path

    catalogue = scan(data_dir)
    problems = list(catalogue.problems)
    per_genre = collections.Counter()
    rates, channels = collections.Counter(), collections.Counter()
    durations = []
    for clip in catalogue.clips:
        try:
            samples = decode_path(clip.path, clip.codec)
        except Exception as error:  # any decoder failure is reported, never fatal
            problems.append(Problem(clip.path, f"decoding failed ({' '.join(str(error).split())[:200]})"))
            continue
        if samples.size == 0:
            problems.append(Problem(clip.path, "no audio samples"))
            continue
        try:
            info = soundfile.info(clip.path)
            rates[str(info.samplerate)] += 1
            channels[str(info.channels)] += 1
        except Exception:  # decodable in the graph but not by soundfile: count as unknown
            rates["unknown"] += 1
            channels["unknown"] += 1
        per_genre[clip.genre] += 1
        durations.append(samples.size / SAMPLE_RATE)
    if not durations:
        raise DataError(f"no clip in {catalogue.root} could be decoded ({len(problems)} unreadable files)")
    return {
        "root": str(catalogue.root),
        "genres": {genre: per_genre[genre] for genre in catalogue.genres},
        "clips": len(durations),
        "total_seconds": round(sum(durations), 3),
        "min_seconds": round(min(durations), 3),
        "max_seconds": round(max(durations), 3),
        "sample_rates": dict(rates),
        "channels": dict(channels),
        "unreadable": [{"path": p.path, "reason": p.reason} for p in sorted(problems, key=lambda p: p.path)],
    }


def format_report(report: dict) -> str:
    """Renders a report of :func:`inspect_dataset` as text."""
    lines = [f"dataset: {report['root']}", "", f"{'genre':<12}{'clips':>6}"]
    lines += [f"{genre:<12}{count:>6}" for genre, count in report["genres"].items()]
    lines += [
        f"{'total':<12}{report['clips']:>6}",
        "",
        f"duration: {report['total_seconds'] / 3600:.2f} h in all, "
        f"{report['min_seconds']:.2f} to {report['max_seconds']:.2f} s per clip",
        "sample rates (Hz): " + ", ".join(f"{k} ({v} files)" for k, v in report["sample_rates"].items()),
        "channels: " + ", ".join(f"{k} ({v} files)" for k, v in report["channels"].items()),
        f"unreadable files: {len(report['unreadable'])}",
    ]
    lines += [f"  {item['path']}: {item['reason']}" for item in report["unreadable"]]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Command line entry point; returns the exit code."""
    parser = cli.parser(PROG, __doc__)
    parser.add_argument("data_dir", metavar="DATA_DIR", help="genre folders, or a parent of genres_original/ or genres/")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    args = parser.parse_args(argv)
    cli.quiet_tensorflow(args.verbose)
    logging.getLogger("data").setLevel(logging.ERROR)  # problems are listed in the report
    try:
        report = inspect_dataset(args.data_dir)
    except DataError as error:
        print(f"{PROG}: error: {error}", file=sys.stderr)
        return 2
    print(json.dumps(report, indent=2) if args.json else format_report(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
