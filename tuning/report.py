"""``python -m tuning.report``: figures and REPORT.md from the run histories.

An entry point only: the command (its flags and what it runs) is :mod:`cli.report`.
"""

import sys

from cli.report import main

if __name__ == "__main__":
    sys.exit(main())
