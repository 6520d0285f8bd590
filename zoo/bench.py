"""``python -m zoo.bench``: training throughput against the matmul rate.

An entry point only: the command (its flags and what it runs) is :mod:`cli.bench_zoo`.
"""

import sys

from cli.bench_zoo import main

if __name__ == "__main__":
    sys.exit(main())
