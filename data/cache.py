"""``python -m data.cache``: what the cache folder holds, and clearing it.

An entry point only: the command (its flags and what it runs) is :mod:`cli.cache`.
"""

import sys

from cli.cache import main

if __name__ == "__main__":
    sys.exit(main())
