"""The command reference, ``docs/commands.md``: every command's ``--help``, generated from its parser.

    python -m tests.reference           # rewrites docs/commands.md
    python -m tests.reference --check   # exits 1 if docs/commands.md is not what the parsers say

``tests/test_reference.py`` runs the check, so the reference cannot drift from the flags.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from pathlib import Path
from unittest import mock

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT / "docs" / "commands.md"
WIDTH = 100
# What users type -> the command module, in the order of a project's life: search and train,
# check, serve, the data and model tools, then the benchmarks.
COMMANDS = {
    "tuning.search": "cli.search", "tuning.train": "cli.train", "tuning.crossval": "cli.crossval",
    "tuning.study": "cli.study", "tuning.report": "cli.report", "zoo.evaluate": "cli.evaluate",
    "serving.predict": "cli.predict", "serving.app": "cli.app", "serving.embed": "cli.embed", "zoo.list": "cli.list",
    "data.inspect": "cli.inspect", "data.synthetic": "cli.synthetic", "data.resample": "cli.resample",
    "data.cache": "cli.cache", "data.bench": "cli.bench_data", "zoo.bench": "cli.bench_zoo",
    "tuning.bench": "cli.bench_tuning", "serving.bench": "cli.bench_serving",
}


def help_text(module: str, command: str) -> str:
    """``python -m module --help`` as the parser of ``command`` prints it, ``WIDTH`` columns wide."""
    # A parser names itself after the module that was started, as a user typed it.
    with mock.patch.dict(os.environ, {"COLUMNS": str(WIDTH + 2)}), \
            mock.patch.object(sys, "argv", [os.path.join(*module.split(".")) + ".py"]):
        return importlib.import_module(command).build_parser().format_help().rstrip()


def reference() -> str:
    """The whole of ``docs/commands.md``."""
    lines = ["# Command reference", "",
             "Every command's `--help`, generated from its parser by `python -m tests.reference` (a test checks",
             "that this file is current). Each also runs as a console command (README, \"Install\").", ""]
    lines += [f"* [`python -m {module}`](#python--m-{module.replace('.', '')})" for module in COMMANDS]
    for module, command in COMMANDS.items():
        lines += ["", f"## python -m {module}", "", "```text", help_text(module, command), "```"]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Writes (or with ``--check`` compares) ``docs/commands.md``; returns the exit code."""
    parser = argparse.ArgumentParser(prog="python -m tests.reference", description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="only check that docs/commands.md is current")
    args = parser.parse_args(argv)
    text = reference()
    if args.check:
        current = REFERENCE.read_text() if REFERENCE.is_file() else ""
        if current != text:
            print(f"{REFERENCE} is out of date: run python -m tests.reference", file=sys.stderr)
            return 1
        return 0
    REFERENCE.write_text(text)
    print(f"wrote {REFERENCE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
