"""``python -m tuning.bench``: one search with 1 and with N workers, timed.

An entry point only: the command (its flags and what it runs) is :mod:`cli.bench_tuning`.
"""

import sys

from cli.bench_tuning import main

if __name__ == "__main__":
    sys.exit(main())
