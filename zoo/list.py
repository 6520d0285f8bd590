"""List the registered models with their parameter counts and descriptions.

Usage::

    python -m zoo.list [PATTERN] [--window-seconds S]
"""

from __future__ import annotations

import sys

import zoo
from data import cli

PROG = "python -m zoo.list"


def main(argv: list[str] | None = None) -> int:
    """Command line entry point; returns the exit code."""
    parser = cli.parser(PROG, __doc__)
    parser.add_argument("pattern", nargs="?", default="*", help="shell-style pattern, e.g. '3cnn*' (default: all)")
    parser.add_argument("--window-seconds", type=float, default=3.0, help="input window for the counts (default: 3)")
    args = parser.parse_args(argv)
    cli.quiet_tensorflow(args.verbose)
    if args.window_seconds <= 0:
        parser.error(f"--window-seconds must be positive, got {args.window_seconds}")
    selected = zoo.names(args.pattern)
    if not selected:
        print(f"{PROG}: error: no registered model matches {args.pattern!r}; try '*'", file=sys.stderr)
        return 2
    width = max(len(name) for name in selected)
    print(f"{'name':<{width}}  {'params':>11}  description")
    for name in selected:
        params = zoo.build(name, window_seconds=args.window_seconds).count_params()
        print(f"{name:<{width}}  {params:>11,}  {zoo.describe(name)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
