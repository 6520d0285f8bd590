"""``python -m tuning.study``: the whole study in one command.

An entry point only: the command (its flags and what it runs) is :mod:`cli.study`.
"""

import sys

from cli.study import main

if __name__ == "__main__":
    sys.exit(main())
