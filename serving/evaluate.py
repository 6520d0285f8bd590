"""``python -m serving.evaluate``: evaluate a trained model on the test split and export it.

The same command as ``python -m zoo.evaluate``; both run ``cli.evaluate`` (see it for the
flags), the front of ``serving.evaluation``.
"""

import sys

from cli.evaluate import main

if __name__ == "__main__":
    sys.exit(main())
