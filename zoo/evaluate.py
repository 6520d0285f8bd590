"""``python -m zoo.evaluate``: evaluate a trained model on the test split and export it.

An entry point only: the command (its flags and what it runs) is :mod:`cli.evaluate`.
"""

import sys

from cli.evaluate import main

if __name__ == "__main__":
    sys.exit(main())
