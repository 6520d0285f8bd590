"""Reading the CSV tables a run writes (``summary.csv``) as a user's program would: with the csv
module, since a model's name can hold commas (``dropout=0,0.5``)."""

import csv
from pathlib import Path


def summary_rows(path: Path) -> list[dict[str, str]]:
    """The rows of a ``summary.csv`` (best first), by column name."""
    with open(path, newline="") as f:
        return list(csv.DictReader(f))
