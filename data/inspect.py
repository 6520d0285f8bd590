"""``python -m data.inspect``: clips, durations, formats and unreadable files of a data folder.

An entry point only: the command (its flags and what it runs) is :mod:`cli.inspect`.
"""

import sys

from cli.inspect import main

if __name__ == "__main__":
    sys.exit(main())
