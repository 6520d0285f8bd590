"""``python -m data.synthetic``: write a synthetic GTZAN-shaped data set.

An entry point only: the command (its flags and what it runs) is :mod:`cli.synthetic`.
"""

import sys

from cli.synthetic import main

if __name__ == "__main__":
    sys.exit(main())
