"""Write a synthetic GTZAN-shaped dataset: procedural music in the ten genre styles.

Usage::

    python -m data.synthetic OUT_DIR [--clips-per-genre N] [--seconds S] [--seed K]

Writes ``OUT_DIR/<genre>/<genre>.NNNNN.wav`` (22050 Hz, mono, PCM16); see ``data.synthesis``
for how each genre's style is drawn.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from cli.runner import parser, progress_bar, run
from data.errors import UsageError
from data.synthesis import generate

PROG = "python -m data.synthetic"


def build_parser() -> argparse.ArgumentParser:
    """The command-line parser."""
    result = parser(PROG, __doc__)
    result.add_argument("out_dir", help="folder to write <genre>/<genre>.NNNNN.wav into")
    result.add_argument("--clips-per-genre", type=int, default=100, help="clips per genre (default: 100)")
    result.add_argument("--seconds", type=float, default=30.0, help="clip length in seconds (default: 30)")
    result.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    return result


def synthetic(args: argparse.Namespace) -> int:
    """The command: checks the flags, writes the clips."""
    if args.clips_per_genre < 1:
        raise UsageError(f"--clips-per-genre must be at least 1, got {args.clips_per_genre}")
    if not 0 < args.seconds <= 600:
        raise UsageError(f"--seconds must be in (0, 600], got {args.seconds}")
    out = Path(args.out_dir)
    if out.exists() and not out.is_dir():
        raise UsageError(f"OUT_DIR exists and is not a folder: {out}")
    generate(out, clips_per_genre=args.clips_per_genre, seconds=args.seconds, seed=args.seed,
             progress=progress_bar("writing clips"))
    print(f"wrote {10 * args.clips_per_genre} clips of {args.seconds:g} s to {out}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Command line entry point; returns the exit code."""
    return run(build_parser, synthetic, argv)


if __name__ == "__main__":
    sys.exit(main())
