"""``python -m serving.embed``: per-clip embeddings and tags from a pretrained tagger.

An entry point only: the command (its flags and what it runs) is :mod:`cli.embed`.
"""

import sys

from cli.embed import main

if __name__ == "__main__":
    sys.exit(main())
