"""Benchmark: one search with 1 worker and with N workers, wall time of each, the same trials.

Usage::

    python -m tuning.bench [--space cnn] [--workers 2] [search flags ...]

Runs ``python -m tuning.search --space SPACE --workers 1`` and then ``--workers N`` (each into a
fresh temporary folder, the same data and seeds), prints the wall time of each and the speed-up,
and checks that both give every trial the same validation track accuracy. Other flags go to
both searches (``--data-dir``, ``--epochs``, ``--max-trials``, ...).
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

from data import cli

PROG = "python -m tuning.bench"


def timed_search(space: str, workers: int, out: Path, extra: list[str]) -> tuple[float, dict[str, str]]:
    """Wall seconds of one search, and its trials' validation track accuracy (from summary.csv)."""
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "tuning.search", "--space", space, "--workers", str(workers),
                             "--out", str(out), "--wandb", "disabled", *extra], capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if result.returncode != 0:
        raise RuntimeError(result.stderr.strip().splitlines()[-1] if result.stderr.strip() else "search failed")
    rows = [line.split(",") for line in (out / space / "summary.csv").read_text().splitlines()[1:]]
    return seconds, {row[0]: row[1] for row in rows}


def main(argv: list[str] | None = None) -> int:
    """Command line entry point; returns the exit code."""
    parser = cli.parser(PROG, __doc__)
    parser.add_argument("--space", default="cnn", help="search space (default: cnn)")
    parser.add_argument("--workers", type=int, default=2, help="workers of the parallel run (default: 2)")
    args, extra = parser.parse_known_args(argv)
    if args.workers < 2:
        parser.error(f"--workers must be at least 2 to compare with one worker, got {args.workers}")
    with tempfile.TemporaryDirectory(prefix="gtzan-bench-") as folder:
        try:
            one, trials_one = timed_search(args.space, 1, Path(folder) / "one", extra)
            many, trials_many = timed_search(args.space, args.workers, Path(folder) / "many", extra)
        except RuntimeError as error:
            return cli.fail(PROG, error)
    same = trials_one == trials_many
    print(f"{args.space} search, {len(trials_one)} trials: 1 worker {one:.0f} s, {args.workers} workers {many:.0f} s "
          f"({one / many:.2f}x); per-trial validation track accuracy {'identical' if same else 'DIFFERENT'}")
    if not same:
        for name in sorted(set(trials_one) | set(trials_many)):
            print(f"  {name}: {trials_one.get(name)} vs {trials_many.get(name)}")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
