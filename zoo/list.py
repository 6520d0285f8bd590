"""``python -m zoo.list``: the registered models.

An entry point only: the command (its flags and what it runs) is :mod:`cli.list`.
"""

import sys

from cli.list import main

if __name__ == "__main__":
    sys.exit(main())
