"""``python -m tuning.crossval``: cross-validate one zoo model.

An entry point only: the command (its flags and what it runs) is :mod:`cli.crossval`.
"""

import sys

from cli.crossval import main

if __name__ == "__main__":
    sys.exit(main())
