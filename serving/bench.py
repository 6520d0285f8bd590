"""``python -m serving.bench``: latency and throughput of an export, directly or over HTTP.

An entry point only: the command (its flags and what it runs) is :mod:`cli.bench_serving`.
"""

import sys

from cli.bench_serving import main

if __name__ == "__main__":
    sys.exit(main())
