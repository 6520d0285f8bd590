"""``python -m data.resample``: a copy of a labelled folder through a lower sample rate.

An entry point only: the command (its flags and what it runs) is :mod:`cli.resample`.
"""

import sys

from cli.resample import main

if __name__ == "__main__":
    sys.exit(main())
