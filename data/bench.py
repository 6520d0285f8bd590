"""``python -m data.bench``: decode + log-mel throughput against librosa.

An entry point only: the command (its flags and what it runs) is :mod:`cli.bench_data`.
"""

import sys

from cli.bench_data import main

if __name__ == "__main__":
    sys.exit(main())
