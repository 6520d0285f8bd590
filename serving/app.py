"""``python -m serving.app``: the web page and HTTP API over an exported model.

An entry point only: the command (its flags and what it runs) is :mod:`cli.app`.
"""

import sys

from cli.app import main

if __name__ == "__main__":
    sys.exit(main())
