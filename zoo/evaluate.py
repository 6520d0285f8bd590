"""``python -m zoo.evaluate`` is ``python -m serving.evaluate`` (the command the toolkit documents).

Evaluation reads run folders, so it lives in ``serving``, above ``tuning``; this module only
forwards the command line and imports nothing from the layers above the zoo.
"""

import runpy

if __name__ == "__main__":
    runpy.run_module("serving.evaluate", run_name="__main__", alter_sys=True)
