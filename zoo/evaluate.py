"""``python -m zoo.evaluate``: evaluate a trained model on the test split and export it.

The command the toolkit documents; the same as ``python -m serving.evaluate``. Both run
``cli.evaluate`` (see it for the flags), the front of ``serving.evaluation``: evaluation reads
run folders and exports, which sit above the zoo.
"""

import sys

from cli.evaluate import main

if __name__ == "__main__":
    sys.exit(main())
