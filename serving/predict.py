"""``python -m serving.predict``: the genres of audio files, with an exported model.

An entry point only: the command (its flags and what it runs) is :mod:`cli.predict`.
"""

import sys

from cli.predict import main

if __name__ == "__main__":
    sys.exit(main())
