"""``python -m tuning.search``: search one experiment family with KerasTuner.

An entry point only: the command (its flags and what it runs) is :mod:`cli.search`.
"""

import sys

from cli.search import main

if __name__ == "__main__":
    sys.exit(main())
