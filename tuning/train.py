"""``python -m tuning.train``: train one zoo model with a recipe.

An entry point only: the command (its flags and what it runs) is :mod:`cli.train`.
"""

import sys

from cli.train import main

if __name__ == "__main__":
    sys.exit(main())
