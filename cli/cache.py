"""Show what the toolkit's cache folder holds, or clear a part of it.

Usage::

    python -m data.cache [--clear synthetic|wheels|checkpoints|features|audio|all] [--json]

The cache folder is ``$GTZAN_CACHE``, else ``~/.cache/gtzan-keras``: the synthetic GTZAN-shaped
sets (``synthetic-*``), the musicnn wheel (``wheels``), the other pretrained backbones' released
checkpoints (``checkpoints``), the frozen backbones' features of clips (``features``) and decoded
audio kept on disk (``audio``). Everything there is made again when it is needed (a checkpoint
downloaded again), so any part may be cleared between runs (not while a command that uses it runs).
"""

from __future__ import annotations

import argparse
import json
import sys

from cli.runner import parser, run
from data.caching import PARTS, cache_dir, clear, usage

PROG = "python -m data.cache"


def build_parser() -> argparse.ArgumentParser:
    """The command-line parser."""
    result = parser(PROG, __doc__)
    result.add_argument("--clear", choices=[*PARTS, "all"], help="delete that part of the cache (or all of it)")
    result.add_argument("--json", action="store_true", help="print the sizes as JSON")
    return result


def cache(args: argparse.Namespace) -> int:
    """The command: clears what it is asked to, then says what the cache holds."""
    for part in PARTS if args.clear == "all" else [args.clear] if args.clear else []:
        print(f"cleared {part}: {clear(part) / 1e6:.1f} MB")
    report = usage()
    if args.json:
        print(json.dumps({"folder": str(cache_dir()), "parts": report}, indent=2))
        return 0
    print(f"cache: {cache_dir()}")
    for part, sizes in report.items():
        print(f"  {part:<10} {sizes['bytes'] / 1e6:9.1f} MB  {sizes['files']:7d} files")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Command line entry point; returns the exit code."""
    return run(build_parser, cache, argv)


if __name__ == "__main__":
    sys.exit(main())
