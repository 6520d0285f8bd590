"""Generated documentation: ``docs/commands.md`` from the parsers, and the results tables from ``results/*.csv``.

    python -m tests.reference           # rewrites docs/commands.md and every table between markers
    python -m tests.reference --check   # exits 1 if any of them is not what its source says

``docs/commands.md`` is every command's ``--help``. A results table in README or a page of ``docs/``
sits between ``<!-- table: NAME -->`` and ``<!-- end table -->`` and is rendered from the CSV files
of ``results/`` by ``TABLES[NAME]``, so an accuracy is typed once, in its CSV.
``tests/test_reference.py`` runs the check, so neither can drift from its source.
"""

from __future__ import annotations

import argparse
import csv
import importlib
import os
import re
import sys
from collections.abc import Callable
from pathlib import Path
from unittest import mock

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT / "docs" / "commands.md"
RESULTS = ROOT / "results"
# The pages whose tables are generated.
PAGES = (ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")))
TABLE = re.compile(r"(<!-- table: (?P<name>[\w-]+) -->\n)(?P<body>.*?)(<!-- end table -->)", re.S)
# Marks a row measured when evaluation scored only each excerpt's first whole window.
FIRST_WINDOW = " †"
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


def rows(name: str) -> list[dict[str, str]]:
    """The rows of ``results/<name>``."""
    with open(RESULTS / name, newline="") as file:
        return list(csv.DictReader(file))


def spread(row: dict[str, str], key: str) -> str:
    """``mean +- std`` of ``key`` (the mean alone where one run gives no spread)."""
    return f"{row[key + '_mean']} +- {row[key + '_std']}" if row[key + "_std"] else row[key + "_mean"]


def markdown(header: list[str], body: list[list[str]], right: set[int] = frozenset()) -> str:
    """A Markdown table; the columns of ``right`` are right-aligned."""
    rule = ["---:" if i in right else "---" for i in range(len(header))]
    return "\n".join("| " + " | ".join(cells) + " |" for cells in [header, rule, *body]) + "\n"


def code(text: str) -> str:
    return f"`{text}`"


def mark(row: dict[str, str]) -> str:
    return FIRST_WINDOW if row["scored"] == "first window" else ""


def five_fold(data: str) -> Callable[[], str]:
    def render() -> str:
        body = [[code(r["model"]) + mark(r), r["recipe"], spread(r, "track_accuracy"), spread(r, "macro_f1"),
                 f"{int(r['parameters']):,}", r["seconds_per_fold"], code(r["command"])]
                for r in rows("real_excerpts.csv") if r["data"] == data]
        return markdown(["model", "recipe", "track accuracy", "macro F1", "parameters", "s per fold", "command"], body,
                        {2, 3, 4, 5})
    return render


def by_id() -> str:
    body = [[code(r["model"]) + mark(r), r["recipe"], r["seeds"].replace(" ", ", "), spread(r, "track_accuracy"),
             spread(r, "track_accuracy_16k") if r["track_accuracy_16k_mean"] else ""]
            for r in rows("real_excerpts_by_id.csv")]
    return markdown(["model", "recipe", "seeds", "by id", "by id, test audio through 16 kHz"], body, {3, 4})


def search_objectives() -> str:
    body = [[r["objective"], r["seed"], code(r["chosen"]), spread(r, "objective"), r["test_by_id"], r["optimism"],
             f"{r['search_seconds']}" + (" ‡" if r["note"] else "")]
            for r in rows("probe_search_objectives.csv")]
    return markdown(["objective", "seed", "chosen", "objective's figure", "test by id", "optimism", "search s"], body,
                    {1, 3, 4, 5, 6})


# README's rows: the recommended model, each of its backbones alone, the best from scratch, a fine-tuning.
SUMMARY = (("musicnn-msd+efficientat-mn04_train=head", "adamw-cosine"), ("musicnn-msd_train=head", "adamw-cosine"),
           ("efficientat-mn04_train=head", "adamw-cosine"), ("bncnn-32-64-128-256", "adamw-cosine"),
           ("musicnn-msd", "finetune"))


def summary() -> str:
    """README's table: :data:`SUMMARY`'s models, 5-fold, by id and by id through 16 kHz, with the commands."""
    folds = {(r["model"], r["recipe"]): r for r in rows("real_excerpts.csv") if r["data"] == "real_excerpts"}
    by_id = {(r["model"], r["recipe"]): r for r in rows("real_excerpts_by_id.csv")}
    body = []
    for key in SUMMARY:
        fold, split = folds[key], by_id[key]
        marked = FIRST_WINDOW if FIRST_WINDOW in mark(fold) + mark(split) else ""
        body.append([code(key[0]) + marked, key[1], spread(fold, "track_accuracy"), spread(split, "track_accuracy"),
                     spread(split, "track_accuracy_16k"), code(fold["command"])])
    return markdown(["model", "recipe", "5-fold", "by id (3 seeds)", "by id, through 16 kHz", "5-fold command"], body,
                    {2, 3, 4})


def recommended() -> str:
    """Every figure of the recommended model (``training.config.RECOMMENDED_MODEL``), 5-fold and by id."""
    from training.config import RECOMMENDED_MODEL

    model, recipe_name = RECOMMENDED_MODEL
    body = [[f"5-fold, {r['data']}" + mark(r), spread(r, "track_accuracy"), spread(r, "macro_f1"), code(r["command"])]
            for r in rows("real_excerpts.csv") if (r["model"], r["recipe"]) == RECOMMENDED_MODEL]
    for r in rows("real_excerpts_by_id.csv"):
        if (r["model"], r["recipe"]) == RECOMMENDED_MODEL:
            body.append([f"by id, seeds {r['seeds'].replace(' ', ', ')}" + mark(r), spread(r, "track_accuracy"), "",
                         code(r["command"])])
            body.append([f"by id, test audio through 16 kHz" + mark(r), spread(r, "track_accuracy_16k"), "", "the same"])
    return markdown(["measured", "track accuracy", "macro F1", "command"], body, {1, 2})


TABLES: dict[str, Callable[[], str]] = {
    "five-fold": five_fold("real_excerpts"), "five-fold-16k": five_fold("real_excerpts_16k"), "by-id": by_id,
    "search-objectives": search_objectives, "summary": summary, "recommended": recommended,
}


def render_tables(text: str) -> str:
    """``text`` with every marked table rendered anew from its CSV.

    Raises:
        KeyError: for a marker naming no table.
    """
    return TABLE.sub(lambda m: m[1] + TABLES[m["name"]]() + m[4], text)


def generated() -> dict[Path, str]:
    """Every generated file's expected text: the command reference and each page with tables."""
    found = {REFERENCE: reference()}
    for page in PAGES:
        if page != REFERENCE and TABLE.search(text := page.read_text()):
            found[page] = render_tables(text)
    return found


def main(argv: list[str] | None = None) -> int:
    """Writes (or with ``--check`` compares) the generated files; returns the exit code."""
    parser = argparse.ArgumentParser(prog="python -m tests.reference", description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="only check that the generated files are current")
    args = parser.parse_args(argv)
    stale = 0
    for path, text in generated().items():
        current = path.read_text() if path.is_file() else ""
        if current == text:
            continue
        if args.check:
            print(f"{path.relative_to(ROOT)} is out of date: run python -m tests.reference", file=sys.stderr)
            stale += 1
        else:
            path.write_text(text)
            print(f"wrote {path.relative_to(ROOT)}")
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
